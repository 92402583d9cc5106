"""End to end through real Airflow: the breast_cancer experiment as a user runs it."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from conftest import copy_project, run_dag, task_instances
from dag_factory.storage.files import read_json
from dag_factory.artifacts.layout import best_dir, safe_run_id
from dag_factory.cli import main
from dag_factory.artifacts.model_file import load_model
from dag_factory.spec.schema import CLASSIFICATION_METRICS as METRICS

pytestmark = pytest.mark.airflow

MODELS = ["logistic_regression", "xgboost", "random_forest", "svm"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, airflow_db):
    """One real DAG run of the shipped breast_cancer spec, shared by the tests of this module."""
    project = copy_project(tmp_path_factory.mktemp("e2e") / "project")
    outcome = run_dag(project, "breast_cancer")
    return project, outcome


def test_run_succeeds_and_leaderboard_lists_every_model_with_cv_mean_and_std(first_run):
    project, outcome = first_run
    assert outcome.state == "success"
    board = read_json(outcome.folder / "leaderboard.json")
    rows = {r["name"]: r for r in board["leaderboard"]}
    assert sorted(rows) == sorted(MODELS)
    for row in rows.values():
        assert row["status"] == "ok"
        for metric in ("accuracy", "precision", "recall", "f1", "roc_auc"):
            assert 0.0 <= row["cv"][metric]["mean"] <= 1.0
            assert row["cv"][metric]["std"] >= 0.0
    ranked = [r["cv"]["roc_auc"]["mean"] for r in board["leaderboard"]]
    assert ranked == sorted(ranked, reverse=True)
    assert board["decision"]["promoted"] is True
    # 5 folds x 10 repeats: the SVM leads by a hair, inside its interval, so the simpler model is promoted
    assert board["leader"] == "svm" and board["winner"] == "logistic_regression"
    assert board["winner_reason"].startswith("logistic_regression is tied with the leader svm")
    assert all(r["vs_leader"]["folds"] == 50 for r in board["leaderboard"] if r["name"] != "svm")
    assert board["baseline"]["cv"]["roc_auc"]["mean"] == 0.5
    assert (outcome.folder / "run.log").read_text().count("Model svm CV roc_auc") == 1
    assert read_json(outcome.folder / "profile.json")["rows"] == 569


# --- the leaderboard of the shipped spec (5-fold CV x 10 repeats), as the run wrote it ----------------

def test_leaderboard_has_every_metric_with_mean_and_std_for_every_model(first_run):
    _, outcome = first_run
    board = read_json(outcome.folder / "leaderboard.json")
    assert board["cv_protocol"] == {"folds": 5, "repeats": 10, "seed": 42}
    for row in board["leaderboard"]:
        for metric in (*METRICS, "fit_seconds", "predict_seconds"):
            cv = row["cv"][metric]
            assert math.isfinite(cv["mean"]) and cv["std"] >= 0.0, (row["name"], metric)
        assert set(row["test"]) == set(METRICS)
        assert sum(map(sum, row["test_confusion_matrix"])) == 114  # the held-out 20 % of 569


def test_champion_of_the_shipped_spec_meets_the_bar(first_run):
    project, outcome = first_run
    board = read_json(outcome.folder / "leaderboard.json")
    winner = next(r for r in board["leaderboard"] if r["name"] == board["winner"])
    # the SVM leads by 0.0001 over 50 folds; the logistic regression is tied with it and simpler
    assert winner["name"] == "logistic_regression" and winner["rank"] == 2
    assert winner["verdict"].startswith("tied with the leader") and winner["vs_leader"]["ci_low"] < 0
    assert winner["cv"]["roc_auc"]["mean"] >= 0.99
    assert winner["cv"]["accuracy"]["mean"] >= 0.96
    card = read_json(best_dir(project.results, "breast_cancer") / "model_card.json")
    assert card["model"]["name"] == board["winner"]
    assert card["cv"]["roc_auc"] == winner["cv"]["roc_auc"]


def test_recall_is_the_share_of_malignant_tumours_found(first_run):
    """sklearn codes malignant as 0; the factory must code it 1 and compute recall for it."""
    _, outcome = first_run
    raw_target = load_breast_cancer().target  # 0 = malignant in scikit-learn's coding
    for row in read_json(outcome.folder / "leaderboard.json")["leaderboard"]:
        frame = pd.read_csv(outcome.folder / "models" / row["name"] / "predictions.csv")
        assert ((frame["true_label"] == "malignant") == (raw_target[frame["row_id"]] == 0)).all()
        assert ((frame["y_true"] == 1) == (frame["true_label"] == "malignant")).all()
        test = frame[frame["split"] == "test"]
        malignant = test[test["true_label"] == "malignant"]
        assert row["test"]["recall"] == pytest.approx((malignant["predicted_label"] == "malignant").mean())
        benign = test[test["true_label"] == "benign"]
        assert row["test"]["specificity"] == pytest.approx((benign["predicted_label"] == "benign").mean())
        cv = frame[frame["split"] == "cv"]
        per_fold = cv[cv["y_true"] == 1].groupby("fold").apply(lambda f: (f["y_pred"] == 1).mean(), include_groups=False)
        assert row["cv"]["recall"]["mean"] == pytest.approx(per_fold.mean())


def test_champion_loads_and_predicts_the_held_out_split(first_run):
    project, outcome = first_run
    best = best_dir(project.results, "breast_cancer")
    card = read_json(best / "model_card.json")
    assert card["run_id"] == outcome.run_id
    assert card["data"]["positive_class"] == "malignant"
    assert card["cv"]["roc_auc"]["mean"] >= 0.99
    model = load_model(best / "model.skops")
    test = pd.read_parquet(outcome.folder / "data" / "test.parquet")
    predicted = model.predict(test.drop(columns=["target"]))  # the class names, not the codes it learnt
    assert list(model.classes_) == card["data"]["classes"] == ["benign", "malignant"]
    truth = model.classes_[test["target"].to_numpy()]  # the split keeps codes: 1 is malignant
    accuracy = (predicted == truth).mean()
    assert accuracy >= 0.93
    malignant = truth == "malignant"
    assert malignant.sum() == 42  # 212 malignant of 569, stratified 20 % test split
    assert (predicted[malignant] == "malignant").mean() >= 0.9


def test_train_task_is_mapped_with_model_names_as_map_indexes(first_run, airflow_db):
    project, outcome = first_run
    rows = [r for r in task_instances(airflow_db, "breast_cancer", outcome.run_id) if r["task_id"] == "train"]
    assert [r["map_index"] for r in rows] == [0, 1, 2, 3]
    assert [r["rendered_map_index"] for r in rows] == MODELS
    assert {r["state"] for r in rows} == {"success"}
    tasks = {r["task_id"] for r in task_instances(airflow_db, "breast_cancer", outcome.run_id)}
    assert tasks == {"load_data", "profile", "preprocess", "train", "select", "promote", "report"}


def dag_run_note(db, dag_id: str, run_id: str) -> str:
    """The note of a DAG run (what the grid shows above it), from Airflow's metadata DB."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT n.content FROM dag_run_note n JOIN dag_run d ON d.id = n.dag_run_id "
                            "WHERE d.dag_id = ? AND d.run_id = ?", (dag_id, run_id)).fetchone()[0]


def test_second_run_on_same_data_skips_training_unless_forced(first_run, airflow_db, capsys):
    project, first = first_run
    assert main(["--project", str(project.root), "run", "breast_cancer"]) == 0  # the command a user types
    printed = capsys.readouterr().out
    run_id = re.search(r"^DAG run (\S+): success$", printed, re.MULTILINE).group(1)
    assert "DECIDED: the champion stands; data and spec unchanged since the champion was trained" in printed
    assert "(exit code 0)" in printed
    rows = task_instances(airflow_db, "breast_cancer", run_id)
    states = {r["task_id"]: r["state"] for r in rows}
    assert states["preprocess"] == "skipped" and states["train"] == "skipped" and states["promote"] == "skipped"
    assert [r["rendered_map_index"] for r in rows if r["task_id"] == "train"] == MODELS  # named in the grid
    # promote ran and skipped itself (try 1): skipped by Airflow instead, report would wait a scheduling pass
    assert [r["try_number"] for r in rows if r["task_id"] == "promote"] == [1]
    log_file = project.results / "runs" / "breast_cancer" / safe_run_id(run_id) / "run.log"
    log = log_file.read_text()
    assert "[warning  ] Skipped: data and spec unchanged since the champion was trained" in log  # not folded away
    assert dag_run_note(airflow_db, "breast_cancer", run_id).startswith("data and spec unchanged since the champion")

    # The terminal: where the log is, one line per task instance as it ends, then the summary; Airflow's own
    # output (migrations, DAG parsing, every task's log) only in run.log.
    tasks = printed.split("\n\nDAG run ")[0].splitlines()
    assert tasks[0] == f"Running breast_cancer through Airflow; its whole log: {log_file}"
    assert [line.split()[:2] for line in tasks[1:4]] == [["load_data", "success"], ["profile", "success"],
                                                        ["preprocess", "skipped"]]
    assert sorted(line.split()[0] for line in tasks[4:8]) == sorted(f"train[{m}]" for m in MODELS)
    assert {line.split()[1] for line in tasks[4:8]} == {"skipped"}
    assert [line.split()[:2] for line in tasks[8:]] == [["select", "skipped"], ["promote", "skipped"],
                                                      ["report", "skipped"]]
    assert "[4/4 models done]" in tasks[7]
    for noise in ("alembic", "DagBag", "[DAG TEST]", "Task instance state updated"):
        assert noise not in printed and noise in log
    assert printed.rstrip().endswith(f"Airflow's whole log of the run: {log_file}")

    winner = read_json(first.folder / "leaderboard.json")["winner"]
    forced = run_dag(project, "breast_cancer", force=True, models=[winner])  # the champion's model alone retrains
    assert forced.state == "success"
    board = read_json(forced.folder / "leaderboard.json")
    assert board["decision"]["promoted"] is False
    assert "does not beat the champion" in board["decision"]["reason"]
    assert board["decision"]["vs_champion"]["gain"] == 0.0  # the same model on the same folds
    card = read_json(best_dir(project.results, "breast_cancer") / "model_card.json")
    assert card["run_id"] == first.run_id  # the champion was not replaced by an equal model
    history = (best_dir(project.results, "breast_cancer") / "history.jsonl").read_text().splitlines()
    assert len(history) == 1 and json.loads(history[0])["run_id"] == first.run_id


def test_an_unknown_trigger_conf_key_fails_the_run_at_once_naming_the_nearest_param(first_run, airflow_db, capsys):
    """A misspelt `{"modelz": [...]}` from the UI or the API must not train every model unnoticed."""
    project, _ = first_run
    outcome = run_dag(project, "breast_cancer", modelz=["svm"])
    assert outcome.state == "failed"
    states = {r["task_id"]: r["state"] for r in task_instances(airflow_db, "breast_cancer", outcome.run_id)}
    assert states["load_data"] == "failed" and states["train"] == "upstream_failed"
    printed = capsys.readouterr().out
    assert '"modelz" is not a param of this DAG (did you mean "models"?); its params are: models, cv_folds, force' \
        in printed
    assert printed.splitlines()[1].split()[:2] == ["load_data", "failed"]
    assert not (outcome.folder / "data").exists()  # nothing was loaded
