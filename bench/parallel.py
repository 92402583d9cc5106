"""Parallel speed-up on a real scheduler (LocalExecutor): 4 CPU-bound models, parallelism 1 vs 2.

A fresh Airflow deployment (API server, scheduler, dag-processor, triggerer; SQLite) per
setting, the same 4-model experiment triggered through the REST API, `REPEATS` runs each.
Reported: the DAG run's wall time and the training phase's (first train start to last train
end), since the shared steps before and after training cannot run in parallel.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from common import ROOT, stats

sys.path.insert(0, str(ROOT / "tests"))
from airflow_services import AirflowServices, _time, wall_seconds  # noqa: E402

from dag_factory.project import Project  # noqa: E402

REPEATS = 3
SPEC = """\
experiment: parallel_bench
description: Four CPU-bound models for the parallel speed-up benchmark.
retries: 0
data: {source: sklearn:breast_cancer, positive_class: malignant}
cv: {folds: 5, repeats: 1, seed: 0}
models:
  - {model: random_forest, name: forest_a, params: {n_estimators: 600, random_state: 1}}
  - {model: random_forest, name: forest_b, params: {n_estimators: 600, random_state: 2}}
  - {model: xgboost, name: boosting_a, params: {n_estimators: 1500, random_state: 1}}
  - {model: xgboost, name: boosting_b, params: {n_estimators: 1500, random_state: 2}}
"""


def project_in(where: Path) -> Project:
    root = where / "project"
    shutil.copytree(ROOT / "dags", root / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "models", root / "models")
    (root / "experiments").mkdir()
    (root / "experiments" / "parallel_bench.yaml").write_text(SPEC)
    return Project(root)


def measure(parallelism: int) -> tuple[list[float], list[float]]:
    runs, training = [], []
    with tempfile.TemporaryDirectory() as scratch:
        project = project_in(Path(scratch))
        home = Path(scratch) / "home"
        settings = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
        with AirflowServices(project, home, settings) as services:
            services.start_airflow()
            api = services.api()
            api.wait_until_healthy(services, ("scheduler", "triggerer", "dag_processor"))
            api.wait_for_dag(services, "parallel_bench")
            for _ in range(REPEATS):
                run_id = api.trigger("parallel_bench", {"force": True})
                run = api.wait_for_run(services, "parallel_bench", run_id, timeout=1800)
                if run["state"] != "success":
                    raise RuntimeError(f"run {run_id} ended {run['state']}")
                train = api.task_instances("parallel_bench", run_id, task_id="train")
                runs.append(wall_seconds(run))
                training.append(max(_time(t["end_date"]) for t in train) - min(_time(t["start_date"]) for t in train))
                print(f"parallelism {parallelism}: run {runs[-1]:.1f}s, training {training[-1]:.1f}s", file=sys.stderr)
    return runs, training


def main() -> dict:
    one_run, one_train = measure(1)
    two_run, two_train = measure(2)
    result = {"benchmark": "parallel", "repeats": REPEATS,
              "description": "4 CPU-bound models (2 random forests of 600 trees, 2 XGBoost of 1500 rounds, 5-fold CV) "
                             "on breast_cancer; a real scheduler with LocalExecutor on SQLite; "
                             f"{REPEATS} runs per setting, triggered through the REST API.",
              "runs": {"DAG run, parallelism 1": stats(one_run), "DAG run, parallelism 2": stats(two_run),
                       "training phase, parallelism 1": stats(one_train),
                       "training phase, parallelism 2": stats(two_train)}}
    result["speedup_median"] = stats(one_run)["median"] / stats(two_run)["median"]
    result["training_speedup_median"] = stats(one_train)["median"] / stats(two_train)["median"]
    return result


if __name__ == "__main__":
    from common import save

    save("parallel", main())
