"""A saved model cannot run code when it is loaded, and a refused champion stops a run with its one sentence.

Whoever can write to the results folder can rewrite a champion's files *and* its checksums;
the skops format (``artifacts.model_file``) is what stops them. These tests rewrite all three
(model, SHA256SUMS, model card) as such a person would. No Airflow run is needed.
"""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io

from conftest import fast_spec
from dag_factory.artifacts.layout import CARD_JSON, MODEL_FILE, best_dir
from dag_factory.artifacts.model_file import TRUSTED_TYPES, load_model, save_model
from dag_factory.cli import main
from dag_factory.errors import ModelConfigError, RunFailed, UntrustedModel
from dag_factory.steps.outcome import EXIT_DECIDED, EXIT_UNDECIDED, ending
from dag_factory.steps.predict import load_champion
from dag_factory.storage.files import read_json, sha256_file, write_json, write_manifest
from evaluation_support import catalog, private_copy, run_of
from test_promotion import EXPERIMENT, STRONG, WEAK, promote_run, train_run


def small_data() -> tuple[pd.DataFrame, np.ndarray]:
    """60 rows: two numbers (one with gaps) and a category; class names as labels."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "site": rng.choice(["n", "s"], 60)})
    x.loc[::7, "b"] = np.nan
    y = np.where(x["a"] + rng.normal(scale=0.5, size=60) > 0, "malignant", "benign")
    return x, y


def every_model_the_project_saves() -> dict[str, object]:
    """The shapes of model the factory saves: its Pipeline around each catalog estimator, calibrated, thresholded,
    searched."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.frozen import FrozenEstimator
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import FixedThresholdClassifier, GridSearchCV, RandomizedSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from xgboost import XGBClassifier

    from dag_factory.artifacts.named_classifier import NamedClassifier

    def pipeline(model: object) -> Pipeline:
        prepare = ColumnTransformer([
            ("numeric", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), ["a", "b"]),
            ("categorical", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                      ("onehot", OneHotEncoder(handle_unknown="ignore"))]), ["site"])])
        return Pipeline([("prepare", prepare), ("model", model)])

    x, y = small_data()
    logistic = pipeline(LogisticRegression()).fit(x, y)
    return {
        "logistic_regression": logistic,
        "random_forest": pipeline(RandomForestClassifier(n_estimators=5, random_state=0)).fit(x, y),
        "svm_calibrated": pipeline(CalibratedClassifierCV(SVC(), method="sigmoid", cv=3)).fit(x, y),
        "xgboost": pipeline(XGBClassifier(n_estimators=5)).fit(x, (y == "malignant").astype(int)),
        "threshold": FixedThresholdClassifier(FrozenEstimator(logistic), threshold=0.3,
                                              response_method="predict_proba").fit(x, y),
        "named": NamedClassifier(pipeline(LogisticRegression()).fit(x, (y == "malignant").astype(int)),
                                 ["benign", "malignant"]).fit(x),  # trained on codes, predicts the names
        "grid": GridSearchCV(pipeline(LogisticRegression()), {"model__C": [0.1, 1.0]}, cv=3, scoring="roc_auc").fit(x, y),
        "random": RandomizedSearchCV(pipeline(RandomForestClassifier(n_estimators=3)), {"model__max_depth": [2, 3]},
                                     n_iter=2, cv=3, scoring="neg_log_loss", random_state=0).fit(x, y),
    }


def test_every_kind_of_model_the_project_saves_loads_back_and_predicts_the_same(tmp_path):
    x, _ = small_data()
    for name, model in every_model_the_project_saves().items():
        save_model(model, tmp_path / f"{name}.skops")
        loaded = load_model(tmp_path / f"{name}.skops")
        assert (loaded.predict_proba(x) == model.predict_proba(x)).all(), name
        assert (loaded.predict(x) == model.predict(x)).all(), name


def test_every_scorer_a_search_may_use_is_a_trusted_type():
    """The search scorers (steps.pipeline) and the trusted types (artifacts.model_file) stay in step."""
    from sklearn.metrics import get_scorer

    from dag_factory.steps.pipeline import BINARY_SCORING, MULTICLASS_SCORING

    for name in {*BINARY_SCORING.values(), *MULTICLASS_SCORING.values()}:
        function = get_scorer(name)._score_func
        assert f"{function.__module__}.{function.__name__}" in TRUSTED_TYPES, name


def test_a_model_holding_an_untrusted_type_is_refused_when_saved(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(ModelConfigError, match=r"the trained model holds types a saved model may not hold "
                                               r"\(posix.getcwd\)"):
        save_model(FunctionTransformer(os.getcwd), tmp_path / "model.skops")
    assert not (tmp_path / "model.skops").exists()


# --- a champion rewritten by someone who can write to results/ --------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """results/ whose champion is the promotion tests' weak run (a one-tree stump)."""
    results = tmp_path_factory.mktemp("guarded") / "results"
    promote_run(results, WEAK, train_run(results, WEAK, "weak"))
    return results


@pytest.fixture
def promoted(trained, tmp_path) -> Path:
    """A private copy of ``trained``, so a test may rewrite its champion."""
    return private_copy(trained, tmp_path / "results")


class RunsACommand:
    """A pickle payload: unpickling it would create the marker file (any command could run instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def rewrite_champion(results: Path, data: bytes) -> None:
    """Replace the champion's model by ``data`` and rewrite its checksums to match, as an attacker would."""
    folder = best_dir(results, EXPERIMENT).resolve()
    (folder / MODEL_FILE).write_bytes(data)
    card = read_json(folder / CARD_JSON)
    card["artifact"]["sha256"] = sha256_file(folder / MODEL_FILE)
    write_json(folder / CARD_JSON, card)
    write_manifest(folder)


def test_a_pickle_that_would_run_a_command_is_never_loaded(promoted, tmp_path):
    marker = tmp_path / "the-command-ran"
    rewrite_champion(promoted, pickle.dumps(RunsACommand(marker)))
    with pytest.raises(UntrustedModel) as refused:
        load_champion(promoted, EXPERIMENT)
    assert str(refused.value) == (
        f"{best_dir(promoted, EXPERIMENT).resolve() / MODEL_FILE} is not a model in the skops format (BadZipFile); "
        "refusing to load it (a pickle, such as a model.joblib of an older version, can run code when loaded); "
        "re-run the experiment to save a fresh model")
    assert not marker.exists()


def test_a_skops_file_naming_a_dangerous_function_is_refused(promoted, tmp_path):
    rewrite_champion(promoted, skops.io.dumps({"estimator": os.system}))
    with pytest.raises(UntrustedModel, match=r"holds types that are not trusted \(posix.system\); refusing to load it"):
        load_champion(promoted, EXPERIMENT)


def test_the_predict_command_refuses_a_rewritten_champion_with_one_line(promoted, tmp_path, capsys):
    root = promoted.parent
    (root / "experiments").mkdir()
    (root / "experiments" / f"{EXPERIMENT}.yaml").write_text(fast_spec(EXPERIMENT, "  - model: logistic_regression\n"))
    shutil.copytree(Path(__file__).resolve().parents[1] / "models", root / "models")
    marker = tmp_path / "the-command-ran"
    rewrite_champion(promoted, pickle.dumps(RunsACommand(marker)))
    pd.DataFrame({"mean radius": [1.0]}).to_csv(tmp_path / "rows.csv", index=False)
    assert main(["--project", str(root), "predict", EXPERIMENT, str(tmp_path / "rows.csv")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "is not a model in the skops format" in error and error.count("\n") == 1
    assert not marker.exists()


@pytest.mark.parametrize(("force", "checksums_too", "sentence"), [
    (False, True, "{model} is not a model in the skops format (BadZipFile); refusing to load it"),
    (True, True, "{model} is not a model in the skops format (BadZipFile); refusing to load it"),
    (True, False, "the champion in {folder} was changed after promotion ({folder}/history.jsonl has SHA-256"),
])
def test_a_run_against_a_rewritten_champion_stops_undecided_with_that_sentence(promoted, tmp_path, force,
                                                                             checksums_too, sentence):
    from dag_factory.workflow import run_steps as run_workflow, select

    marker = tmp_path / "the-command-ran"
    rewrite_champion(promoted, pickle.dumps(RunsACommand(marker)))
    folder = best_dir(promoted, EXPERIMENT).resolve()
    if not checksums_too:
        (folder / "history.jsonl").write_text("tampered\n")  # one file no longer matches SHA256SUMS
    sentence = sentence.format(model=folder / MODEL_FILE, folder=folder)
    run = run_of(STRONG, promoted, "second", catalog(), force=force)
    with pytest.raises(UntrustedModel) as refused:
        run_workflow(run)
    assert str(refused.value).startswith(sentence)
    end = ending(STRONG, run.files, "failed")
    assert end.code == EXIT_UNDECIDED and end.line.startswith(f"NOT DECIDED: {sentence}")
    with pytest.raises(RunFailed) as stopped:  # select and report fail with the same sentence
        select(run)
    assert str(stopped.value).startswith(sentence)
    assert not marker.exists()


def test_a_run_that_decided_ends_with_exit_code_zero(promoted):
    files = run_of(WEAK, promoted, "weak").files
    end = ending(WEAK, files, "success")
    assert (end.code, end.line) == (EXIT_DECIDED, "DECIDED: promoted (no champion yet)")



def test_a_decision_tree_whose_node_indices_point_outside_it_is_refused(tmp_path):
    """scikit-learn follows a tree's node indices without bounds checks: a crafted tree could crash predict."""
    from sklearn.ensemble import RandomForestClassifier

    x, y = small_data()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(x[["a", "b"]].fillna(0), y)
    state = forest.estimators_[1].tree_.__getstate__()
    state["nodes"]["left_child"][0] = 10**6  # the root's left child far outside the tree
    forest.estimators_[1].tree_.__setstate__(state)
    save_model(forest, tmp_path / "model.skops")
    with pytest.raises(UntrustedModel, match="holds a decision tree whose child indices point outside the tree or "
                                             "back up it; refusing to use it"):
        load_model(tmp_path / "model.skops")
