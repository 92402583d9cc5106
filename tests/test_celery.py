"""Scale-out: the same DAGs, unchanged, on PostgreSQL + CeleryExecutor with a Redis broker and two
Celery workers on this machine. The mapped model tasks must run on both workers.

Skipped when PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is not reachable.
"""

from __future__ import annotations

import importlib.util

import pytest

from airflow_services import (AIRFLOW, POSTGRES, REDIS, REDIS_BROKER, AirflowServices, celery_queue, postgres_database,
                              unreachable, wall_seconds)
from dag_factory.deploy import WORKER_NAME_VARIABLE
from dag_factory.layout import Project, best_dir

pytestmark = pytest.mark.airflow

MODELS = ["logistic_regression", "xgboost", "random_forest", "svm"]
WORKERS = ("w1", "w2")


def celery_settings(database_url: str, queue: str, results: str) -> dict[str, str]:
    """CeleryExecutor on PostgreSQL with Redis as broker; a queue of its own; results in one shared folder."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__CELERY__BROKER_URL": REDIS_BROKER,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database_url}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        # Two workers share this machine: record each one's name on the task instances it runs.
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "dag_factory.deploy.worker_hostname",
        "DAG_FACTORY_RESULTS": results,
    }


def missing() -> str | None:
    """Why this machine cannot run the test, or None."""
    if importlib.util.find_spec("airflow.providers.celery") is None:
        return "the celery extra is not installed (make setup EXTRAS=dev,celery)"
    if problem := unreachable(*POSTGRES) or unreachable(*REDIS):
        return f"needs PostgreSQL and Redis on loopback: {problem}"
    return None


MISSING = missing()


@pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
def test_mapped_models_run_on_two_celery_workers(project: Project, tmp_path, capsys):
    shared = tmp_path / "shared-results"  # on several machines: a shared mount or object storage
    with celery_queue() as queue, postgres_database() as database_url, AirflowServices(
            project, tmp_path / "airflow-home", celery_settings(database_url, queue, str(shared))) as services:
        services.start_airflow()
        for worker in WORKERS:
            services.start(worker, [AIRFLOW, "celery", "worker", "--celery-hostname", f"{worker}@%h",
                                    "--queues", queue, "--concurrency", "1", "--skip-serve-logs",
                                    "--without-mingle", "--without-gossip"],
                           env={WORKER_NAME_VARIABLE: worker})
        api = services.api()
        api.wait_until_healthy(services, ("scheduler", "triggerer", "dag_processor"))
        api.wait_for_dag(services, "breast_cancer")

        run_id = api.trigger("breast_cancer")
        run = api.wait_for_run(services, "breast_cancer", run_id)
        states = {t["task_id"]: t["state"] for t in api.task_instances("breast_cancer", run_id)}
        assert run["state"] == "success", states

        train = api.task_instances("breast_cancer", run_id, task_id="train")
        assert [t["rendered_map_index"] for t in train] == MODELS
        workers = {t["rendered_map_index"]: t["hostname"] for t in train}
        assert set(workers.values()) == set(WORKERS), workers
        assert (best_dir(shared, "breast_cancer") / "model.joblib").exists()

        with capsys.disabled():
            print(f"\nbreast_cancer on Celery, two workers: DAG run wall time {wall_seconds(run):.1f} s; "
                  f"models per worker: {workers}")
