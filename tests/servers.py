"""Servers the tests start on loopback: an S3-compatible store (moto), MLflow and a Spark Connect server.

Each runs in its own process group with its output in a log file, and is stopped (the whole
group) when its ``with`` block ends. Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from airflow_services import free_port

REPO = Path(__file__).resolve().parents[1]

LOOPBACK = "127.0.0.1"
#: Credentials moto accepts; the tests never talk to a real AWS account.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret",
                  "AWS_DEFAULT_REGION": "us-east-1"}
#: Keep botocore off any real configuration and off the instance-metadata endpoint.
AWS_ISOLATION = {"AWS_CONFIG_FILE": "/nonexistent/aws-config", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-creds",
                 "AWS_EC2_METADATA_DISABLED": "true"}


@contextmanager
def serving(name: str, command: list[str], health: str | tuple[str, int], log_dir: Path, timeout: float = 90,
            env: dict[str, str] | None = None) -> Iterator[None]:
    """Run ``command`` until the block ends, once ``health`` (a URL) answers 200 or (host, port) accepts a
    connection."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{name}.log"
    ready = (lambda: _answers(health)) if isinstance(health, str) else (lambda: _listens(*health))
    with log_file.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=log_dir,
                                   env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})})
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start ({health}):\n{log_file.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _listens(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def s3_server(log_dir: Path) -> Iterator[str]:
    """An S3-compatible server (moto in server mode) on loopback; yields its endpoint URL."""
    port = free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    with serving("moto", [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)], f"{endpoint}/",
                 log_dir):
        yield endpoint


@functools.cache
def s3_client(endpoint: str):
    """A boto3 S3 client on the test server: how a user reads results back through the S3 API.

    One per endpoint, made and used in the test's own process (never in a forked child): the SIGKILL loops
    read every champion file back after each kill.
    """
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"])


def mlflow_server_binary() -> Path | None:
    """The `mlflow` command of the tracking server's own venv (made by `make test`), or None."""
    chosen = os.environ.get("DAG_FACTORY_MLFLOW_SERVER") or REPO / ".venv" / "mlflow-server" / "bin" / "mlflow"
    return Path(chosen) if Path(chosen).is_file() else None


@contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A real MLflow tracking server on loopback, SQLite backend and local artifact store; yields its URI."""
    binary = mlflow_server_binary()
    assert binary is not None, "no MLflow server: run `make test`, which installs it into .venv/mlflow-server"
    port = free_port()
    uri = f"http://{LOOPBACK}:{port}"
    command = [str(binary), "server", "--host", LOOPBACK, "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(folder / "artifacts")]
    with serving("mlflow", command, f"{uri}/health", folder, timeout=120):
        yield uri


@contextmanager
def spark_connect_server(folder: Path) -> Iterator[str]:
    """A real Spark Connect server (local[2], the server class in pyspark's own jars) on loopback; yields sc://..."""
    import pyspark

    home = Path(pyspark.__file__).parent
    port = free_port()
    settings = {
        "spark.connect.grpc.binding.address": LOOPBACK, "spark.connect.grpc.binding.port": str(port),
        "spark.driver.bindAddress": LOOPBACK, "spark.driver.host": LOOPBACK, "spark.ui.enabled": "false",
        "spark.driver.memory": "1g", "spark.sql.shuffle.partitions": "4",
        "spark.sql.warehouse.dir": str(folder / "warehouse"),
    }
    from conftest import SPARK_TEST_JAVA_OPTIONS  # here: bench/integrations.py imports this module without conftest

    command = [str(home / "bin" / "spark-submit"), "--master", "local[2]",
               "--driver-java-options", SPARK_TEST_JAVA_OPTIONS,
               "--class", "org.apache.spark.sql.connect.service.SparkConnectServer"]
    command += [arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")]
    with serving("spark-connect", [*command, "spark-internal"], (LOOPBACK, port), folder, timeout=180,
                 env={"SPARK_HOME": str(home)}):
        yield f"sc://{LOOPBACK}:{port}"
