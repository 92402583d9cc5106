"""The Airflow layer: DAGs built from the step table, the local dag.test() runner, the standalone UI."""
