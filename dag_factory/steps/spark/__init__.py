"""The Spark engine (``data.engine: spark``): load, profile and clean with PySpark, models on the cleaned table's sample.

Imported only inside tasks that run it: pyspark (and a JVM) never load where Airflow parses DAGs.
"""
