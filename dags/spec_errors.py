"""Broken experiment specs, listed on Airflow's Import Errors page (built by dag_factory).

This file holds no DAG. When a spec in experiments/ is invalid, importing it raises an error
that lists every problem of every broken spec on its own line (file, key, line, fix), so the
Airflow UI's Import Errors page shows them. The DAGs of dags/experiments.py are unaffected.
"""

from pathlib import Path

from dag_factory.airflow.spec_errors import raise_for_broken_specs
from dag_factory.project import Project

raise_for_broken_specs(Project.locate(Path(__file__).resolve().parents[1]))
