"""Celery settings for the project's workers: Airflow's own, plus the task stack imported once per worker.

A Celery worker runs each task in a process forked from its pool process, which is forked from the
worker's main process. Airflow's worker imports little up front, so every task process imported
pandas, scikit-learn, skops and the workflow itself (3-5 s a task, more than most steps take). With
these settings the worker's main process imports them once when it starts (Celery's ``worker_init``
signal), and every task process is forked with them loaded, as the LocalExecutor's are from the
scheduler's forkserver (``standalone.preloaded_task_processes``).

Set on every component (the scheduler and the API server only read the dict)::

    AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=dag_factory.airflow.celery_config.CELERY_CONFIG
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery.signals import worker_init

#: Airflow's default settings, the same object (Airflow's multi-team set-up tells the default apart by identity).
CELERY_CONFIG: dict[str, Any] = DEFAULT_CELERY_CONFIG


@worker_init.connect
def preload_tasks(**_: Any) -> None:
    """In a starting worker's main process: import what every task process needs."""
    from dag_factory.airflow.standalone import import_task_stack

    import_task_stack()
