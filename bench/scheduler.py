"""A DAG run under the real scheduler (LocalExecutor) against the same run under ``dag.test()``.

breast_cancer as shipped (4 models, 5 folds x 10 repeats), with ``force`` so that every run
trains. Each repeat first runs ``dag-factory run breast_cancer --force`` (``dag.test()``, nothing
else running), then starts a fresh deployment as ``dag-factory ui`` configures it (API server,
scheduler, dag-processor, triggerer; LocalExecutor on SQLite, parallelism from the CPU count),
triggers the DAG through the REST API once, and stops it. Both figures are the DAG run's own
duration, start to end, as Airflow records it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, stats

sys.path.insert(0, str(ROOT / "tests"))
from airflow_services import AirflowServices, wall_seconds  # noqa: E402

from dag_factory.airflow.standalone import default_parallelism  # noqa: E402
from dag_factory.project import Project  # noqa: E402

REPEATS = 3
EXPERIMENT = "breast_cancer"


def project_in(where: Path) -> Project:
    for folder in ("dags", "models", "experiments"):
        shutil.copytree(ROOT / folder, where / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return Project(where)


def dag_test_run(scratch: Path) -> float:
    """The DAG run's duration under ``dag-factory run --force`` (dag.test), from its run.log."""
    project = project_in(scratch / "dag_test")
    env = {**os.environ, "AIRFLOW_HOME": str(scratch / "dag_test_home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    subprocess.run([str(Path(sys.executable).parent / "dag-factory"), "--project", str(project.root), "run",
                    EXPERIMENT, "--force"], env=env, check=True, capture_output=True)
    log = next((project.root / "results" / "runs" / EXPERIMENT).glob("*/run.log")).read_text()
    return float(re.findall(r"run_duration=([0-9.]+)", log)[-1])


def scheduler_run(scratch: Path) -> float:
    """The DAG run's duration under a fresh LocalExecutor deployment, triggered through the REST API."""
    project = project_in(scratch / "scheduler")
    home = scratch / "scheduler_home"
    settings = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
    with AirflowServices(project, home, settings) as services:
        services.start_airflow()
        api = services.api()
        api.wait_until_healthy(services, ("scheduler", "triggerer", "dag_processor"))
        api.wait_for_dag(services, EXPERIMENT)
        run_id = api.trigger(EXPERIMENT, {"force": True})
        run = api.wait_for_run(services, EXPERIMENT, run_id, timeout=1800)
        if run["state"] != "success":
            raise RuntimeError(f"run {run_id} ended {run['state']}: {services.tail('scheduler')}")
        return wall_seconds(run)


def main() -> dict:
    dag_test, scheduler = [], []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as scratch:
            dag_test.append(dag_test_run(Path(scratch)))
            scheduler.append(scheduler_run(Path(scratch)))
        print(f"dag.test {dag_test[-1]:.1f}s, LocalExecutor {scheduler[-1]:.1f}s", file=sys.stderr)
    d, s = stats(dag_test), stats(scheduler)
    return {"benchmark": "scheduler", "repeats": REPEATS, "parallelism": default_parallelism(),
            "dag_test_seconds": d, "scheduler_seconds": s, "ratio_median": s["median"] / d["median"]}


if __name__ == "__main__":
    from common import save

    save("scheduler", main())
