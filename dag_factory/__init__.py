"""Dynamic multi-model experiment DAG factory for Apache Airflow.

One YAML file in experiments/ becomes one DAG that trains every listed model in parallel
(dynamic task mapping), ranks them on cross-validated metrics and promotes the best.
"""

__version__ = "0.2.0"
