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
