"""Imported once by the tests' forkserver (``warm_runner``): what a run's child imports and builds before and
during its DAG run, so that each forked child finds it done."""

from dag_factory.artifacts.model_file import import_skops_first

import_skops_first()  # before Airflow, as the runner's child does

import airflow.dag_processing.collection  # noqa: E402,F401  (dag.test() records the parsed DAGs)
import airflow.dag_processing.dagbag  # noqa: E402,F401
import airflow.jobs.job  # noqa: E402,F401  (the runner's live-scheduler check)
import airflow.models.dagrun  # noqa: E402,F401
import airflow.models.renderedtifields  # noqa: E402,F401
import airflow.utils.db  # noqa: E402,F401  (the runner's schema check)
import anyio._backends._asyncio  # noqa: E402,F401  (the in-process API's client)
import matplotlib.backends.backend_agg  # noqa: E402,F401  (each model's plots)
import matplotlib.figure  # noqa: E402,F401

import dag_factory.airflow.dag  # noqa: E402,F401  (the DAG file's import, with Airflow's operators)
import dag_factory.airflow.runner  # noqa: E402,F401
import dag_factory.workflow  # noqa: E402,F401
from dag_factory.airflow.in_process_api import serve_sdk_version_only  # noqa: E402

serve_sdk_version_only()
