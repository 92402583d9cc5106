"""Optional integrations and the pip extra that installs each, checked without importing them.

A spec that needs an integration whose package is missing is refused when it is read (in
`dag-factory validate` and as a stand-in DAG in Airflow), with the extra to install, instead
of failing hours later in a task.
"""

from __future__ import annotations

import importlib.util

from dag_factory.storage.location import LOCAL_SCHEMES, S3_SCHEMES, scheme_of

PACKAGE = "dag-factory-experiments"
WEB_SCHEMES = ("http", "https")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found on the path; not imported)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def install_hint(extra: str) -> str:
    """How to install one extra, in words a user can paste."""
    return f"install the {extra} extra: pip install '{PACKAGE}[{extra}]' (in a checkout of the project: make setup)"


def storage_problem(url: str, writable: bool) -> str | None:
    """Why ``url`` cannot be used as a data source (or, ``writable``, as a results root) here, or None."""
    scheme = scheme_of(url)
    if scheme in LOCAL_SCHEMES or scheme == "sklearn":
        return None
    if scheme in WEB_SCHEMES:
        return "an http(s) URL cannot hold results; use a folder or an object store URL (s3://...)" if writable else None
    if scheme in S3_SCHEMES:
        return None if installed("s3fs") else f"{scheme}:// URLs need the s3fs package; {install_hint('s3')}"
    from fsspec.registry import known_implementations, registry

    if scheme in registry:
        return None
    known = known_implementations.get(scheme)
    if known is None:
        return f'unknown URL scheme "{scheme}://"; use a folder, s3://, gs://, az:// or another fsspec URL'
    module = known["class"].split(".")[0]
    if installed(module):
        return None
    return f"{scheme}:// URLs need the {module} package ({known.get('err') or f'pip install {module}'})"


def tracking_problem() -> str | None:
    """Why MLflow tracking cannot run here, or None."""
    return None if installed("mlflow") else f"MLflow tracking needs the mlflow package; {install_hint('mlflow')}"


def drive_problem() -> str | None:
    """Why publishing to Google Drive cannot run here, or None."""
    return None if installed("google.auth") else f"publishing to Google Drive needs google-auth; {install_hint('drive')}"


def spark_problem(remote: bool) -> str | None:
    """Why ``data.engine: spark`` cannot run here (with ``remote``: through Spark Connect), or None."""
    if not installed("pyspark"):
        return f"engine spark needs the pyspark package; {install_hint('spark')}"
    if remote and not installed("grpc"):
        return "a Spark Connect server (spark.remote) needs the client packages: pip install 'pyspark[connect]'"
    return None
