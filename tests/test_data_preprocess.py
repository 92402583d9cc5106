"""Shared cleaning and split, the data fingerprint, and "only retrain when the data changed", without Airflow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dag_factory.errors import DataError, NothingToDo
from dag_factory.storage.files import read_json
from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.model_file import load_model
from dag_factory.spec.schema import DataSpec, ExperimentSpec
from dag_factory.steps.preprocess import encode_target, fingerprint, load_split, preprocess
from dag_factory.steps.validate import clean
from data_helpers import WDBC_FEATURES, champion_identity, load_spec, prepare, run_steps, wdbc_frame, wdbc_spec, write_wdbc


def test_split_is_stratified_and_keeps_the_file_order_of_features(tmp_path):
    spec = ExperimentSpec.model_validate({
        "experiment": "bc", "models": [{"model": "logistic_regression"}],
        "data": {"source": "wdbc.data", "target": "diagnosis", "positive_class": "M", "drop": ["id"]}})
    files = RunFiles(tmp_path)
    meta = preprocess(wdbc_frame(), spec, files, config="config").model_dump()
    assert meta["numeric"] == WDBC_FEATURES and meta["categorical"] == []
    assert meta["classes"] == ["B", "M"] and meta["positive_class"] == "M"
    x_train, y_train, x_test, y_test = load_split(files, meta["target"])
    assert (len(x_train), len(x_test)) == (455, 114)
    assert (y_train.mean(), y_test.mean()) == pytest.approx((212 / 569, 212 / 569), abs=0.005)
    assert read_json(files.meta) == meta


def test_positive_class_is_code_1_whatever_its_sort_order():
    labels = pd.Series(["M", "B", "B", "M", "B"])
    codes, names = encode_target(labels, DataSpec(source="x", target="y", positive_class="B"))
    assert names == ["M", "B"] and codes.tolist() == [0, 1, 1, 0, 1]


def test_rows_without_a_target_are_dropped_and_a_numeric_positive_class_still_matches():
    # A CSV target column with a gap is read as floats (1.0); positive_class 1 must still find class 1.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=30), "y": [1.0, 0.0] * 14 + [np.nan, np.nan]})
    cleaned, notes = clean(frame, DataSpec(source="x.csv", target="y", positive_class=1))
    assert len(cleaned) == 28 and cleaned["y"].dtype == "int64"
    assert notes == ["dropped 2 row(s) without a target value"]


def test_target_without_any_value_is_reported_as_such():
    frame = pd.DataFrame({"x": range(30), "y": [np.nan] * 30})
    with pytest.raises(DataError, match=r'data.target: column "y" has no values at all; check data.target'):
        clean(frame, DataSpec(source="x.csv", target="y"))


def test_categorical_column_with_gaps_is_one_hot_encoded_inside_each_model(tmp_path):
    rng = np.random.default_rng(1)
    n = 120
    size = rng.normal(size=n)
    frame = pd.DataFrame({"size": size, "colour": rng.choice(["red", "blue", None], size=n),
                          "label": np.where(size + rng.normal(scale=0.5, size=n) > 0, "yes", "no")})
    frame.to_csv(tmp_path / "cases.csv", index=False)
    spec = load_spec(tmp_path, f"""\
experiment: cats
data: {{source: "{tmp_path / 'cases.csv'}", target: label, positive_class: "yes", categorical: [colour]}}
cv: {{folds: 3, repeats: 1}}
models: [{{model: logistic_regression}}]
""")
    folder = run_steps(spec, tmp_path / "results", "run1")
    meta = read_json(folder / "data" / "meta.json")
    assert meta["numeric"] == ["size"] and meta["categorical"] == ["colour"]
    model = load_model(folder / "models" / "logistic_regression" / "model.skops")
    raw = pd.DataFrame({"size": [2.0, -2.0, np.nan], "colour": ["green", None, "red"]})  # unseen, missing
    assert model.predict_proba(raw).shape == (3, 2)  # imputation and encoding travel with the model
    assert read_json(folder / "leaderboard.json")["leaderboard"][0]["cv"]["roc_auc"]["mean"] > 0.8


def test_fingerprint_follows_content_not_file_format(tmp_path):
    table = wdbc_frame()
    changed = table.copy()
    changed.loc[100, "radius_mean"] += 0.01
    assert fingerprint(table) == fingerprint(wdbc_frame())
    assert fingerprint(changed) != fingerprint(table)
    table.to_parquet(tmp_path / "t.parquet")
    assert fingerprint(pd.read_parquet(tmp_path / "t.parquet")) == fingerprint(table)


@pytest.fixture
def trained(tmp_path: Path):
    """A champion trained on wdbc.data with config "tests"; the spec and the results folder."""
    source = write_wdbc(tmp_path / "wdbc.data")
    spec = load_spec(tmp_path, wdbc_spec("bc", str(source)).replace(
        "  - model: random_forest\n    params: {n_estimators: 20}\n", ""))
    run_steps(spec, tmp_path / "results", "first")
    return spec, tmp_path / "results", source


def test_unchanged_data_and_config_skip_training_with_the_reason(trained):
    spec, results, _ = trained
    with pytest.raises(NothingToDo, match=r"data and spec unchanged since the champion was trained in run first "
                                          r"\(data fingerprint [0-9a-f]{12}\); training skipped\. Trigger with force=true"):
        prepare(spec, results, "second", force=False)
    folder = results / "runs" / "bc" / "second"
    assert "training skipped" in read_json(folder / "data" / "skipped.json")["reason"]


def test_force_a_changed_config_or_changed_data_retrain(trained):
    spec, results, source = trained
    before = champion_identity(results, "bc")
    _, forced = prepare(spec, results, "forced", force=True)
    reseeded = spec.model_copy(update={"cv": spec.cv.model_copy(update={"seed": 7})})  # another config, same data
    _, reconfigured = prepare(reseeded, results, "reconfigured", force=False)
    frame = wdbc_frame()
    write_wdbc(source, frame.iloc[:-5])
    _, new_data = prepare(spec, results, "new_data", force=False)
    assert forced["fingerprint"] == reconfigured["fingerprint"] != new_data["fingerprint"]
    assert new_data["rows"] == 564
    assert not (results / "runs" / "bc" / "new_data" / "data" / "skipped.json").exists()
    assert champion_identity(results, "bc") == before  # preparing alone never touches the champion
