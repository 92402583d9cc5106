"""Orchestration overhead: breast_cancer through Airflow (dag.test) versus a plain Python script.

Both run the same task functions on the same spec (4 models, 5-fold CV) in a fresh copy of the
project, so every run trains (no champion yet). Whole-command wall time is compared, since a
user pays Airflow's start-up too; the DAG run's own duration is reported beside it. A second
`dag-factory run` on the same project skips training (unchanged data); it is compared with the
floor of any run, importing ``airflow.sdk``, ``sklearn.linear_model`` and ``pandas`` in one
process. The four measurements are interleaved in each repeat, so a busy moment hits all.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from common import ROOT, save, stats, timed_command

REPEATS = 3
BIN = Path(sys.executable).parent


def fresh_project(where: Path) -> Path:
    root = Path(tempfile.mkdtemp(dir=where))
    for folder in ("dags", "models", "experiments"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return root


IMPORT_FLOOR = "import airflow.sdk, sklearn.linear_model, pandas"


def main() -> dict:
    airflow, airflow_dag_run, plain, skip, floor = [], [], [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "airflow"
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        env.pop("DAG_FACTORY_RESULTS", None)
        # one untimed run migrates the metadata DB, as `make run` does the first time
        timed_command([str(BIN / "dag-factory"), "--project", str(fresh_project(Path(scratch))), "run", "breast_cancer"], env)
        for _ in range(REPEATS):
            root = fresh_project(Path(scratch))
            airflow.append(timed_command([str(BIN / "dag-factory"), "--project", str(root), "run", "breast_cancer"], env))
            log = next((root / "results" / "runs" / "breast_cancer").glob("*/run.log")).read_text()
            airflow_dag_run.append(float(re.findall(r"run_duration=([0-9.]+)", log)[-1]))
            skip.append(timed_command([str(BIN / "dag-factory"), "--project", str(root), "run", "breast_cancer"], env))
            floor.append(timed_command([sys.executable, "-c", IMPORT_FLOOR], env))
            root = fresh_project(Path(scratch))
            plain.append(timed_command([sys.executable, str(ROOT / "bench" / "plain_run.py"), str(root)], env))
    a, p, s, f = stats(airflow), stats(plain), stats(skip), stats(floor)
    return {"benchmark": "overhead", "repeats": REPEATS, "airflow_command_seconds": a,
            "airflow_dag_run_seconds": stats(airflow_dag_run), "plain_script_seconds": p,
            "ratio_median": a["median"] / p["median"], "skip_command_seconds": s, "import_floor_seconds": f,
            "skip_ratio_median": s["median"] / f["median"]}


if __name__ == "__main__":
    save("overhead", main())
