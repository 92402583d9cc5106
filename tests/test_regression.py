"""Regression experiments: the task (given or inferred), its errors, metrics, folds and gain signs, and the same
selection and promotion rules as classification, on synthetic data whose right answer is known. No Airflow."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from dag_factory.artifacts.layout import best_dir
from dag_factory.artifacts.model_file import load_model
from dag_factory.artifacts.records import Leaderboard, RunMeta
from dag_factory.errors import DataError, SpecError
from dag_factory.spec.loader import load_catalog
from dag_factory.spec.schema import DataSpec
from dag_factory.steps.metrics import regression_metrics
from dag_factory.steps.paired import compare
from dag_factory.steps.predict import predict_file
from dag_factory.steps.validate import clean, infer_task
from data_helpers import load_spec, write_features
from evaluation_support import run_steps, spec_from_text

COEFFICIENTS = np.array([3.0, -2.0, 0.5, 0.0])


def write_table(folder: Path, y_of) -> Path:
    """A CSV of 200 rows with features f0..f3 and the target ``y_of(x)``; returns its path."""
    x = np.random.default_rng(5).normal(size=(200, 4))
    return write_features(folder, x, "y", y_of(x))


def spec_text(name: str, source: Path, models: str, extra: str = "") -> str:
    """A regression spec without ``task:`` (inferred from the numeric target), 5 folds x 2 repeats."""
    return (f"experiment: {name}\nretries: 0\ndata: {{source: '{source}', target: y}}\n"
            f"cv: {{folds: 5, repeats: 2, seed: 3}}\nmodels:\n{models}{extra}")


TWO_MODELS = "  - model: linear_regression\n  - model: random_forest_regressor\n    params: {n_estimators: 20}\n"


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> tuple[Path, Path]:
    """One run on a target that is exactly linear in the features: the results folder and the run folder."""
    tmp = tmp_path_factory.mktemp("linear")
    source = write_table(tmp / "data", lambda x: x @ COEFFICIENTS + 10.0)
    results = tmp / "results"
    spec = spec_from_text(spec_text("linear", source, TWO_MODELS, "selection: {require: {rmse: 0.5}}\n"))
    return results, run_steps(spec, results, "r1")


# --- the spec ----------------------------------------------------------------------------------------------

def test_a_regression_spec_ranks_on_rmse_unless_it_names_another_metric(tmp_path):
    base = "experiment: r\ntask: regression\ndata: {source: sklearn:diabetes, target: p}\nmodels:\n  - model: ridge\n"
    assert load_spec(tmp_path, base).selection.metric == "rmse"
    assert load_spec(tmp_path, base + "selection: {metric: r2}\n").selection.metric == "r2"
    assert load_spec(tmp_path, base.replace("task: regression\n", "")).selection.metric == "roc_auc"  # until inferred


@pytest.mark.parametrize(("extra", "key", "fix"), [
    ("data: {source: sklearn:diabetes, target: p, positive_class: 1}\n", "data.positive_class (line 3)",
     "remove data.positive_class"),
    ("selection: {threshold: {target_recall: 0.9}}\n", "selection.threshold (line 6)", "remove selection.threshold"),
    ("selection: {metric: roc_auc}\n", "selection.metric (line 6)", "use one of rmse, mae, r2, mape"),
    ("selection: {require: {recall: 0.9}}\n", "selection.require.recall (line 6)", "use one of rmse, mae, r2, mape"),
])
def test_classification_settings_in_a_regression_spec_are_refused_with_key_line_and_fix(tmp_path, extra, key, fix):
    lines = ["experiment: r", "task: regression", "data: {source: sklearn:diabetes, target: p}",
             "models:", "  - model: ridge"]
    if extra.startswith("data:"):
        lines[2] = extra.strip()
    else:
        lines.append(extra.strip())
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path, "\n".join(lines) + "\n")
    assert key in str(err.value) and fix in str(err.value) and str(tmp_path / "spec.yaml") in str(err.value)


def test_a_model_of_the_other_task_is_refused_naming_the_models_that_fit(tmp_path):
    with pytest.raises(SpecError) as err:
        load_spec(tmp_path, "experiment: r\ntask: regression\ndata: {source: sklearn:diabetes, target: p}\n"
                            "models:\n  - model: ridge\n  - model: logistic_regression\n")
    message = str(err.value)
    assert "models[1].model (line 6)" in message and '"logistic_regression" is a classification model' in message
    assert "name a regression model: gradient_boosting_regressor, linear_regression, random_forest_regressor" in message
    with pytest.raises(SpecError, match='"ridge" is a regression model'):
        load_spec(tmp_path, "experiment: c\ntask: classification\ndata: {source: sklearn:wine, target: t}\n"
                            "models:\n  - model: ridge\n")


def test_a_spec_without_task_cannot_mix_classifiers_and_regressors(tmp_path):
    with pytest.raises(SpecError, match=r"models \(line 3\): names classification models \(svm\) and regression "
                                        r"models \(ridge\); an experiment has one task, so set task:"):
        load_spec(tmp_path, "experiment: r\ndata: {source: sklearn:diabetes, target: p}\nmodels:\n"
                            "  - model: svm\n  - model: ridge\n")


def test_every_shipped_regression_entry_builds_a_regressor_and_calibration_is_refused_for_one(tmp_path):
    from dag_factory.spec.estimators import model_problems
    from dag_factory.spec.schema import ModelEntry

    catalog, errors = load_catalog(REPO / "models")
    assert not errors
    regressors = sorted(n for n, c in catalog.items() if c.task == "regression")
    assert regressors == ["gradient_boosting_regressor", "linear_regression", "random_forest_regressor", "ridge",
                          "xgboost_regressor"]
    for name in regressors:
        assert model_problems(catalog[name], ModelEntry(model=name), "regression") == []
    (tmp_path / "bad.yaml").write_text("estimator: sklearn.linear_model.Ridge\ntask: regression\n"
                                       "calibration: sigmoid\n")
    assert "a regressor has none" in str(load_catalog(tmp_path)[1]["bad"])


# --- the task inferred from the target, and target errors -----------------------------------------------------

@pytest.mark.parametrize(("values", "positive", "task"), [
    (np.arange(100) * 1.5, None, "regression"),             # fractions
    (np.arange(100) % 30, None, "regression"),              # 30 distinct whole numbers
    (np.arange(100) % 2, 1, "classification"),              # a positive class names classes
    (np.arange(100) % 5, None, "classification"),           # a few codes
    (np.where(np.arange(100) % 2, "yes", "no"), None, "classification"),
])
def test_the_task_is_inferred_from_the_target(values, positive, task):
    found, why = infer_task(pd.Series(values), DataSpec(source="x.csv", target="y", positive_class=positive))
    assert found == task and f"task: {task}, inferred" in why


def test_a_regression_target_must_be_numbers_and_not_constant():
    frame = pd.DataFrame({"f": np.arange(30.0), "y": ["1.5"] * 28 + ["high", "n/a"]})
    with pytest.raises(DataError, match=r'data.target: column "y" should be numeric .* 2 non-numeric value\(s\), '
                                        r"e.g. 'high', 'n/a'; fix the data, or set task: classification"):
        clean(frame, DataSpec(source="x.csv", target="y"), "regression")
    with pytest.raises(DataError, match=r'data.target: column "y" has the same value \(4\) in every row'):
        clean(frame.assign(y=4.0), DataSpec(source="x.csv", target="y"), "regression")


def test_an_inferred_regression_refuses_a_classification_metric_before_training(tmp_path):
    source = write_table(tmp_path / "data", lambda x: x @ COEFFICIENTS)
    spec = spec_from_text(spec_text("bad", source, TWO_MODELS, "selection: {metric: f1}\n"))
    with pytest.raises(DataError, match=r'selection.metric: "f1" is a classification metric .* \(task: regression, '
                                        r'inferred from the target "y"'):
        run_steps(spec, tmp_path / "results", "r1", until="preprocess")


# --- metrics and gain signs ------------------------------------------------------------------------------------

def test_regression_metrics_match_their_definitions():
    y, p = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 2.0])
    found = regression_metrics(y, p)
    assert found["rmse"] == pytest.approx(math.sqrt(5 / 3)) and found["mae"] == pytest.approx(1.0)
    assert found["r2"] == pytest.approx(1 - 5 / ((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2))
    assert found["mape"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert math.isnan(regression_metrics(np.array([0.0, 1.0]), np.array([0.5, 1.0]))["mape"])


def test_a_lower_rmse_is_a_positive_gain_and_a_higher_r2_too():
    better, worse = [1.0, 1.1, 0.9, 1.0, 1.05], [2.0, 2.2, 1.9, 2.1, 2.0]
    assert compare("rmse", better, worse, "w", folds=5, confidence=0.95).gain == pytest.approx(1.03)
    assert compare("rmse", worse, better, "b", folds=5, confidence=0.95).ci_high < 0
    assert compare("r2", [0.9] * 4 + [0.8], [0.5] * 5, "w", folds=5, confidence=0.95).gain == pytest.approx(0.38)


# --- a run whose right answer is known ------------------------------------------------------------------------

def test_on_an_exactly_linear_target_linear_regression_wins_and_is_promoted(linear):
    results, folder = linear
    meta = RunMeta.read(folder / "data" / "meta.json")
    assert meta.task == "regression" and meta.classes == [] and meta.notes[0].startswith("task: regression, inferred")
    board = Leaderboard.read(folder / "leaderboard.json")
    assert board.task == "regression" and board.metric == "rmse"
    rows = {r.name: r for r in board.ranked}
    assert board.leader == board.winner == "linear_regression"
    assert rows["linear_regression"].cv["rmse"].mean < 1e-9 and rows["linear_regression"].cv["r2"].mean == 1.0
    forest = rows["random_forest_regressor"]
    assert forest.vs_leader.gain < 0 and forest.vs_leader.ci_high < 0 and forest.verdict.startswith("worse")
    assert not forest.eligible and forest.ineligible_reasons[0].startswith("rmse ") and "> required maximum 0.5" in \
        forest.ineligible_reasons[0]
    assert rows["linear_regression"].vs_baseline.ci_low > 0  # credibly better than predicting the mean
    assert board.baseline.label == "DummyRegressor, mean" and board.baseline.cv["r2"].mean <= 0.0
    assert set(rows["linear_regression"].test) == {"rmse", "mae", "r2", "mape"}
    assert sorted(rows["linear_regression"].plots) == ["importance", "predicted", "residuals"]
    assert board.decision.promoted and board.decision.reason == "no champion yet"


def test_the_champion_is_a_trusted_model_that_predicts_the_value(linear, tmp_path):
    results, folder = linear
    model = load_model(best_dir(results, "linear") / "model.skops")
    test = pd.read_parquet(folder / "data" / "test.parquet")
    truth = test[[f"f{i}" for i in range(4)]].to_numpy() @ COEFFICIENTS + 10.0
    assert np.allclose(model.predict(test.drop(columns=["y"])), truth)
    rows = pd.DataFrame({"f0": [1.0, 0.0], "f1": [1.0, 0.0], "f2": [2.0, 0.0], "f3": [5.0, 0.0], "id": ["a", "b"]})
    rows.to_csv(tmp_path / "new.csv", index=False)
    scored = predict_file(results, "linear", tmp_path / "new.csv", tmp_path / "out.csv")
    assert scored.added == {"predicted": "the predicted y"} and scored.ignored == ["id"]
    assert pd.read_csv(tmp_path / "out.csv")["predicted"].to_numpy() == pytest.approx([12.0, 10.0])
    card = (best_dir(results, "linear") / "model_card.md").read_text()
    assert "regression of the numeric target `y`" in card and "confusion" not in card and "threshold" not in card


def test_a_worse_challenger_does_not_replace_the_champion(linear):
    results, _ = linear
    spec = spec_from_text(spec_text("linear", results.parent / "data" / "data.csv",
                                    "  - model: ridge\n    params: {alpha: 10.0}\n"))
    board = Leaderboard.read(run_steps(spec, results, "r2") / "leaderboard.json")
    decision = board.decision
    assert board.winner == "ridge" and not decision.promoted
    assert decision.vs_champion.gain < 0 and decision.vs_champion.ci_high < 0  # RMSE higher: a negative gain
    assert "does not beat the champion" in decision.reason and decision.reason.endswith("champion kept")


def test_on_a_target_of_pure_noise_no_model_beats_the_mean_and_nothing_is_promoted(tmp_path):
    source = write_table(tmp_path / "data", lambda x: np.random.default_rng(11).normal(50.0, 5.0, size=len(x)))
    spec = spec_from_text(spec_text("noise", source, "  - model: linear_regression\n  - model: ridge\n"))
    board = Leaderboard.read(run_steps(spec, tmp_path / "results", "r1") / "leaderboard.json")
    assert board.winner is None and not board.decision.promoted
    assert all(not r.eligible and "not clearly better than the baseline" in r.ineligible_reasons[0]
               for r in board.ranked)
    assert all(r.vs_baseline.ci_low <= 0 for r in board.ranked)
    assert not best_dir(tmp_path / "results", "noise").exists()


# --- through Airflow -------------------------------------------------------------------------------------------

@pytest.mark.airflow
def test_a_regression_dag_runs_through_airflow_and_promotes_a_regressor(project, airflow_db):
    from conftest import run_dag, write_experiment

    write_experiment(project, "diabetes_small", (
        "experiment: diabetes_small\ntask: regression\ndata: {source: 'sklearn:diabetes', target: progression}\n"
        "cv: {folds: 3, repeats: 2, seed: 1}\nmodels:\n  - model: ridge\n"
        "  - model: random_forest_regressor\n    params: {n_estimators: 20}\n"))
    outcome = run_dag(project, "diabetes_small")
    assert outcome.state == "success"
    board = Leaderboard.read(outcome.folder / "leaderboard.json")
    assert board.task == "regression" and board.metric == "rmse"
    assert sorted(r.name for r in board.ranked) == ["random_forest_regressor", "ridge"]
    assert all(r.vs_baseline.ci_low > 0 for r in board.ranked)  # both beat the mean on diabetes
    assert [r.cv["rmse"].mean for r in board.ranked] == sorted(r.cv["rmse"].mean for r in board.ranked)
    assert board.decision.promoted
    model = load_model(best_dir(project.results, "diabetes_small") / "model.skops")
    test = pd.read_parquet(outcome.folder / "data" / "test.parquet")
    rmse = float(np.sqrt(np.mean((model.predict(test.drop(columns=["progression"])) - test["progression"]) ** 2)))
    assert rmse == pytest.approx(board.winner_row.test["rmse"])
    assert "Predicted against actual" in (outcome.folder / "report.html").read_text()
