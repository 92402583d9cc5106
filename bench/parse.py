"""DAG parsing cost as the number of experiments grows, as Airflow's dag-processor pays it.

For 1, 10, 100 and 500 generated experiment specs (copies of breast_cancer with varied model
lists), a fresh process with Airflow already imported (as in the dag-processor) parses dags/
with Airflow's DagBag. Then the same with the parsing context of one task (a worker about to
run one task of one DAG): only that DAG should be built.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, save, stats

SIZES = (1, 10, 100, 500)
REPEATS = 5
MODELS = ("logistic_regression", "xgboost", "random_forest", "svm")

PROBE = r"""
import json, sys, time
import airflow.sdk  # the dag-processor has Airflow loaded before it parses a file
from airflow.dag_processing.dagbag import DagBag
start, cpu = time.perf_counter(), time.process_time()
bag = DagBag(sys.argv[1])
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
built = [d for d in bag.dags if d.startswith("exp_")]  # other example DAGs in dags/ are not counted
print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "dags": len(built), "errors": len(bag.import_errors)}))
"""


def make_project(count: int, where: Path) -> Path:
    """A project folder with ``count`` experiment specs, each with a different model list."""
    root = where / f"project_{count}"
    shutil.copytree(ROOT / "dags", root / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "models", root / "models")
    (root / "experiments").mkdir()
    template = (ROOT / "experiments" / "breast_cancer.yaml").read_text()
    head, _, _ = template.partition("models:\n")
    tail = template[template.index("selection:"):]
    subsets = [s for r in (1, 2, 3, 4) for s in itertools.combinations(MODELS, r)]
    for i in range(count):
        models = "".join(f"  - model: {m}\n" for m in subsets[i % len(subsets)])
        text = head.replace("experiment: breast_cancer", f"experiment: exp_{i:04d}") + "models:\n" + models + tail
        (root / "experiments" / f"exp_{i:04d}.yaml").write_text(text)
    return root


def parse_once(root: Path, dag_id: str | None = None) -> dict:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "DAG_FACTORY_HOME": str(root),
           "AIRFLOW_HOME": str(root / ".airflow")}
    env.pop("DAG_FACTORY_EXPERIMENTS", None)
    if dag_id:
        env["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
        env["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = "train"
    out = subprocess.run([sys.executable, "-c", PROBE, str(root / "dags")], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for count in SIZES:
            root = make_project(count, Path(scratch))
            full = [parse_once(root) for _ in range(REPEATS)]
            one = [parse_once(root, "exp_0000") for _ in range(REPEATS)]
            assert all(r["dags"] == count and r["errors"] == 0 for r in full), full
            seconds = stats([r["seconds"] for r in full])
            rows.append({
                "experiments": count,
                "full_parse_seconds": seconds,
                "per_experiment_ms": 1000 * seconds["median"] / count,
                "one_task_parse_seconds": stats([r["seconds"] for r in one]),
                "one_task_dags_built": one[0]["dags"],
            })
            print(json.dumps(rows[-1]), file=sys.stderr)
    return {"benchmark": "parse", "repeats": REPEATS, "rows": rows}


if __name__ == "__main__":
    save("parse", main())
