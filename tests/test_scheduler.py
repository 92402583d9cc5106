"""breast_cancer on a real Airflow: scheduler, dag-processor, triggerer and API server (LocalExecutor,
SQLite, login on, as `dag-factory ui` configures them) in a temporary home, driven and checked
through the REST API only. The train instances must overlap in time: they run in parallel.
"""

from __future__ import annotations

import time

import pytest

from airflow_services import AirflowApi, AirflowServices, overlapping, wall_seconds
from conftest import with_fewer_cv_repeats
from dag_factory.project import Project
from dag_factory.spec.loader import find_experiment, load_catalog

pytestmark = pytest.mark.airflow

MODELS = ["logistic_regression", "xgboost", "random_forest", "svm"]
CONSUMER = "champion_batch_predict_breast_cancer"


def write_new_rows(project: Project, rows: int = 25) -> None:
    """The file of new rows the example consumer DAG scores: breast cancer features, no target."""
    from sklearn.datasets import load_breast_cancer

    incoming = project.results / "incoming"
    incoming.mkdir(parents=True)
    load_breast_cancer(as_frame=True).data.head(rows).to_csv(incoming / "breast_cancer.csv", index=False)


def wait_for_first_run(api: AirflowApi, services: AirflowServices, dag_id: str, timeout: float = 300) -> dict:
    """The first run of an asset-scheduled DAG, once it has finished."""
    deadline = time.monotonic() + timeout
    while not (runs := api.get(f"/dags/{dag_id}/dagRuns")["dag_runs"]):
        services.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{dag_id} was not triggered within {timeout} s")
        time.sleep(2)
    return api.wait_for_run(services, dag_id, runs[0]["dag_run_id"], timeout)


def test_breast_cancer_trains_its_models_in_parallel_on_a_real_scheduler(project, tmp_path, capsys):
    with_fewer_cv_repeats(project)
    write_new_rows(project)
    home = tmp_path / "airflow-home"
    settings = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db"}
    with AirflowServices(project, home, settings) as services:
        services.start_airflow()
        api = services.api()
        api.wait_until_healthy(services, ("scheduler", "triggerer", "dag_processor"))

        # What the UI shows of the DAG: docs, tags, params a trigger can override, retries from the spec.
        details = api.wait_for_dag(services, "breast_cancer")
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
        run = api.wait_for_run(services, "breast_cancer", run_id)
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
        consumer = wait_for_first_run(api, services, CONSUMER)
        assert consumer["state"] == "success"
        assert len(list((project.results / "predictions" / "breast_cancer").glob("*.csv"))) == 1

        # Retraining the winner alone on the same data cannot beat it: promote succeeds, no asset event.
        again = api.trigger("breast_cancer", {"models": [events[0]["extra"]["winner"]], "force": True})
        assert api.wait_for_run(services, "breast_cancer", again)["state"] == "success"
        promote = api.task_instances("breast_cancer", again, task_id="promote")
        assert [t["state"] for t in promote] == ["success"]
        assert api.get("/assets/events", source_dag_id="breast_cancer", source_run_id=again)["asset_events"] == []

        # Unchanged data: nothing trains, and the run's note says why (set by the plugin's listener in the scheduler).
        skipped = api.trigger("breast_cancer")
        assert api.wait_for_run(services, "breast_cancer", skipped)["state"] == "success"
        assert {t["state"] for t in api.task_instances("breast_cancer", skipped, task_id="train")} == {"skipped"}
        note = api.get(f"/dags/breast_cancer/dagRuns/{skipped}")["note"]
        assert note.startswith("data and spec unchanged since the champion was trained"), note

        with capsys.disabled():
            print(f"\nbreast_cancer on LocalExecutor (parallel): DAG run wall time {wall_seconds(run):.1f} s")


def test_dag_factory_ui_listens_on_loopback_only_and_keeps_its_console_short(project, tmp_path):
    """`dag-factory ui` as a user starts it: every listener on 127.0.0.1, the password file owner-only and
    never echoed, the console the URL, login, logs and `Ready`; a trigger conf key that is no param fails the
    run at once, naming the nearest one."""
    import json
    import os
    import select
    import signal
    import stat
    import subprocess
    import sys

    import psutil

    from airflow_services import AirflowApi, free_port
    from dag_factory.airflow.standalone import ADMIN_USER, console_logs, password_file

    home, port = tmp_path / "ui-home", free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600"}
    ui = subprocess.Popen([sys.executable, "-m", "dag_factory", "--project", str(project.root), "ui", "--port",
                           str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    console: list[str] = []

    def read_console(until: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(until in line for line in console):
            assert ui.poll() is None and time.monotonic() < deadline, "\n".join(console)
            if select.select([ui.stdout], [], [], 1)[0]:
                console.append(ui.stdout.readline().rstrip("\n"))

    class Alive:
        def check_alive(self) -> None:
            assert ui.poll() is None, "\n".join(console)

    try:
        read_console("Ready: ", 300)
        secrets_file = password_file(home)
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        password = json.loads(secrets_file.read_text())[ADMIN_USER]
        tree = [psutil.Process(ui.pid), *psutil.Process(ui.pid).children(recursive=True)]
        listening = {(c.laddr.ip, c.laddr.port) for p in tree for c in p.net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN}
        assert listening and {ip for ip, _ in listening} == {"127.0.0.1"}, listening
        assert ("127.0.0.1", port) in listening

        api = AirflowApi(f"http://127.0.0.1:{port}", ADMIN_USER, password)
        api.wait_for_dag(Alive(), "breast_cancer")
        run_id = api.trigger("breast_cancer", {"modelz": ["svm"]})
        assert api.wait_for_run(Alive(), "breast_cancer", run_id)["state"] == "failed"
        load = api.task_instances("breast_cancer", run_id, task_id="load_data")[0]
        assert load["state"] == "failed" and load["try_number"] == 1  # not retried: the same conf fails again
        log = api.get(f"/dags/breast_cancer/dagRuns/{run_id}/taskInstances/load_data/logs/1", full_content=True)
        assert '"modelz" is not a param of this DAG (did you mean "models"?)' in json.dumps(log).replace('\\"', '"')

        # `dag-factory run` beside this scheduler would have each task run twice: it refuses, naming the fix.
        beside = subprocess.run([sys.executable, "-m", "dag_factory", "--project", str(project.root), "run",
                                 "breast_cancer"], env=env, capture_output=True, text=True, timeout=300)
        assert beside.returncode == 2, beside.stdout + beside.stderr
        assert "a scheduler is running on this project's Airflow database" in beside.stderr
        assert "trigger breast_cancer in the UI" in beside.stderr and "Traceback" not in beside.stderr
        assert [r["dag_run_id"] for r in api.get("/dags/breast_cancer/dagRuns")["dag_runs"]] == [run_id]
    finally:
        os.kill(ui.pid, signal.SIGINT)
        rest, _ = ui.communicate(timeout=120)
    console += rest.splitlines()
    assert ui.returncode == 0, "\n".join(console)
    assert console == [
        f"Airflow UI:  http://localhost:{port}  (DAGs from {project.dags}, home {home})",
        f"Log in as:   {ADMIN_USER}; the password is in {secrets_file} (generated at the first start)",
        f"Logs:        {console_logs(home)}/<component>.log; task logs in {home / 'logs'}",
        "Stop with Ctrl+C.", f"Ready: http://localhost:{port}", "Stopping Airflow..."]
    assert password in (console_logs(home) / "api-server.log").read_text()  # Airflow prints it there, not here
    assert stat.S_IMODE((console_logs(home) / "api-server.log").stat().st_mode) == 0o600
