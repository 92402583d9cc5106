"""The saved model answers in the source's class names, whatever codes it was trained on."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dag_factory.artifacts.model_file import load_model
from dag_factory.storage.files import read_json
from evaluation_support import quick_spec, run_steps


def test_the_saved_model_predicts_class_names_with_probability_columns_in_classes_order(tmp_path):
    folder = run_steps(quick_spec("named", "  - model: logistic_regression\n"), tmp_path / "results", "n", "train")
    model = load_model(folder / "models" / "logistic_regression" / "model.skops")
    test = pd.read_parquet(folder / "data" / "test.parquet")
    names = np.asarray(read_json(folder / "data" / "meta.json")["classes"])  # code i is names[i]
    x, truth = test.drop(columns=["target"]), names[test["target"].to_numpy()]

    predicted = model.predict(x)
    assert list(model.classes_) == ["benign", "malignant"]
    assert set(predicted) == {"benign", "malignant"} and (predicted == truth).mean() >= 0.93
    proba = model.predict_proba(x)
    malignant = proba[:, list(model.classes_).index("malignant")]
    assert ((malignant >= 0.5) == (predicted == "malignant")).all()  # the column of "malignant" is the one it uses
    assert (truth[malignant > 0.9] == "malignant").mean() >= 0.95


def test_a_final_fit_on_all_rows_is_what_the_card_says_and_the_default_is_the_training_split(tmp_path):
    from dag_factory.artifacts.layout import best_dir

    results = tmp_path / "results"
    spec = quick_spec("final", "  - model: logistic_regression\n", "selection: {final_fit: all}\n")
    folder = run_steps(spec, results, "all")
    card = read_json(best_dir(results, "final") / "model_card.json")
    assert card["final_fit"].startswith("refit on all 569 rows")
    model = load_model(best_dir(results, "final") / "model.skops")
    saved_by_the_run = load_model(folder / "models" / "logistic_regression" / "model.skops")
    assert read_json(folder / "models" / "logistic_regression" / "metrics.json")["fitted_rows"] == 569
    default = run_steps(quick_spec("train_only", "  - model: logistic_regression\n"), results, "t")
    card = read_json(best_dir(results, "train_only") / "model_card.json")
    assert card["final_fit"].startswith("fitted on the 455 rows of the training split")
    other = load_model(default / "models" / "logistic_regression" / "model.skops")
    test = pd.read_parquet(default / "data" / "test.parquet").drop(columns=["target"])
    assert not np.allclose(model.predict_proba(test), other.predict_proba(test))  # more rows, other coefficients
    assert np.allclose(model.predict_proba(test), saved_by_the_run.predict_proba(test))
