"""breast_cancer on a real Airflow, started as a user starts it: `dag-factory ui` (scheduler, dag-processor,
triggerer and API server; LocalExecutor, SQLite, login on) in a temporary home, driven and checked through
the REST API only. One deployment serves the tests of this file, in order: its console and listeners, a
trigger conf that fails at once, the refusal of `dag-factory run` beside it, runs whose train instances
overlap in time (they run in parallel), promotions that wait for a person (approved, rejected, timed out),
and last Ctrl+C.
"""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from getpass import getuser
from pathlib import Path

import psutil
import pytest

from airflow_services import AirflowApi, overlapping, wall_seconds, free_port
from conftest import copy_project, fast_spec, with_fewer_cv_repeats, write_experiment
from dag_factory.airflow.standalone import ADMIN_USER, console_logs, password_file
from dag_factory.artifacts.champion_store import current_card
from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import Leaderboard
from dag_factory.cli import main
from dag_factory.project import Project
from dag_factory.spec.loader import find_experiment, load_catalog

pytestmark = pytest.mark.airflow

MODELS = ["logistic_regression", "xgboost", "random_forest", "svm"]
CONSUMER = "champion_batch_predict_breast_cancer"
APPROVAL = "promotion: {approval: required, timeout_hours: 1}\n"
#: Experiments whose promotion waits for a person: approved by the CLI, rejected in the REST API, timed out
#: (after 10.8 s: a timeout within seconds of the task pausing meets the race described at ANSWER_DELAY_SECONDS).
GATED_SPECS = {"gated_cli": APPROVAL, "gated_api": APPROVAL,
               "gated_timeout": "promotion: {approval: required, timeout_hours: 0.003}\n"}


def write_new_rows(project: Project, rows: int = 25) -> None:
    """The file of new rows the example consumer DAG scores: breast cancer features, no target."""
    from sklearn.datasets import load_breast_cancer

    incoming = project.results / "incoming"
    incoming.mkdir(parents=True)
    load_breast_cancer(as_frame=True).data.head(rows).to_csv(incoming / "breast_cancer.csv", index=False)


@dataclass
class UI:
    """A running `dag-factory ui` and what its tests read: its console, home, port and REST API."""

    process: subprocess.Popen
    project: Project
    home: Path
    port: int
    env: dict[str, str]
    console: list[str] = field(default_factory=list)
    api: AirflowApi | None = None

    def read_console(self, until: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(until in line for line in self.console):
            assert self.process.poll() is None and time.monotonic() < deadline, "\n".join(self.console)
            if select.select([self.process.stdout], [], [], 1)[0]:
                self.console.append(self.process.stdout.readline().rstrip("\n"))

    def check_alive(self) -> None:
        assert self.process.poll() is None, "\n".join(self.console)


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """`dag-factory ui` on a copy of the project (fewer CV repeats, a file of new rows), until the last test stops it."""
    project = copy_project(tmp_path_factory.mktemp("scheduler") / "project")
    root = project.root
    with_fewer_cv_repeats(project)
    write_new_rows(project)
    for name, extra in GATED_SPECS.items():
        write_experiment(project, name, fast_spec(name, "  - model: logistic_regression\n") + extra)
    home, port = root.parent / "ui-home", free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
           "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2"}  # the timed-out approval is noticed soon
    process = subprocess.Popen([sys.executable, "-m", "dag_factory", "--project", str(root), "ui", "--port",
                                str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    deployment = UI(process, project, home, port, env)
    try:
        deployment.read_console("Ready: ", 300)
        password = json.loads(password_file(home).read_text())[ADMIN_USER]
        deployment.api = AirflowApi(f"http://127.0.0.1:{port}", ADMIN_USER, password)
        yield deployment
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=60)


def wait_for_first_run(ui: UI, dag_id: str, timeout: float = 300) -> dict:
    """The first run of an asset-scheduled DAG, once it has finished."""
    deadline = time.monotonic() + timeout
    while not (runs := ui.api.get(f"/dags/{dag_id}/dagRuns")["dag_runs"]):
        ui.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} was not triggered within {timeout} s")
        time.sleep(2)
    return ui.api.wait_for_run(ui, dag_id, runs[0]["dag_run_id"], timeout)


def test_dag_factory_ui_listens_on_loopback_only_and_a_bad_trigger_conf_fails_at_once(ui):
    """Every listener on 127.0.0.1, the password file owner-only; a trigger conf key that is no param fails the
    run at once, naming the nearest one; `dag-factory run` beside the scheduler refuses, naming the fix."""
    assert stat.S_IMODE(password_file(ui.home).stat().st_mode) == 0o600
    tree = [psutil.Process(ui.process.pid), *psutil.Process(ui.process.pid).children(recursive=True)]
    listening = {(c.laddr.ip, c.laddr.port) for p in tree for c in p.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN}
    assert listening and {ip for ip, _ in listening} == {"127.0.0.1"}, listening
    assert ("127.0.0.1", ui.port) in listening

    api = ui.api
    api.wait_for_dag(ui, "breast_cancer")
    run_id = api.trigger("breast_cancer", {"modelz": ["svm"]})
    assert api.wait_for_run(ui, "breast_cancer", run_id)["state"] == "failed"
    load = api.task_instances("breast_cancer", run_id, task_id="load_data")[0]
    assert load["state"] == "failed" and load["try_number"] == 1  # not retried: the same conf fails again
    log = api.get(f"/dags/breast_cancer/dagRuns/{run_id}/taskInstances/load_data/logs/1", full_content=True)
    assert '"modelz" is not a param of this DAG (did you mean "models"?)' in json.dumps(log).replace('\\"', '"')

    # `dag-factory run` beside this scheduler would have each task run twice: it refuses, naming the fix.
    beside = subprocess.run([sys.executable, "-m", "dag_factory", "--project", str(ui.project.root), "run",
                             "breast_cancer"], env=ui.env, capture_output=True, text=True, timeout=300)
    assert beside.returncode == 2, beside.stdout + beside.stderr
    assert "a scheduler is running on this project's Airflow database" in beside.stderr
    assert "trigger breast_cancer in the UI" in beside.stderr and "Traceback" not in beside.stderr
    assert [r["dag_run_id"] for r in api.get("/dags/breast_cancer/dagRuns")["dag_runs"]] == [run_id]


def test_breast_cancer_trains_its_models_in_parallel_on_a_real_scheduler(ui, capsys):
    project, api = ui.project, ui.api
    api.wait_until_healthy(ui, ("scheduler", "triggerer", "dag_processor"))

    # What the UI shows of the DAG: docs, tags, params a trigger can override, retries from the spec.
    details = api.wait_for_dag(ui, "breast_cancer")
    assert details["is_paused"] is False
    assert "Benign vs malignant" in details["doc_md"]
    assert {"dag_factory", "medical"} <= {t["name"] for t in details["tags"]}
    assert details["params"]["models"]["value"] == MODELS
    assert {"cv_folds", "force"} <= set(details["params"])
    spec = find_experiment(project.experiments, load_catalog(project.models)[0], "breast_cancer")
    retries = {t["task_id"]: t["retries"] for t in api.get("/dags/breast_cancer/tasks")["tasks"]}
    assert retries["load_data"] == spec.retries
    assert retries["train"] == spec.train_retries()

    run_id = api.trigger("breast_cancer")
    run = api.wait_for_run(ui, "breast_cancer", run_id)
    states = {t["task_id"]: t["state"] for t in api.task_instances("breast_cancer", run_id)}
    assert run["state"] == "success", states

    train = api.task_instances("breast_cancer", run_id, task_id="train")
    assert [t["map_index"] for t in train] == [0, 1, 2, 3]
    assert [t["rendered_map_index"] for t in train] == MODELS
    assert {t["state"] for t in train} == {"success"}
    assert overlapping(train), [(t["rendered_map_index"], t["start_date"], t["end_date"]) for t in train]

    # A first champion was promoted: one asset event, and the example consumer scored the new rows.
    events = api.get("/assets/events", source_dag_id="breast_cancer", source_run_id=run_id)["asset_events"]
    assert [e["name"] for e in events] == ["best_model_breast_cancer"]
    assert events[0]["extra"]["winner"] in MODELS and events[0]["extra"]["path"]
    consumer = wait_for_first_run(ui, CONSUMER)
    assert consumer["state"] == "success"
    assert len(list((project.results / "predictions" / "breast_cancer").glob("*.csv"))) == 1

    # Retraining the winner alone on the same data cannot beat it: promote succeeds, no asset event.
    again = api.trigger("breast_cancer", {"models": [events[0]["extra"]["winner"]], "force": True})
    assert api.wait_for_run(ui, "breast_cancer", again)["state"] == "success"
    promote = api.task_instances("breast_cancer", again, task_id="promote")
    assert [t["state"] for t in promote] == ["success"]
    assert api.get("/assets/events", source_dag_id="breast_cancer", source_run_id=again)["asset_events"] == []

    # Unchanged data: nothing trains, and the run's note says why (set by the plugin's listener in the scheduler).
    skipped = api.trigger("breast_cancer")
    assert api.wait_for_run(ui, "breast_cancer", skipped)["state"] == "success"
    assert {t["state"] for t in api.task_instances("breast_cancer", skipped, task_id="train")} == {"skipped"}
    note = api.get(f"/dags/breast_cancer/dagRuns/{skipped}")["note"]
    assert note.startswith("data and spec unchanged since the champion was trained"), note

    with capsys.disabled():
        print(f"\nbreast_cancer on LocalExecutor (parallel): DAG run wall time {wall_seconds(run):.1f} s")


def wait_for_task_state(ui: UI, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ui.check_alive()
        found = [t["state"] for t in ui.api.task_instances(dag_id, run_id, task_id=task_id)]
        if found == [state]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} {task_id} still {found} after {timeout} s, not {state}")
        time.sleep(2)


#: How long the test waits, as a person would, between seeing the request and answering it. An answer
#: within about a second of the task pausing races Airflow 3.3: the scheduler re-queues the task
#: while the executor still reports the paused process's exit, fails that try to up_for_retry,
#: and the retry asks again (seen on a busy machine).
ANSWER_DELAY_SECONDS = 10


def wait_until_asked(ui: UI, dag_id: str, run_id: str) -> None:
    """Wait until the approve task waits for an answer, and then a little longer (ANSWER_DELAY_SECONDS)."""
    wait_for_task_state(ui, dag_id, run_id, "approve", "awaiting_input")
    time.sleep(ANSWER_DELAY_SECONDS)


def test_on_a_real_scheduler_requests_are_approved_by_the_cli_rejected_by_the_rest_api_or_time_out(ui, monkeypatch):
    project, api, specs = ui.project, ui.api, GATED_SPECS
    runs = {}
    for name in specs:
        api.wait_for_dag(ui, name)
        runs[name] = api.trigger(name)

    wait_until_asked(ui, "gated_api", runs["gated_api"])
    path = f"/dags/gated_api/dagRuns/{runs['gated_api']}/taskInstances/approve/-1/hitlDetails"
    request = api.get(path)  # what Required actions shows
    assert request["subject"].startswith("Promote logistic_regression (CV roc_auc 0.9")
    assert "| challenger | logistic_regression |" in request["body"] and request["defaults"] == ["Reject"]
    assert api.client.patch(path, json={"chosen_options": ["Reject"]}).status_code == 200

    wait_until_asked(ui, "gated_cli", runs["gated_cli"])
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{ui.home}/airflow.db")
    assert main(["--project", str(project.root), "approve", "gated_cli"]) == 0

    finished = {name: api.wait_for_run(ui, name, run_id) for name, run_id in runs.items()}
    assert {name: run["state"] for name, run in finished.items()} == dict.fromkeys(specs, "success")
    decisions = {name: Leaderboard.read(RunFiles.of(project.results, name, runs[name]).leaderboard).decision
                 for name in specs}
    assert decisions["gated_cli"].promoted and decisions["gated_cli"].reason.endswith(f"approved by {getuser()}")
    assert not decisions["gated_api"].promoted and "not promoted: rejected by admin" in decisions["gated_api"].reason
    assert not decisions["gated_timeout"].promoted and decisions["gated_timeout"].approval.timed_out
    assert "no answer within 0.003h" in decisions["gated_timeout"].reason
    assert current_card(project.results, "gated_cli").run_id == runs["gated_cli"]
    assert current_card(project.results, "gated_api") is None and current_card(project.results, "gated_timeout") is None


def test_ctrl_c_stops_the_ui_and_its_console_stays_short(ui):
    """The console holds the URL, login, logs and `Ready`, then `Stopping`; the password is only in the log file."""
    os.kill(ui.process.pid, signal.SIGINT)
    rest, _ = ui.process.communicate(timeout=120)
    console = ui.console + rest.splitlines()
    assert ui.process.returncode == 0, "\n".join(console)
    port, home, secrets_file = ui.port, ui.home, password_file(ui.home)
    assert console == [
        f"Airflow UI:  http://localhost:{port}  (DAGs from {ui.project.dags}, home {home})",
        f"Log in as:   {ADMIN_USER}; the password is in {secrets_file} (generated at the first start)",
        f"Logs:        {console_logs(home)}/<component>.log; task logs in {home / 'logs'}",
        "Stop with Ctrl+C.", f"Ready: http://localhost:{port}", "Stopping Airflow..."]
    password = json.loads(secrets_file.read_text())[ADMIN_USER]
    assert password in (console_logs(home) / "api-server.log").read_text()  # Airflow prints it there, not here
    assert stat.S_IMODE((console_logs(home) / "api-server.log").stat().st_mode) == 0o600
