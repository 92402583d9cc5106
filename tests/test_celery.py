"""Scale-out: the same DAGs, unchanged, on PostgreSQL + CeleryExecutor with a Redis broker and two
Celery workers on this machine. The mapped model tasks must run on both workers, and the
workers share no folder: the results root is an S3 store (moto on loopback).

Skipped when PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) is not reachable.
"""

from __future__ import annotations

import importlib.util

import pytest

from airflow_services import (AIRFLOW, POSTGRES, REDIS, REDIS_BROKER, AirflowServices, celery_queue, postgres_database,
                              unreachable, wall_seconds)
from conftest import with_fewer_cv_repeats
from dag_factory.airflow.standalone import WORKER_NAME_VARIABLE
from dag_factory.project import Project
from servers import AWS_ISOLATION, S3_CREDENTIALS, s3_server
from test_object_storage import new_bucket, whole_champion

pytestmark = pytest.mark.airflow

MODELS = ["logistic_regression", "xgboost", "random_forest", "svm"]
WORKERS = ("w1", "w2")


def celery_settings(database_url: str, queue: str, results: str) -> dict[str, str]:
    """CeleryExecutor on PostgreSQL with Redis as broker; a queue of its own; one results root for all."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "AIRFLOW__CELERY__BROKER_URL": REDIS_BROKER,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database_url}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "dag_factory.airflow.celery_config.CELERY_CONFIG",
        # Two workers share this machine: record each one's name on the task instances it runs.
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "dag_factory.airflow.standalone.worker_hostname",
        "DAG_FACTORY_RESULTS": results,
    }


def missing() -> str | None:
    """Why this machine cannot run the test, or None."""
    if importlib.util.find_spec("airflow.providers.celery") is None:
        return "the celery extra is not installed (make setup installs it)"
    if problem := unreachable(*POSTGRES) or unreachable(*REDIS):
        return f"needs PostgreSQL and Redis on loopback: {problem}"
    return None


MISSING = missing()


@pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
def test_mapped_models_run_on_two_celery_workers_that_share_only_an_s3_store(project: Project, tmp_path, capsys):
    with_fewer_cv_repeats(project)
    with s3_server(tmp_path / "moto") as endpoint, celery_queue() as queue, postgres_database() as database_url:
        bucket = new_bucket(endpoint)
        settings = {**celery_settings(database_url, queue, f"s3://{bucket}/celery"), **S3_CREDENTIALS,
                    **AWS_ISOLATION, "AWS_ENDPOINT_URL": endpoint}
        with AirflowServices(project, tmp_path / "airflow-home", settings) as services:
            run_on_two_workers(services, queue, endpoint, bucket, capsys)
        assert list(project.results.iterdir()) == []  # nothing went to a local folder


def run_on_two_workers(services: AirflowServices, queue: str, endpoint: str, bucket: str, capsys) -> None:
    """Start the components and two workers, run breast_cancer, check where its models ran and its champion."""
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
    assert whole_champion(endpoint, bucket, "celery", "breast_cancer")["run_id"] == run_id

    with capsys.disabled():
        print(f"\nbreast_cancer on Celery, two workers: DAG run wall time {wall_seconds(run):.1f} s; "
              f"models per worker: {workers}")


@pytest.mark.skipif(importlib.util.find_spec("airflow.providers.celery") is None, reason="no celery extra")
def test_the_worker_settings_import_the_task_stack_in_a_starting_worker_only():
    """The settings module stays light where the scheduler reads it; a worker's start imports what tasks need."""
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from dag_factory.airflow.celery_config import CELERY_CONFIG\n"
        "from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG\n"
        "from celery.signals import worker_init\n"
        "from dag_factory.airflow.standalone import TASK_PRELOAD\n"
        "assert CELERY_CONFIG is DEFAULT_CELERY_CONFIG\n"
        "assert not {'sklearn', 'skops', 'dag_factory.workflow'} & set(sys.modules), 'imported before the worker starts'\n"
        "worker_init.send(sender=None)\n"
        "assert [m for m in TASK_PRELOAD if m not in sys.modules] == []\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert done.stdout.splitlines()[-1:] == ["ok"], done.stderr[-2000:]
