"""Serve the project's DAGs in a real Airflow: `dag-factory ui` starts `airflow standalone`, login on.

The settings here are the ones every Airflow component of the project shares (scheduler,
dag-processor, triggerer, API server, workers): the project's dags/, no example DAGs, the
simple auth manager with a generated password, the API server on loopback only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from dag_factory.airflow.runner import airflow_environment
from dag_factory.project import Project

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
ADMIN_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
LOOPBACK = "127.0.0.1"
WORKER_NAME_VARIABLE = "DAG_FACTORY_WORKER_NAME"
#: What the scheduler's forkserver imports once for every LocalExecutor worker and task process
#: forked from it: Airflow's worker and task runner, and the workflow's ML stack.
TASK_PRELOAD = ("airflow.executors.local_executor", "airflow.sdk.execution_time.task_runner", "dag_factory.workflow")


def password_file(home: Path | str) -> Path:
    """Where the simple auth manager keeps the generated passwords of an Airflow home."""
    return Path(home) / PASSWORDS_FILE


def server_environment(project: Project, port: int, home: Path | str | None = None) -> dict[str, str]:
    """Environment of an Airflow deployment of ``project`` whose API server listens on loopback ``port``.

    Login is on (user ``admin``, password generated on first start into ``password_file(home)``);
    DAGs start unpaused so a trigger from the UI or the REST API runs at once; task processes
    reach the API server's execution API on loopback.
    """
    env = airflow_environment(project)
    if home is not None:
        env["AIRFLOW_HOME"] = str(home)
    venv_bin = str(Path(sys.executable).parent)  # `airflow standalone` starts its components as `airflow ...`
    env.update({
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "")]),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file(env["AIRFLOW_HOME"])),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{LOOPBACK}:{port}/execution/",
        "AIRFLOW__CORE__PARALLELISM": os.environ.get("AIRFLOW__CORE__PARALLELISM", str(default_parallelism())),
        **preloaded_task_processes(),
    })
    return env


def preloaded_task_processes() -> dict[str, str]:
    """Settings under which a LocalExecutor task starts with pandas and scikit-learn already imported.

    Each task is a fresh process; importing the ML stack costs it 3-5 s, more than most steps
    take. Airflow 3.3's ``[scheduler] mp_start_method = forkserver`` with ``mp_forkserver_preload``
    imports those modules once in the forkserver, and the executor's workers and their task
    processes are forked from it with the modules loaded. Set either variable to choose otherwise.
    """
    return {name: os.environ.get(name, value) for name, value in (
        ("AIRFLOW__SCHEDULER__MP_START_METHOD", "forkserver"),
        ("AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD", ",".join(TASK_PRELOAD)))}


def default_parallelism() -> int:
    """Task processes run at once by the LocalExecutor: one per CPU (Airflow's default, 32, swamps a laptop).

    Training is CPU-bound, so more processes than cores only adds memory and switching.
    Set ``AIRFLOW__CORE__PARALLELISM`` to choose another number.
    """
    return max(2, os.cpu_count() or 2)


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def worker_hostname() -> str:
    """The host name Airflow records on a task instance: $DAG_FACTORY_WORKER_NAME, else this machine's FQDN.

    Point ``[core] hostname_callable`` here when several workers share one machine, so the UI
    and the REST API tell them apart.
    """
    return os.environ.get(WORKER_NAME_VARIABLE) or socket.getfqdn()


def run_ui(project: Project, port: int = 8080) -> int:
    """Run `airflow standalone` on http://localhost:PORT for the project's DAGs until Ctrl+C."""
    if port_in_use(port):
        print(f"error: port {port} on localhost is already in use; choose another with --port", file=sys.stderr)
        return 2
    env = server_environment(project, port)
    secrets = password_file(env["AIRFLOW_HOME"])
    print(f"Airflow UI:  http://localhost:{port}  (DAGs from {project.dags}, home {env['AIRFLOW_HOME']})")
    print(f"Log in as:   {ADMIN_USER}")
    state = "" if secrets.exists() else " (generated at the first start)"
    print(f"Password:    in {secrets}{state}")
    print("Stop with Ctrl+C.", flush=True)
    # standalone gets its own process group, so that Ctrl+C reaches only this process, which passes
    # one SIGINT on: standalone then stops each component once. (When the terminal's SIGINT also
    # hits the components, Airflow 3.3's dag-processor can hang in its shutdown.)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # not ignored (background job): standalone inherits that
    airflow = str(Path(sys.executable).parent / "airflow")
    with subprocess.Popen([airflow, "standalone"], env={**os.environ, **env}, process_group=0) as standalone:

        def stop(*_: object) -> None:
            standalone.send_signal(signal.SIGINT)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        return standalone.wait()
