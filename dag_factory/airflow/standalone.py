"""Serve the project's DAGs in a real Airflow: `dag-factory ui` starts its components, login on.

The settings here are the ones every Airflow component of the project shares (scheduler,
dag-processor, triggerer, API server, workers): the project's dags/, no example DAGs, the
simple auth manager with a generated password, the API server on loopback only.

`dag-factory ui` starts what `airflow standalone` starts (API server, scheduler, dag-processor,
triggerer, LocalExecutor), but itself: Airflow 3.3's log servers of the scheduler and the
triggerer bind every interface (``host=""`` in ``airflow.utils.serve_logs``; no setting names a
host), and standalone cannot pass them ``--skip-serve-logs``. Without them the API server reads
the task logs from this machine's files, so nothing listens beyond 127.0.0.1. Each component's
output goes to its own file under ``$AIRFLOW_HOME/logs/ui/``; the console keeps the URL, the
login, where the logs are, and errors.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from dag_factory.airflow.runner import airflow_environment
from dag_factory.artifacts.model_file import import_skops_first
from dag_factory.project import Project

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
ADMIN_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
LOOPBACK = "127.0.0.1"
WORKER_NAME_VARIABLE = "DAG_FACTORY_WORKER_NAME"
#: What the scheduler's forkserver imports once for every LocalExecutor worker and task process
#: forked from it (and a Celery worker at its start, see ``celery_config``): skops first (see
#: ``model_file.import_skops_first``), Airflow's worker and task runner, the workflow's ML stack, and
#: the matplotlib parts each trained model draws its plots with.
TASK_PRELOAD = ("skops.io", "airflow.executors.local_executor", "airflow.sdk.execution_time.task_runner",
                "dag_factory.workflow", "matplotlib.figure", "matplotlib.backends.backend_agg")
#: The components of a local deployment and their commands; the log servers stay off (they bind every interface).
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}
#: Seconds a component gets to stop after SIGTERM before it is killed.
STOP_GRACE = 30
#: Lines of a failed component's log shown in the console.
TAIL_LINES = 15


def import_task_stack() -> None:
    """Import ``TASK_PRELOAD`` into this process, skops quietly first: for a process that task processes are
    forked from (a Celery worker at its start, the tests' forkserver)."""
    import_skops_first()
    for module in TASK_PRELOAD:
        importlib.import_module(module)


def password_file(home: Path | str) -> Path:
    """Where the simple auth manager keeps the generated passwords of an Airflow home."""
    return Path(home) / PASSWORDS_FILE


def server_environment(project: Project, port: int, home: Path | str | None = None) -> dict[str, str]:
    """Environment of an Airflow deployment of ``project`` whose API server listens on loopback ``port``.

    Login is on (user ``admin``, password generated on first start into ``password_file(home)``);
    task processes reach the API server's execution API on loopback.
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


def console_logs(home: Path | str) -> Path:
    """The folder of the components' output under an Airflow home: ``logs/ui/<component>.log``."""
    return Path(home) / "logs" / "ui"


def owner_only(path: Path) -> Path:
    """Create ``path`` if missing and make it readable by its owner only (0600): it holds a password."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
    path.chmod(0o600)
    return path


def run_ui(project: Project, port: int = 8080) -> int:
    """Run the project's Airflow on http://localhost:PORT until Ctrl+C; the console stays short."""
    if port_in_use(port):
        print(f"error: port {port} on localhost is already in use; choose another with --port", file=sys.stderr)
        return 2
    env = {**os.environ, **server_environment(project, port), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}
    home = env["AIRFLOW_HOME"]
    logs = console_logs(home)
    secrets = password_file(home)
    state = "" if secrets.exists() and secrets.stat().st_size else " (generated at the first start)"
    owner_only(secrets)  # Airflow appends to it, keeping its mode
    print(f"Airflow UI:  http://localhost:{port}  (DAGs from {project.dags}, home {home})")
    print(f"Log in as:   {ADMIN_USER}; the password is in {secrets}{state}")
    print(f"Logs:        {logs}/<component>.log; task logs in {Path(home) / 'logs'}")
    print("Stop with Ctrl+C.", flush=True)
    airflow = str(Path(sys.executable).parent / "airflow")
    with owner_only(logs / "db-migrate.log").open("w") as out:
        if subprocess.run([airflow, "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT).returncode:
            return _failed("db-migrate", logs)
    components = Components(logs)
    signal.signal(signal.SIGINT, components.request_stop)
    signal.signal(signal.SIGTERM, components.request_stop)
    try:
        for name, command in COMPONENTS.items():
            components.start(name, [airflow, *command], env)
        return components.watch(f"http://{LOOPBACK}:{port}")
    finally:
        components.stop()


class Components:
    """The running Airflow components, each in a process group of its own with its output in a file.

    Ctrl+C reaches only this process, which stops each component once (when the terminal's SIGINT
    also hits them, Airflow 3.3's dag-processor can hang in its shutdown).
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def start(self, name: str, command: list[str], env: dict[str, str]) -> None:
        with owner_only(self.logs / f"{name}.log").open("wb") as out:  # the API server's holds the password
            self.processes[name] = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                                    start_new_session=True)

    def request_stop(self, *_: object) -> None:
        self.stopping = True

    def exited(self) -> tuple[str, int] | None:
        """The first component that has exited, with its exit code; None while all run."""
        return next(((name, p.returncode) for name, p in self.processes.items() if p.poll() is not None), None)

    def tail(self, name: str, lines: int = TAIL_LINES) -> list[str]:
        """The last lines a component printed."""
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []

    def watch(self, base_url: str) -> int:
        """Wait until Ctrl+C (0) or until a component exits (1, with the end of its log); say once when ready."""
        ready = False
        while not self.stopping:
            if gone := self.exited():
                return _failed(self, *gone)
            if not ready and api_answers(base_url):
                ready = True
                print(f"Ready: {base_url.replace(LOOPBACK, 'localhost')}", flush=True)
            time.sleep(1)
        print("Stopping Airflow...", flush=True)
        return 0

    def stop(self) -> None:
        """SIGTERM each component's group, then SIGKILL whatever is left after STOP_GRACE seconds."""
        for process in self.processes.values():
            signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            signal_group(process, signal.SIGKILL)  # also children that outlived their parent
            process.wait()


def _failed(components: Components, name: str, code: int) -> int:
    """Say which component failed, with the end of its log; the exit code of `dag-factory ui`."""
    print(f"error: the Airflow {name} stopped (exit code {code}); the end of {components.logs / name}.log:",
          *components.tail(name), sep="\n", file=sys.stderr)
    return 1


def signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``process`` leads (its children too), if it is still there."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def api_answers(base_url: str) -> bool:
    """Whether the API server answers its health check."""
    try:
        with urllib.request.urlopen(f"{base_url}/api/v2/monitor/health", timeout=5) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False
