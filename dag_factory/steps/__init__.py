"""The pipeline steps as plain functions over typed inputs: no Airflow, no rendering."""
