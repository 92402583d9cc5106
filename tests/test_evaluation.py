"""Evaluation, selection and promotion, step by step without Airflow (real scikit-learn and XGBoost)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from conftest import fast_spec
from dag_factory.errors import ModelError
from dag_factory.storage.files import read_json
from dag_factory.artifacts.layout import best_dir
from dag_factory.artifacts.records import Leaderboard, MeanStd
from dag_factory.render.tables import leaderboard_table
from dag_factory.spec.schema import CLASSIFICATION_METRICS as METRICS
from dag_factory.steps.metrics import metric_is_better, threshold_for_recall
from dag_factory.steps.select import gate_failures
from evaluation_support import quick_spec, run_steps, spec_from_text

LOGREG = "  - model: logistic_regression\n"


def predictions(folder, model: str) -> pd.DataFrame:
    return pd.read_csv(folder / "models" / model / "predictions.csv")


def test_a_flipped_label_encoding_gives_the_same_malignant_metrics(tmp_path):
    """The same tumours coded 1 = malignant in a CSV (the opposite of scikit-learn's 0) score identically."""
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data.assign(diagnosis=(bunch.target == 0).astype(int))  # 1 = malignant
    csv = tmp_path / "wdbc.csv"
    frame.to_csv(csv, index=False)
    results = tmp_path / "results"
    sklearn_coded = run_steps(quick_spec("coded_sklearn", LOGREG), results, "a")
    csv_spec = spec_from_text(
        f"experiment: coded_csv\ndata:\n  source: {csv}\n  target: diagnosis\n  positive_class: 1\n"
        f"cv: {{folds: 3, repeats: 1, seed: 1}}\nmodels:\n{LOGREG}")
    csv_coded = run_steps(csv_spec, results, "b")
    a = read_json(sklearn_coded / "models" / "logistic_regression" / "metrics.json")
    b = read_json(csv_coded / "models" / "logistic_regression" / "metrics.json")
    assert a["classes"] == ["benign", "malignant"] and b["classes"] == ["0", "1"]
    for metric in METRICS:
        assert b["cv"][metric]["mean"] == pytest.approx(a["cv"][metric]["mean"], abs=1e-9), metric
        assert b["test"][metric] == pytest.approx(a["test"][metric], abs=1e-9), metric
    raw_target = bunch.target.to_numpy()
    rows = predictions(csv_coded, "logistic_regression")
    assert ((rows["y_true"] == 1) == (raw_target[rows["row_id"]] == 0)).all()


def test_naming_the_other_class_positive_turns_recall_around(tmp_path):
    spec = spec_from_text(fast_spec("benign_positive", LOGREG).replace("positive_class: malignant",
                                                                      "positive_class: benign"))
    folder = run_steps(spec, tmp_path / "results", "c")
    rows = predictions(folder, "logistic_regression")
    assert ((rows["y_true"] == 1) == (rows["true_label"] == "benign")).all()
    test = rows[rows["split"] == "test"]
    summary = read_json(folder / "models" / "logistic_regression" / "metrics.json")
    benign = test[test["true_label"] == "benign"]
    assert summary["test"]["recall"] == pytest.approx((benign["predicted_label"] == "benign").mean())


# --- gates, champion and challenger -----------------------------------------------------------------

def test_a_gate_no_model_meets_promotes_nothing_and_says_why(tmp_path):
    spec = quick_spec("gated", LOGREG, "selection: {require: {accuracy: 0.999, recall: 0.999}}\n")
    results = tmp_path / "results"
    folder = run_steps(spec, results, "gated")
    board = read_json(folder / "leaderboard.json")
    assert board["winner"] is None
    assert board["decision"]["promoted"] is False
    assert "no model is eligible" in board["decision"]["reason"]
    assert "accuracy" in board["decision"]["reason"] and "< required minimum 0.999" in board["decision"]["reason"]
    row = board["leaderboard"][0]
    assert row["eligible"] is False and len(row["ineligible_reasons"]) == 2
    assert not best_dir(results, "gated").exists()
    assert "NOT PROMOTED: no model is eligible" in leaderboard_table(Leaderboard.model_validate(board))


def test_a_worse_challenger_is_kept_out_a_better_one_promoted_and_history_shows_both(tmp_path):
    results = tmp_path / "results"
    runs = {"first": "  - model: stump\n", "worse": "  - model: dummy\n", "better": LOGREG}
    boards = {run: read_json(run_steps(quick_spec("duel", models), results, run) / "leaderboard.json")
              for run, models in runs.items()}
    assert boards["first"]["decision"]["promoted"] is True
    assert boards["first"]["decision"]["reason"] == "no champion yet"
    worse = boards["worse"]["decision"]  # a constant guess is no better than the chance baseline
    assert worse["promoted"] is False and "dummy: not clearly better than the baseline" in worse["reason"]
    better = boards["better"]["decision"]
    assert better["promoted"] is True and better["challenger_score"] > better["champion_score"]
    history = [json.loads(line) for line in (best_dir(results, "duel") / "history.jsonl").read_text().splitlines()]
    assert [(h["run_id"], h["model"]) for h in history] == [("first", "stump"), ("better", "logistic_regression")]
    card = read_json(best_dir(results, "duel") / "model_card.json")
    assert card["run_id"] == "better" and card["previous_champion"] == "stump (run first)"


def test_metric_is_better_needs_a_strict_gain_of_at_least_the_margin():
    assert not metric_is_better("roc_auc", 0.99, 0.99)
    assert metric_is_better("roc_auc", 0.991, 0.99)
    assert metric_is_better("roc_auc", 0.995, 0.99, margin=0.005)
    assert not metric_is_better("roc_auc", 0.994, 0.99, margin=0.005)
    assert metric_is_better("log_loss", 0.10, 0.12) and not metric_is_better("log_loss", 0.12, 0.10)


def test_an_undefined_metric_fails_its_gate():
    reasons = gate_failures({"recall": MeanStd(mean=float("nan"), std=0.0), "brier": MeanStd(mean=0.5, std=0.0)},
                            {"recall": 0.9, "brier": 0.2})
    assert len(reasons) == 2 and "> required maximum 0.2" in reasons[1]


# --- decision threshold -------------------------------------------------------------------------------

def test_threshold_for_recall_is_the_highest_that_reaches_the_target():
    y = np.array([1, 1, 1, 1, 0, 0])
    score = np.array([0.9, 0.8, 0.4, 0.3, 0.35, 0.1])
    assert threshold_for_recall(y, score, 0.75) == 0.4
    assert threshold_for_recall(y, score, 1.0) == 0.3
    assert threshold_for_recall(y, score, 0.5) == 0.8
    assert threshold_for_recall(y, score, 0.01) == 0.9


@pytest.fixture(scope="module")
def threshold_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("threshold") / "results"
    spec = quick_spec("sensitive", LOGREG, "selection: {threshold: {target_recall: 0.97}}\n")
    folder = run_steps(spec, results, "t")
    return results, folder, read_json(folder / "leaderboard.json")


def test_threshold_reaches_the_target_recall_on_out_of_fold_predictions(threshold_run):
    _, folder, board = threshold_run
    threshold = board["leaderboard"][0]["threshold"]
    value = threshold["value"]
    assert threshold["target_recall"] == 0.97 and value != 0.5
    cv = predictions(folder, "logistic_regression").query("split == 'cv'")
    malignant = cv[cv["true_label"] == "malignant"]
    aim = threshold["aimed_recall"]
    assert aim > 0.97  # one standard error above the target, so that the target holds out of fold
    assert (malignant["proba"] >= value).mean() >= aim
    assert (malignant["proba"] > value).mean() < aim  # the highest such threshold: any higher misses the aim
    assert threshold["target_met"] is (threshold["cv_recall"]["mean"] >= 0.97)


def test_threshold_reports_the_specificity_it_costs(threshold_run):
    _, _, board = threshold_run
    row = board["leaderboard"][0]
    threshold = row["threshold"]
    assert row["cv"]["recall"] == threshold["cv_recall"] and row["cv"]["specificity"] == threshold["cv_specificity"]
    assert threshold["specificity_cost"] == pytest.approx(
        threshold["at_default"]["cv_specificity"]["mean"] - threshold["cv_specificity"]["mean"])
    assert threshold["cv_recall"]["mean"] >= threshold["at_default"]["cv_recall"]["mean"]
    assert "threshold" in leaderboard_table(Leaderboard.model_validate(board)).splitlines()[0]


def test_the_promoted_card_and_the_test_metrics_use_the_chosen_threshold(threshold_run):
    results, folder, board = threshold_run
    value = board["leaderboard"][0]["threshold"]["value"]
    test = predictions(folder, "logistic_regression").query("split == 'test'")
    assert ((test["y_pred"] == 1) == (test["proba"] >= value)).all()
    malignant = test[test["y_true"] == 1]
    assert board["leaderboard"][0]["test"]["recall"] == pytest.approx((malignant["y_pred"] == 1).mean())
    card = read_json(best_dir(results, "sensitive") / "model_card.json")
    assert card["threshold"] == value
    markdown = (best_dir(results, "sensitive") / "model_card.md").read_text()
    assert f"{value:.4f}" in markdown and "costs" in markdown


def test_a_threshold_on_a_multiclass_target_is_refused_with_the_key_to_remove(tmp_path):
    spec = spec_from_text("experiment: iris_t\ndata: {source: 'sklearn:iris'}\ncv: {folds: 3, repeats: 1}\n"
                          f"models:\n{LOGREG}selection: {{threshold: {{target_recall: 0.9}}}}\n")
    with pytest.raises(ModelError, match="selection.threshold applies to binary targets only"):
        run_steps(spec, tmp_path / "results", "x")


def test_a_search_runs_inside_each_fold_and_the_leaderboard_shows_its_choice(tmp_path):
    models = "  - model: logistic_regression\n    search: {method: grid, space: {C: [0.001, 1.0]}, folds: 3}\n"
    folder = run_steps(quick_spec("searched", models), tmp_path / "results", "s")
    row = read_json(folder / "leaderboard.json")["leaderboard"][0]
    assert row["chosen_params"] == {"C": 1.0}  # heavy regularisation loses on ROC-AUC here
    assert row["top_features"] and row["importance_kind"] == "coefficient"


def test_a_model_left_out_of_the_run_says_why_in_the_leaderboard(tmp_path):
    """`--models` trains a subset: the others are listed as skipped with the reason, never a bare 'skipped:'."""
    from dag_factory import workflow
    from dag_factory.steps.select import NOT_TRAINED
    from evaluation_support import catalog

    spec = quick_spec("subset", LOGREG + "  - model: random_forest\n    params: {n_estimators: 10}\n")
    run = workflow.Run.of(spec, catalog(), tmp_path, tmp_path / "results", "subset", models=["logistic_regression"],
                          force=True)
    board = Leaderboard.read(workflow.run_steps(run, until="select").leaderboard)
    text = leaderboard_table(board)
    row = next(line for line in text.splitlines() if " random_forest " in line)
    assert row.rstrip().endswith(f"skipped: {NOT_TRAINED}")
    assert not any(line.rstrip().endswith(":") for line in text.splitlines())
