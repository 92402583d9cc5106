"""breast_cancer on a real Airflow: scheduler, dag-processor, triggerer and API server (LocalExecutor,
SQLite, login on, as `dag-factory ui` configures them) in a temporary home, driven and checked
through the REST API only. The train instances must overlap in time: they run in parallel.
"""

from __future__ import annotations

import time

import pytest

from airflow_services import AirflowApi, AirflowServices, overlapping, wall_seconds
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

        with capsys.disabled():
            print(f"\nbreast_cancer on LocalExecutor (parallel): DAG run wall time {wall_seconds(run):.1f} s")
