"""Imported once by the tests' forkserver (``warm_runner``): what a run's child imports and builds before and
during its DAG run, so that each forked child finds it done."""

from dag_factory.airflow.standalone import import_task_stack

import_task_stack()  # skops first, then what a task imports (as the scheduler's forkserver does)

import airflow.dag_processing.collection  # noqa: E402,F401  (dag.test() records the parsed DAGs)
import airflow.dag_processing.dagbag  # noqa: E402,F401
import airflow.jobs.job  # noqa: E402,F401  (the runner's live-scheduler check)
import airflow.models.dagrun  # noqa: E402,F401
import airflow.models.renderedtifields  # noqa: E402,F401
import airflow.utils.db  # noqa: E402,F401  (the runner's schema check)
import anyio._backends._asyncio  # noqa: E402,F401  (the in-process API's client)

import dag_factory.airflow.dag  # noqa: E402,F401  (the DAG file's import, with Airflow's operators)
from dag_factory.airflow.in_process_api import serve_sdk_version_only  # noqa: E402

serve_sdk_version_only()
