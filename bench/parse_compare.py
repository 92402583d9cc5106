"""DAG parsing cost against astronomer's dag-factory 1.1 on the same number of YAML files.

Both projects turn YAML into DAGs; both are parsed the way Airflow's dag-processor does it: a
fresh process with Airflow imported, timing ``DagBag`` over the dags folder (wall and CPU time). Ours: copies of
breast_cancer (7 tasks, a mapped ``train``). Theirs: the shape of their README's example,
three chained BashOperator tasks per DAG, loaded by ``load_yaml_dags``. Their package goes into
a venv of its own (``.venv/bench-dagfactory``) with the same pinned Airflow; runs alternate
between the two so that machine load hits both alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, save, stats
from parse import PROBE, make_project

SIZES = (100, 500)
REPEATS = 5
THEIR_VERSION = "1.1.0"
THEIR_VENV = ROOT / ".venv" / "bench-dagfactory"

THEIR_LOADER = """\
# airflow DAGs from YAML (the words "airflow" and "dag" let the DagBag's safe mode read this file)
from pathlib import Path
from dagfactory import load_yaml_dags
load_yaml_dags(globals_dict=globals(), dags_folder=str(Path(__file__).parent / "configs"))
"""

THEIR_DAG = """\
exp_{i:04d}:
  default_args:
    owner: bench
    start_date: 2024-01-01
  schedule: null
  catchup: false
  description: generated DAG {i}
  tasks:
    task_1:
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: echo 1
    task_2:
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: echo 2
      dependencies: [task_1]
    task_3:
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: echo 3
      dependencies: [task_1]
"""


def their_python() -> Path:
    """The Python of a venv holding dag-factory 1.1 and this project's pinned Airflow."""
    python = THEIR_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(THEIR_VENV)], check=True)
        uv = Path(sys.executable).with_name("uv")
        subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(python), "--compile-bytecode",
                        "--constraint", str(ROOT / "constraints.txt"), f"dag-factory=={THEIR_VERSION}",
                        "apache-airflow"], check=True)
    return python


def make_their_project(count: int, where: Path) -> Path:
    """A dags folder with one loader and ``count`` YAML DAG configs in their format."""
    root = where / f"theirs_{count}"
    configs = root / "dags" / "configs"
    configs.mkdir(parents=True)
    (root / "dags" / "load_dags.py").write_text(THEIR_LOADER)
    for i in range(count):
        (configs / f"exp_{i:04d}.yml").write_text(THEIR_DAG.format(i=i))
    return root


def parse(python: Path, root: Path) -> dict:
    """One DagBag parse of ``root/dags`` in a fresh process; seconds, DAGs built, import errors."""
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_HOME": str(root / ".airflow"),
           "DAG_FACTORY_HOME": str(root), "DO_NOT_TRACK": "1", "SCARF_NO_ANALYTICS": "1",
           "AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY": "False"}
    env.pop("DAG_FACTORY_EXPERIMENTS", None)
    out = subprocess.run([str(python), "-c", PROBE, str(root / "dags")], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> dict:
    theirs_python = their_python()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for count in SIZES:
            ours_root, theirs_root = make_project(count, Path(scratch)), make_their_project(count, Path(scratch))
            ours, theirs = [], []
            for _ in range(REPEATS):
                ours.append(parse(Path(sys.executable), ours_root))
                theirs.append(parse(theirs_python, theirs_root))
            assert all(r["dags"] == count and r["errors"] == 0 for r in ours + theirs), (ours, theirs)
            row: dict = {"experiments": count, "ours_tasks_per_dag": 7, "theirs_tasks_per_dag": 3}
            for clock in ("seconds", "cpu_seconds"):  # CPU time is what other work on the machine disturbs least
                row[f"ours_{clock}"] = stats([r[clock] for r in ours])
                row[f"theirs_{clock}"] = stats([r[clock] for r in theirs])
                row[f"ratio_{clock}"] = row[f"ours_{clock}"]["median"] / row[f"theirs_{clock}"]["median"]
            rows.append(row)
            print(json.dumps(rows[-1]), file=sys.stderr)
    return {"benchmark": "parse_compare", "theirs": f"dag-factory {THEIR_VERSION}", "repeats": REPEATS,
            "rows": rows}


if __name__ == "__main__":
    save("parse_compare", main())
