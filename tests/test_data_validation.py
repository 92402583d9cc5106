"""One test per validation failure: the sentence a user reads, and the champion left untouched.

Fast step tests without Airflow: ``run_steps`` calls the DAG's steps in the DAG's order
(load, profile, preprocess, train, select, promote), so bad data must stop it before training.
test_data_sources.py shows the same through a real Airflow run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dag_factory.errors import DataError
from dag_factory.storage.files import read_json
from dag_factory.artifacts.layout import RunFiles
from data_helpers import champion_identity, load_spec, prepare, run_steps, serve, wdbc_frame, wdbc_spec, write_wdbc

EXPERIMENT = "bc"
RETRY_FAST = ("drop: [id]", "drop: [id]\n  download: {retries: 2, backoff_seconds: 0.01}")


@pytest.fixture(scope="module")
def champion(tmp_path_factory) -> tuple[Path, tuple[str, str]]:
    """A results folder whose champion was trained on the good wdbc.data file."""
    tmp = tmp_path_factory.mktemp("champion")
    results = tmp / "results"
    spec = load_spec(tmp, wdbc_spec(EXPERIMENT, str(write_wdbc(tmp / "wdbc.data"))))
    run_steps(spec, results, "good_run")
    return results, champion_identity(results, EXPERIMENT)


def fails_before_training(champion, tmp_path: Path, source: Path | str, message: str, *changes: tuple[str, str]) -> str:
    """Run every step on ``source`` with the spec ``changes`` (old, new); check the sentence, no training, the champion."""
    results, before = champion
    text = wdbc_spec(EXPERIMENT, str(source))
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    spec = load_spec(tmp_path, text)
    with pytest.raises(DataError) as raised:
        run_steps(spec, results, tmp_path.name)
    error = str(raised.value)
    assert message in error
    assert "\n" not in error and error.count("; ") == 1  # one sentence: the problem; the fix
    folder = RunFiles.of(results, EXPERIMENT, tmp_path.name).folder
    assert read_json(folder / "data" / "error.json")["error"] == error  # what the CLI prints after the run
    assert not (folder / "models").exists()
    assert champion_identity(results, EXPERIMENT) == before
    return error


def write_variant(tmp_path: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    """A wdbc.data file with ``change`` applied to its table."""
    return write_wdbc(tmp_path / "wdbc.data", change(wdbc_frame()))


def test_misspelt_target_is_named_with_the_columns_that_exist(champion, tmp_path):
    source = write_wdbc(tmp_path / "wdbc.data")
    error = fails_before_training(champion, tmp_path, source, 'data.target: column "diagnosys" not found '
                                  '(did you mean "diagnosis"?); the data has columns: id, diagnosis, radius_mean,',
                                  ("target: diagnosis", "target: diagnosys"))
    assert "fractal_dimension_worst" in error  # every column is listed, 32 is under the limit


def test_target_with_one_class_fails(champion, tmp_path):
    source = write_variant(tmp_path, lambda f: f[f["diagnosis"] == "B"])
    fails_before_training(champion, tmp_path, source,
                          'data.target: column "diagnosis" has only one class (B); a classifier needs at least two')


def test_absent_positive_class_lists_the_classes(champion, tmp_path):
    source = write_wdbc(tmp_path / "wdbc.data")
    fails_before_training(champion, tmp_path, source,
                          'data.positive_class: "malignant" is not a value of "diagnosis"; the classes are: B, M',
                          ("positive_class: M", "positive_class: malignant"))


def test_too_few_rows_fails(champion, tmp_path):
    source = write_variant(tmp_path, lambda f: f.groupby("diagnosis").head(6))
    fails_before_training(champion, tmp_path, source,
                          "data: only 12 usable row(s), fewer than data.min_rows (20); add data")


def test_entirely_empty_column_is_named(champion, tmp_path):
    source = write_variant(tmp_path, lambda f: f.assign(texture_mean=np.nan))
    fails_before_training(champion, tmp_path, source,
                          'data: column "texture_mean" is entirely empty; add it to data.drop')


def test_non_numeric_values_are_named_with_a_sample(champion, tmp_path):
    def corrupt(frame):
        frame["area_mean"] = frame["area_mean"].astype(object)
        frame.loc[[3, 7, 9], "area_mean"] = ["n/a?", "1,001.0", "n/a?"]
        return frame

    fails_before_training(champion, tmp_path, write_variant(tmp_path, corrupt),
                          'data: column "area_mean" should be numeric but has 3 non-numeric value(s), '
                          "e.g. 'n/a?', '1,001.0'; fix the data")


def test_missing_share_above_the_spec_threshold_names_the_column(champion, tmp_path):
    def blank(frame):
        frame.loc[frame.index[::2], "smoothness_mean"] = np.nan  # every other row: 50 % missing
        return frame

    fails_before_training(champion, tmp_path, write_variant(tmp_path, blank),
                          'data: missing-value share above data.max_missing_share (40%) in: "smoothness_mean" 50%',
                          ("drop: [id]", "drop: [id]\n  max_missing_share: 0.4"))


def test_empty_file_fails(champion, tmp_path):
    source = tmp_path / "wdbc.data"
    source.write_bytes(b"")
    fails_before_training(champion, tmp_path, source, f"data.source: {source} is empty")


def test_file_that_is_not_the_format_it_claims_fails(champion, tmp_path):
    source = tmp_path / "wdbc.parquet"
    write_wdbc(source)  # CSV text under a Parquet name
    fails_before_training(champion, tmp_path, source,
                          f"data.source: {source} is not a Parquet file (no Parquet header); set data.format: csv")


def test_html_page_instead_of_csv_fails(champion, tmp_path):
    source = tmp_path / "wdbc.data"
    source.write_text("<!DOCTYPE html>\n<html><body>Please log in</body></html>\n")
    fails_before_training(champion, tmp_path, source, f"data.source: {source} is an HTML page, not CSV")


def test_column_names_that_do_not_match_the_file_fail(champion, tmp_path):
    source = write_variant(tmp_path, lambda f: f.drop(columns=["symmetry_worst"]))
    fails_before_training(champion, tmp_path, source,
                          "data.columns names 32 columns but wdbc.data has 31; list one name per column, in file order")


def test_missing_file_fails(champion, tmp_path):
    fails_before_training(champion, tmp_path, tmp_path / "nowhere.csv",
                          f"data.source: file {tmp_path / 'nowhere.csv'} does not exist")


def test_url_not_found_is_not_retried(champion, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    (tmp_path / "served").mkdir()
    with serve(tmp_path / "served") as server:
        url = server.url("wdbc.data")
        fails_before_training(champion, tmp_path, url,
                              f"data.source: downloading {url} failed after 1 attempt(s) (HTTP 404 File not found)",
                              RETRY_FAST)
    assert server.log == [("/wdbc.data", 404)]


def test_duplicate_rows_are_kept_with_a_warning(tmp_path, caplog):
    frame = wdbc_frame()
    source = write_wdbc(tmp_path / "wdbc.data", frame.iloc[[*range(len(frame)), 0, 1, 2]])
    spec = load_spec(tmp_path, wdbc_spec(EXPERIMENT, str(source)))
    with caplog.at_level(logging.WARNING, logger="dag_factory.steps.validate"):
        folder, meta = prepare(spec, tmp_path / "results", "dups_kept")
    assert meta["rows"] == 572
    assert meta["notes"] == ["found 3 duplicate row(s) and kept them; set data.drop_duplicates: true to drop them"]
    assert "Cleaning: found 3 duplicate row(s) and kept them" in caplog.text
    assert read_json(folder / "profile.json")["duplicate_rows"] == 3


def test_duplicate_rows_are_dropped_when_the_spec_says_so(tmp_path):
    frame = wdbc_frame()
    source = write_wdbc(tmp_path / "wdbc.data", frame.iloc[[*range(len(frame)), 5, 6]])
    spec = load_spec(tmp_path, wdbc_spec(EXPERIMENT, str(source)).replace(
        "drop: [id]", "drop: [id]\n  drop_duplicates: true"))
    folder, meta = prepare(spec, tmp_path / "results", "dups_dropped")
    assert meta["rows"] == 569
    assert meta["notes"] == ["dropped 2 duplicate row(s) (data.drop_duplicates is true)"]
    assert re.fullmatch(r"[0-9a-f]{64}", meta["fingerprint"])


def test_a_class_smaller_than_the_cv_folds_fails_before_training(champion, tmp_path):
    def rare_malignant(frame):
        return pd.concat([frame[frame["diagnosis"] == "B"], frame[frame["diagnosis"] == "M"].head(5)])

    fails_before_training(champion, tmp_path, write_variant(tmp_path, rare_malignant),
                          'data.target: class "M" of "diagnosis" has only 4 row(s) in the training split, '
                          "fewer than cv.folds (5); lower cv.folds",
                          ("cv: {folds: 3, repeats: 1, seed: 1}", "cv: {folds: 5, repeats: 1, seed: 1}"))
