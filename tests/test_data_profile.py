"""The profile step: counts, class balance, per-column statistics, correlations, profile.json and .md."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from dag_factory.artifacts.records import DataProfile
from dag_factory.render.profile import profile_markdown
from dag_factory.spec.schema import DataSpec, ExperimentSpec, ModelEntry
from dag_factory.steps import profile as profile_step
from dag_factory.storage.files import read_json
from dag_factory.workflow import profile as profile_task
from data_helpers import WDBC_COLUMNS, wdbc_frame
from evaluation_support import run_of

WDBC = DataSpec(source="wdbc.data", header=False, columns=WDBC_COLUMNS, target="diagnosis", positive_class="M",
                drop=["id"])


def profile(frame: pd.DataFrame, data: DataSpec) -> dict:
    """The profile step's result as the JSON it writes."""
    return profile_step.profile(frame, data).model_dump(mode="json")


@pytest.fixture(scope="module")
def summary() -> dict:
    return profile(wdbc_frame(), WDBC)


def test_counts_and_class_balance(summary):
    assert (summary["rows"], summary["columns"], summary["missing_cells"], summary["duplicate_rows"]) == (569, 32, 0, 0)
    assert summary["class_balance"] == {"B": {"count": 357, "share": 0.6274}, "M": {"count": 212, "share": 0.3726}}


def test_per_column_statistics_match_pandas(summary):
    radius = wdbc_frame()["radius_mean"]
    stats = summary["columns_stats"]["radius_mean"]
    assert stats["dtype"] == "float64" and stats["missing"] == 0 and stats["distinct"] == radius.nunique()
    for key, value in {"mean": radius.mean(), "std": radius.std(), "min": radius.min(), "25%": radius.quantile(0.25),
                       "50%": radius.median(), "75%": radius.quantile(0.75), "max": radius.max()}.items():
        assert stats[key] == pytest.approx(value, abs=1e-6), key
    assert set(summary["columns_stats"]["diagnosis"]) == {"dtype", "missing", "distinct"}  # text: no mean


def test_top_correlations_are_with_the_positive_class_and_skip_dropped_ids(summary):
    top = summary["top_correlations"]
    assert len(top) == 10 and "id" not in [c["column"] for c in top]
    assert top[0] == {"column": "concave_points_worst", "correlation": pytest.approx(0.7936, abs=1e-4)}
    assert [abs(c["correlation"]) for c in top] == sorted((abs(c["correlation"]) for c in top), reverse=True)


def test_multiclass_correlations_take_the_strongest_class():
    frame = pd.DataFrame({"x": np.repeat([0.0, 1.0, 2.0], 10), "noise": np.tile([1.0, 2.0], 15),
                          "y": np.repeat(["a", "b", "c"], 10)})
    top = profile(frame, DataSpec(source="x.csv", target="y"))["top_correlations"]
    assert top[0]["column"] == "x" and abs(top[0]["correlation"]) > 0.8


def test_rows_without_a_target_are_counted_as_missing():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": ["a", None, "b", "a"]})
    balance = profile(frame, DataSpec(source="x.csv", target="y", positive_class="a"))["class_balance"]
    assert balance == {"a": {"count": 2, "share": 0.5}, "b": {"count": 1, "share": 0.25},
                       "(missing)": {"count": 1, "share": 0.25}}


def test_profile_of_data_without_the_target_still_describes_the_columns():
    summary = profile(wdbc_frame(), DataSpec(source="x.csv", target="diagnosys"))
    assert summary["rows"] == 569 and summary["class_balance"] == {} and summary["top_correlations"] == []


def test_profile_task_writes_json_and_markdown_and_logs_the_table(tmp_path, caplog):
    spec = ExperimentSpec(experiment="bc", data=WDBC, models=[ModelEntry(model="logistic_regression")])
    run = run_of(spec, tmp_path / "results", "r")
    run.files.raw.parent.mkdir(parents=True)
    frame = wdbc_frame()
    frame.loc[0, "texture_mean"] = np.nan
    frame.to_parquet(run.files.raw)
    with caplog.at_level(logging.INFO, logger="dag_factory.render.profile"):
        result = profile_task(run)
    assert result["rows"] == 569 and result["class_balance"]["M"]["count"] == 212
    assert read_json(run.files.profile_json)["columns_stats"]["texture_mean"]["missing"] == 1
    markdown = run.files.profile_md.read_text()
    assert markdown == profile_markdown(DataProfile.read(run.files.profile_json))
    for heading in ("# Data profile", "## Class balance", "## Columns", "## Top correlations with the target"):
        assert heading in markdown
    assert "| M | 212 | 37.3% |" in markdown
    assert "Data: 569 rows x 32 columns, 1 missing cells, 0 duplicate rows" in caplog.text
    assert "| radius_mean | float64 | 0 | 14.13 |" in caplog.text  # the per-column table is in the task log
