"""MLflow tracking against a real `mlflow server` on 127.0.0.1 (SQLite backend, local artifact store).

A two-model breast_cancer spec, with a ``tracking`` section, runs through Airflow; the runs,
metrics, models and the ``champion`` alias are read back through MlflowClient. A server that
is down fails the run clearly and leaves the local champion as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from airflow_services import free_port
from conftest import copy_project, fast_spec, run_dag, task_instances, write_experiment
from dag_factory.errors import TrackingError
from dag_factory.storage.files import manifest_problems, read_json
from dag_factory.artifacts.layout import best_dir
from dag_factory.artifacts.model_file import load_model
from dag_factory.spec.schema import TrackingSpec
from dag_factory.workflow import promote, report, run_steps, train
from dag_factory.tracking import CHAMPION_ALIAS
from evaluation_support import quick_spec, run_of
from servers import mlflow_server, mlflow_server_binary

pytestmark = pytest.mark.skipif(mlflow_server_binary() is None,
                                reason="no MLflow server: `make test` installs it into .venv/mlflow-server")

MODELS = ["logistic_regression", "xgboost"]  # a linear model and a booster: both MLflow flavours the catalog logs
TRACKED_MODELS = "  - model: logistic_regression\n    params: {C: 1.0}\n  - model: xgboost\n    params: {n_estimators: 30}\n"
EXPERIMENT = "breast_cancer_tracked"  # the MLflow experiment; the registered model keeps the DAG's name


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, mlflow_uri, airflow_db):
    """One real DAG run of a two-model breast_cancer spec with tracking on."""
    project = copy_project(tmp_path_factory.mktemp("tracked") / "project")
    (project.experiments / "breast_cancer.yaml").write_text(
        fast_spec("breast_cancer", TRACKED_MODELS) + f"tracking:\n  uri: {mlflow_uri}\n  experiment: {EXPERIMENT}\n")
    outcome = run_dag(project, "breast_cancer")
    assert outcome.state == "success"
    return project, outcome


def runs_of(client: MlflowClient, airflow_run_id: str) -> tuple:
    """The parent MLflow run of one DAG run and its nested runs by model name."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    [parent] = client.search_runs([experiment.experiment_id], filter_string=(
        f"tags.`dag_factory.airflow_run_id` = '{airflow_run_id}' and tags.`dag_factory.role` = 'dag_run'"))
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return parent, {run.info.run_name: run for run in children}


@contextmanager
def fluent_api(uri: str) -> Iterator[None]:
    """Point mlflow's module-level functions (load_model, get_model_info) at the test server for a while."""
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)


def artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, path)}


@pytest.mark.airflow
def test_a_dag_run_is_a_parent_run_with_a_nested_run_per_model(tracked, mlflow_uri):
    project, outcome = tracked
    client = MlflowClient(mlflow_uri)
    parent, children = runs_of(client, outcome.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["data.source"] == "sklearn:breast_cancer"
    assert parent.data.params["data.positive_class"] == "malignant" and parent.data.params["cv.folds"] == "3"
    assert {"profile.json", "leaderboard.json", "report.html"} <= artifact_paths(client, parent.info.run_id)

    board = read_json(outcome.folder / "leaderboard.json")
    assert sorted(children) == sorted(MODELS)
    for row in board["leaderboard"]:
        child = children[row["name"]]
        assert row["tracking"]["run_id"] == child.info.run_id and child.info.status == "FINISHED"
        for metric in ("roc_auc", "recall", "accuracy"):
            assert child.data.metrics[f"cv_{metric}_mean"] == pytest.approx(row["cv"][metric]["mean"], abs=1e-12)
            assert child.data.metrics[f"cv_{metric}_std"] == pytest.approx(row["cv"][metric]["std"], abs=1e-12)
            assert child.data.metrics[f"test_{metric}"] == pytest.approx(row["test"][metric], abs=1e-12)
        assert {"metrics.json", "predictions.csv", "plots"} <= artifact_paths(client, child.info.run_id)
        assert "plots/roc.png" in artifact_paths(client, child.info.run_id, "plots")
        with fluent_api(mlflow_uri):
            model = mlflow.models.get_model_info(row["tracking"]["model_uri"])
        assert len(model.signature.inputs.input_names()) == 30 and "mean radius" in model.signature.inputs.input_names()
        assert model.saved_input_example_info is not None
    assert children["logistic_regression"].data.params["C"] == "1.0"


@pytest.mark.airflow
def test_the_winner_is_tagged_and_the_champion_alias_names_its_model(tracked, mlflow_uri):
    project, outcome = tracked
    client = MlflowClient(mlflow_uri)
    board = read_json(outcome.folder / "leaderboard.json")
    _, children = runs_of(client, outcome.run_id)
    assert {name: run.data.tags["dag_factory.winner"] for name, run in children.items()} == {
        name: str(name == board["winner"]).lower() for name in MODELS}
    assert sorted(int(run.data.tags["dag_factory.rank"]) for run in children.values()) == list(range(1, len(MODELS) + 1))

    version = client.get_model_version_by_alias("breast_cancer", CHAMPION_ALIAS)
    assert version.run_id == children[board["winner"]].info.run_id
    assert board["decision"]["registered"] == {"registered_model": "breast_cancer", "version": version.version,
                                               "alias": CHAMPION_ALIAS}
    with fluent_api(mlflow_uri):
        served = mlflow.sklearn.load_model(f"models:/breast_cancer@{CHAMPION_ALIAS}")
    local = load_model(best_dir(project.results, "breast_cancer") / "model.skops")
    rows = pd.read_parquet(outcome.folder / "data" / "test.parquet").drop(columns=["target"])
    assert (served.predict_proba(rows) == local.predict_proba(rows)).all()  # the very model that was promoted


@pytest.mark.airflow
def test_a_run_that_does_not_beat_the_champion_leaves_the_alias_where_it_was(tracked, mlflow_uri):
    project, first = tracked
    client = MlflowClient(mlflow_uri)
    before = client.get_model_version_by_alias("breast_cancer", CHAMPION_ALIAS)
    forced = run_dag(project, "breast_cancer", force=True)
    assert forced.state == "success"
    decision = read_json(forced.folder / "leaderboard.json")["decision"]
    assert decision["promoted"] is False and decision.get("registered") is None
    assert client.get_model_version_by_alias("breast_cancer", CHAMPION_ALIAS).version == before.version
    assert len(client.search_model_versions("name='breast_cancer'")) == 1
    parent, children = runs_of(client, forced.run_id)
    assert parent.info.status == "FINISHED" and sorted(children) == sorted(MODELS)


@pytest.mark.airflow
def test_a_tracking_server_that_is_down_fails_the_run_clearly_and_keeps_the_champion(project, airflow_db):
    write_experiment(project, "quick", fast_spec("quick", "  - model: logistic_regression\n"))
    first = run_dag(project, "quick")
    assert first.state == "success"
    champion = best_dir(project.results, "quick")
    files = {p.name: p.read_bytes() for p in champion.iterdir()}

    dead = f"http://127.0.0.1:{free_port()}"
    write_experiment(project, "quick", "retries: 1\nretry_delay_seconds: 1\n"
                     + fast_spec("quick", "  - model: logistic_regression\n")
                     + f"tracking:\n  uri: {dead}\n  retries: 1\n  timeout_seconds: 2\n")
    down = run_dag(project, "quick", force=True)
    assert down.state == "failed"
    expected = f"tracking: starting the run failed on the MLflow server at {dead} after 1 retry"
    assert expected in (down.folder / "run.log").read_text()
    assert read_json(down.folder / "data" / "error.json")["error"].startswith(expected)  # what `run` prints
    tries = {r["task_id"]: (r["state"], r["try_number"]) for r in task_instances(airflow_db, "quick", down.run_id)}
    assert tries["load_data"] == ("failed", 2)  # Airflow retried it once
    assert not (down.folder / "models").exists()
    assert {p.name: p.read_bytes() for p in champion.iterdir()} == files and manifest_problems(champion) == []


def test_a_model_whose_logging_fails_fails_alone_and_publishes_nothing(tmp_path):
    spec = quick_spec("logging_fails", "  - model: logistic_regression\n")
    results = tmp_path / "results"
    folder = run_steps(run_of(spec, results, "r"), until="preprocess").folder
    dead = f"http://127.0.0.1:{free_port()}"
    tracked = spec.model_copy(update={"tracking": TrackingSpec(uri=dead, retries=0, timeout_seconds=2)})
    with pytest.raises(TrackingError, match=f"logging model logistic_regression failed on the MLflow server at {dead}"):
        train(run_of(tracked, results, "r"), "logistic_regression")
    model_dir = folder / "models" / "logistic_regression"
    assert sorted(p.name for p in model_dir.iterdir()) == ["error.json"]
    assert "TrackingError" in read_json(model_dir / "error.json")["error"]
    assert [p.name for p in (folder / "models").iterdir()] == ["logistic_regression"]  # no scratch folder left


def test_a_promotion_not_registered_fails_the_run_until_a_retry_registers_it(mlflow_uri, tmp_path):
    from dag_factory.artifacts.champion_store import current_card
    from dag_factory.errors import RunFailed

    spec = quick_spec("register_later", "  - model: logistic_regression\n")
    spec = spec.model_copy(update={"tracking": TrackingSpec(uri=mlflow_uri)})
    down = spec.model_copy(update={"tracking": TrackingSpec(uri=f"http://127.0.0.1:{free_port()}", retries=0,
                                                            timeout_seconds=2)})
    results = tmp_path / "results"
    folder = run_steps(run_of(spec, results, "r1"), until="select").folder

    with pytest.raises(TrackingError, match="registering logistic_regression as register_later@champion failed"):
        promote(run_of(down, results, "r1"))
    assert current_card(results, "register_later").run_id == "r1"  # promoted, whole, before the registration
    with pytest.raises(RunFailed, match="promoted to .* but not registered in MLflow .*clear the promote task"):
        report(run_of(spec, results, "r1"))

    retried = promote(run_of(spec, results, "r1"))
    assert retried["reason"].startswith("already promoted by an earlier attempt of this run")
    report(run_of(spec, results, "r1"))  # the run is whole now
    version = MlflowClient(mlflow_uri).get_model_version_by_alias("register_later", CHAMPION_ALIAS)
    assert retried["registered"]["version"] == version.version == "1"
    assert version.run_id == read_json(folder / "leaderboard.json")["leaderboard"][0]["tracking"]["run_id"]


def test_a_rollback_moves_the_champion_alias_back_to_the_restored_models_version(mlflow_uri, tmp_path):
    from dag_factory.artifacts.champion_store import current_card
    from dag_factory.steps.rollback import rollback
    from dag_factory.tracking import move_champion_alias

    tracking = {"tracking": TrackingSpec(uri=mlflow_uri)}
    weak = quick_spec("rolled_back", "  - model: stump\n").model_copy(update=tracking)
    strong = quick_spec("rolled_back", "  - model: logistic_regression\n").model_copy(update=tracking)
    results = tmp_path / "results"
    run_steps(run_of(weak, results, "r1"), until="promote")
    run_steps(run_of(strong, results, "r2"), until="promote")
    client = MlflowClient(mlflow_uri)
    assert client.get_model_version_by_alias("rolled_back", CHAMPION_ALIAS).version == "2"

    entry = rollback(results, "rolled_back")
    assert current_card(results, "rolled_back").run_id == "r1"
    assert move_champion_alias(strong, results, entry.run_id) == "rolled_back@champion -> version 1"
    assert client.get_model_version_by_alias("rolled_back", CHAMPION_ALIAS).version == "1"
