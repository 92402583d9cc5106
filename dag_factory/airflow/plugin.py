"""The factory's Airflow plugin (entry point ``airflow.plugins``): the listener that notes why a run trained nothing.

Airflow imports plugins in each of its processes, so this module imports nothing heavy.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from dag_factory.airflow import run_note


class DagFactoryPlugin(AirflowPlugin):
    name = "dag_factory"
    listeners = [run_note]
