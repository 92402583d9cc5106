"""Every experiment in experiments/ as an Airflow DAG (built by dag_factory).

Airflow parses this file; it only reads the YAML specs. Add an experiment by adding a YAML
file to experiments/, not by editing this file.
"""

from pathlib import Path

from dag_factory.airflow.dag import build_dags
from dag_factory.project import Project

globals().update(build_dags(Project.locate(Path(__file__).resolve().parents[1])))
