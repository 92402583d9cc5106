"""A separate test file (data.test_source): the held-out rows as given, checked against the training file.

Step-level tests, without Airflow: the spec rules, the load and preprocess steps, the skip fingerprint.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from dag_factory.errors import DataError, NothingToDo, SpecError
from dag_factory.steps.preprocess import load_split
from dag_factory.artifacts.layout import RunFiles
from dag_factory.storage.files import read_json
from data_helpers import load_spec, prepare, run_steps, wdbc_frame

ROWS = wdbc_frame().drop(columns=["id"])


def write_files(folder: Path, test: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """train.csv and test.csv in ``folder``: a fixed 80/20 cut of the breast cancer rows (``test`` replaces the 20)."""
    train_rows, test_rows = train_test_split(ROWS, test_size=0.2, random_state=0, stratify=ROWS["diagnosis"])
    folder.mkdir(parents=True, exist_ok=True)
    train_rows.to_csv(folder / "train.csv", index=False)
    (test_rows if test is None else test).to_csv(folder / "test.csv", index=False)
    return folder / "train.csv", folder / "test.csv"


def spec_text(train: str, test: str, extra: str = "") -> str:
    return f"""\
experiment: files
data: {{source: "{train}", test_source: "{test}", target: diagnosis, positive_class: M}}
{extra}cv: {{folds: 3, repeats: 1, seed: 1}}
models: [{{model: logistic_regression}}]
"""


def test_the_test_file_is_the_held_out_set_and_no_split_is_drawn(tmp_path):
    train, test = write_files(tmp_path / "data")
    spec = load_spec(tmp_path, spec_text(str(train), str(test)))
    folder, meta = prepare(spec, tmp_path / "results", "run1")
    x_train, y_train, x_test, y_test = load_split(RunFiles(folder), "diagnosis")
    given = pd.read_csv(test)
    assert (meta["train_rows"], meta["test_rows"], meta["rows"]) == (455, 114, 569)
    assert x_test.reset_index(drop=True).equals(given.drop(columns=["diagnosis"]).astype(float))
    assert y_test.tolist() == (given["diagnosis"] == "M").astype(int).tolist()  # M is code 1, B code 0
    assert x_train.reset_index(drop=True).equals(pd.read_csv(train).drop(columns=["diagnosis"]).astype(float))
    assert (folder / "data" / "raw_test.parquet").exists()


def test_test_file_columns_may_come_in_another_order(tmp_path):
    _, test = write_files(tmp_path / "data")
    given = pd.read_csv(test)
    given[list(reversed(given.columns))].to_csv(test, index=False)
    spec = load_spec(tmp_path, spec_text(str(tmp_path / "data" / "train.csv"), str(test)))
    folder, _ = prepare(spec, tmp_path / "results", "run1")
    _, _, x_test, _ = load_split(RunFiles(folder), "diagnosis")
    assert x_test.reset_index(drop=True).equals(given.drop(columns=["diagnosis"]).astype(float))


def _broken(tmp_path: Path, change) -> str:
    """The DataError preprocess raises for a test file changed by ``change`` (a function of its rows)."""
    _, test = write_files(tmp_path / "data")
    change(pd.read_csv(test)).to_csv(test, index=False)
    spec = load_spec(tmp_path, spec_text(str(tmp_path / "data" / "train.csv"), str(test)))
    with pytest.raises(DataError) as refused:
        prepare(spec, tmp_path / "results", "run1")
    assert str(refused.value).startswith(f"data.test_source ({test}): ")
    return str(refused.value)


def test_a_missing_column_names_the_test_file_the_column_and_the_fix(tmp_path):
    message = _broken(tmp_path, lambda rows: rows.drop(columns=["radius_mean", "area_se"]))
    assert "column(s) radius_mean, area_se of data.source are missing; give the test file the same columns" in message


def test_an_extra_column_names_the_test_file_the_column_and_the_fix(tmp_path):
    message = _broken(tmp_path, lambda rows: rows.assign(hospital="north"))
    assert "column(s) hospital are not in data.source; remove them from the test file" in message


def test_an_unseen_label_names_the_test_file_the_column_and_the_fix(tmp_path):
    message = _broken(tmp_path, lambda rows: rows.assign(diagnosis=["M", "B", "X"] * 38))
    assert ('column "diagnosis" has label(s) X that data.source never has (its classes: B, M); a model cannot '
            "predict a class it never learnt, so fix those labels or remove those rows") in message


def test_a_class_missing_from_the_test_file_is_refused(tmp_path):
    message = _broken(tmp_path, lambda rows: rows[rows["diagnosis"] == "B"])
    assert 'column "diagnosis" has no row of class(es) M; held-out ROC-AUC and recall need every class' in message


def test_text_in_a_numeric_test_column_names_the_test_file(tmp_path):
    message = _broken(tmp_path, lambda rows: rows.assign(radius_mean=["big"] + list(rows["radius_mean"][1:])))
    assert 'data: column "radius_mean" should be numeric but has 1 non-numeric value(s)' in message


def test_the_test_source_follows_the_data_root_rules_at_validate_and_at_load(tmp_path, monkeypatch):
    project = tmp_path / "project"
    train, test = write_files(project / "data")
    monkeypatch.delenv("DAG_FACTORY_DATA_ROOTS")
    outside = tmp_path / "outside.csv"
    outside.write_text("secret\n")
    (project / "experiments").mkdir()
    with pytest.raises(SpecError) as refused:
        load_spec(project / "experiments", spec_text("data/train.csv", "../outside.csv"))
    assert refused.value.problems == [
        f'data.test_source (line 2): "../outside.csv" resolves to {outside}, outside the data roots ({project}); '
        'move the file into the project folder, or add its folder to DAG_FACTORY_DATA_ROOTS (folders separated by ":")']
    spec = load_spec(project / "experiments", spec_text("data/train.csv", "data/test.csv"))
    test.unlink()
    test.symlink_to(outside)  # swapped for a link after the spec was read: the load step checks again
    from dag_factory.workflow import Run, run_steps as run_workflow
    from data_helpers import shipped_catalog

    with pytest.raises(DataError, match=r'^data\.test_source: "data/test\.csv" resolves to .*outside\.csv, outside '
                                        r"the data roots"):
        run_workflow(Run.of(spec, shipped_catalog(), project, tmp_path / "results", "run1"), until="load_data")


def test_a_split_next_to_a_test_file_is_refused(tmp_path):
    train, test = write_files(tmp_path / "data")
    with pytest.raises(SpecError) as refused:
        load_spec(tmp_path, spec_text(str(train), str(test), "split: {test_size: 0.3}\n"))
    assert refused.value.problems == [
        "split (line 3): data.test_source gives the held-out test rows, so no split is drawn; remove the split "
        "section (or remove data.test_source to split data.source)"]


def test_a_scikit_learn_loader_is_not_a_test_file(tmp_path):
    train, _ = write_files(tmp_path / "data")
    with pytest.raises(SpecError, match=r"data.test_source \(line 2\): a scikit-learn loader is a whole data set"):
        load_spec(tmp_path, spec_text(str(train), "sklearn:breast_cancer"))


def test_a_changed_test_file_changes_the_fingerprint_so_the_run_is_not_skipped(tmp_path):
    train, test = write_files(tmp_path / "data")
    spec = load_spec(tmp_path, spec_text(str(train), str(test)))
    results = tmp_path / "results"
    run_steps(spec, results, "first")
    with pytest.raises(NothingToDo, match="data and spec unchanged since the champion was trained in run first"):
        prepare(spec, results, "same", force=False)
    rows = pd.read_csv(test)
    rows.iloc[:-1].to_csv(test, index=False)  # one test row less; the training file is unchanged
    _, meta = prepare(spec, results, "new_test", force=False)
    assert meta["test_rows"] == 113 and meta["train_rows"] == 455
    assert meta["fingerprint"] != read_json(results / "runs" / "files" / "first" / "data" / "meta.json")["fingerprint"]
