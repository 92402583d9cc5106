"""Real Airflow components for the end-to-end tests: start them, talk to their REST API, stop them.

Every component runs in its own process group with its output in ``<home>/service-logs/<name>.log``;
``AirflowServices.stop`` ends each group (SIGTERM, then SIGKILL), so task processes and
API-server workers go too. Only loopback addresses are used.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from dag_factory.airflow.standalone import (ADMIN_USER, COMPONENTS, LOOPBACK, Components, api_answers, password_file,
                                           server_environment)
from dag_factory.project import Project

AIRFLOW = str(Path(sys.executable).parent / "airflow")
POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
REDIS_BROKER = f"redis://{REDIS[0]}:{REDIS[1]}/0"


def free_port() -> int:
    """A TCP port nobody listens on at the moment, on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def unreachable(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be reached, or None when it accepts connections."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return None
    except OSError as err:
        return f"{host}:{port} is not reachable ({err})"


@contextmanager
def postgres_database(prefix: str = "dag_factory_test") -> Iterator[str]:
    """A throw-away PostgreSQL database (trust auth, user postgres), dropped afterwards; yields its SQLAlchemy URL."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname="postgres")
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+psycopg2://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@contextmanager
def celery_queue(prefix: str = "dag_factory") -> Iterator[str]:
    """A Celery queue of its own on the Redis broker (no other worker takes its tasks); its keys go afterwards."""
    import redis

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        client = redis.Redis.from_url(REDIS_BROKER)
        if keys := client.keys(f"*{name}*"):
            client.delete(*keys)
        client.close()


class AirflowServices:
    """Airflow components of one throw-away deployment of ``project``: a home, a port, a process group each."""

    def __init__(self, project: Project, home: Path, settings: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.logs = home / "service-logs"  # Airflow writes its task logs to <home>/logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            **server_environment(project, self.port, home),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",  # parse once: the CPU is for the tasks
            **(settings or {}),
        }
        self.components = Components(self.logs)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def airflow(self, *args: str, timeout: float = 300) -> None:
        """Run one `airflow ...` command to completion (e.g. `db migrate`); raise with its output if it fails."""
        done = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        """Start a long-running command (e.g. ``[AIRFLOW, "scheduler"]``) in its own process group."""
        self.components.start(name, command, {**self.env, **(env or {})})

    def start_airflow(self) -> None:
        """Migrate the metadata DB, then start what `dag-factory ui` starts: API server, scheduler,
        dag-processor and triggerer, their log servers off (they would listen on every interface)."""
        self.airflow("db", "migrate")
        for name, command in COMPONENTS.items():
            self.start(name, [AIRFLOW, *command])

    def check_alive(self) -> None:
        """Raise, with the end of its output, when a component has exited."""
        if gone := self.components.exited():
            name, code = gone
            raise RuntimeError(f"{name} exited with {code}:\n" + "\n".join(self.components.tail(name, 40)))

    def stop(self) -> None:
        """End every component's process group: SIGTERM, then SIGKILL whatever is left."""
        self.components.stop()

    def api(self, timeout: float = 180) -> AirflowApi:
        """A logged-in REST API client, once the API server answers and has generated the admin password."""
        deadline = time.monotonic() + timeout
        secrets_file = password_file(self.home)
        while True:
            self.check_alive()
            if secrets_file.exists() and secrets_file.stat().st_size and api_answers(self.base_url):
                password = json.loads(secrets_file.read_text())[ADMIN_USER]
                return AirflowApi(self.base_url, ADMIN_USER, password)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API server did not answer on {self.base_url} within {timeout} s")
            time.sleep(1)

    def __enter__(self) -> AirflowServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AirflowApi:
    """The Airflow REST API (v2) with a JWT token from the simple auth manager's /auth/token."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        reply = httpx.post(f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30)
        reply.raise_for_status()
        self.client = httpx.Client(base_url=f"{base_url}/api/v2", timeout=30,
                                   headers={"Authorization": f"Bearer {reply.json()['access_token']}"})

    def get(self, path: str, **params: Any) -> Any:
        reply = self.client.get(path, params=params)
        reply.raise_for_status()
        return reply.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        reply = self.client.post(path, json=body)
        reply.raise_for_status()
        return reply.json()

    def wait_until_healthy(self, services: AirflowServices, components: tuple[str, ...], timeout: float = 180) -> None:
        """Wait until the health endpoint reports every named component (scheduler, triggerer, ...) healthy."""
        deadline = time.monotonic() + timeout
        while True:
            services.check_alive()
            health = self.get("/monitor/health")
            if all((health.get(c) or {}).get("status") == "healthy" for c in components):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Airflow not healthy within {timeout} s: {health}")
            time.sleep(2)

    def wait_for_dag(self, services: AirflowServices, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        """The DAG's details, once the dag-processor has parsed and stored it."""
        deadline = time.monotonic() + timeout
        while True:
            services.check_alive()
            reply = self.client.get(f"/dags/{dag_id}/details")
            if reply.status_code == 200:
                return reply.json()
            if time.monotonic() > deadline:
                raise TimeoutError(f"DAG {dag_id} did not appear within {timeout} s ({reply.status_code})")
            time.sleep(2)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a DAG run now; its run id."""
        return self.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})["dag_run_id"]

    def wait_for_run(self, services: AirflowServices, dag_id: str, run_id: str, timeout: float = 600) -> dict[str, Any]:
        """The DAG run, once it has finished (success or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            services.check_alive()
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} of {dag_id} still {run['state']} after {timeout} s")
            time.sleep(2)

    def task_instances(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[dict[str, Any]]:
        """Task instances of a run (all, or one task's mapped instances), ordered by task and map index."""
        params = {"limit": 100} | ({"task_id": task_id} if task_id else {})
        rows = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", **params)["task_instances"]
        return sorted(rows, key=lambda r: (r["task_id"], r["map_index"]))


def overlapping(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of task instances (by rendered map index) whose start-end intervals overlap."""
    spans = [(r["rendered_map_index"], r["start_date"], r["end_date"]) for r in rows]
    return [(a, b) for i, (a, start_a, end_a) in enumerate(spans) for (b, start_b, end_b) in spans[i + 1:]
            if _time(start_a) < _time(end_b) and _time(start_b) < _time(end_a)]


def _time(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def wall_seconds(run: dict[str, Any]) -> float:
    """A finished DAG run's wall time, start to end."""
    return _time(run["end_date"]) - _time(run["start_date"])
