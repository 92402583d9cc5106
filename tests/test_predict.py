"""`predict`: the champion scores new rows, and refuses a changed artifact or a file short of columns."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from dag_factory.cli import main
from dag_factory.errors import DataError, ModelError
from dag_factory.artifacts.layout import best_dir
from dag_factory.steps.predict import load_champion, predict_file
from conftest import REPO, fast_spec
from evaluation_support import run_steps, spec_from_text

EXPERIMENT = "predictable"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project folder (its spec, the catalog) whose results hold a champion, and the run that made it."""
    root = tmp_path_factory.mktemp("predict") / "project"
    text = fast_spec(EXPERIMENT, "  - model: logistic_regression\n  - model: xgboost\n")
    shutil.copytree(REPO / "models", root / "models")
    (root / "experiments").mkdir()
    (root / "experiments" / f"{EXPERIMENT}.yaml").write_text(text, encoding="utf-8")
    folder = run_steps(spec_from_text(text), root / "results", "p")
    return root, folder


@pytest.fixture
def project(trained, tmp_path):
    """A private copy of the trained project, so a test may damage its champion."""
    root, folder = trained
    copy = tmp_path / "project"
    shutil.copytree(root, copy, symlinks=True)
    return copy, folder


def held_out_csv(folder, path, drop=("target",)) -> pd.DataFrame:
    test = pd.read_parquet(folder / "data" / "test.parquet")
    test.drop(columns=list(drop)).to_csv(path, index=False)
    return test


def test_predict_round_trips_the_held_out_split(project, tmp_path):
    root, folder = project
    test = held_out_csv(folder, tmp_path / "rows.csv")
    out = predict_file(root / "results", EXPERIMENT, tmp_path / "rows.csv", tmp_path / "scored.csv").path
    scored = pd.read_csv(out)
    assert len(scored) == len(test) and set(scored["predicted"]) <= {"benign", "malignant"}
    _, card = load_champion(root / "results", EXPERIMENT)
    saved = pd.read_csv(folder / "models" / card.model.name / "predictions.csv").query("split == 'test'")
    assert scored["predicted"].tolist() == saved["predicted_label"].tolist()
    assert scored["proba_malignant"].to_numpy() == pytest.approx(saved["proba"].to_numpy())
    truth = test["target"].map({0: "benign", 1: "malignant"}).to_numpy()
    assert (scored["predicted"].to_numpy() == truth).mean() >= 0.93


def test_predict_refuses_a_tampered_artifact(project, tmp_path):
    root, folder = project
    held_out_csv(folder, tmp_path / "rows.csv")
    artifact = best_dir(root / "results", EXPERIMENT) / "model.skops"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="SHA-256 .* refusing to load it"):
        predict_file(root / "results", EXPERIMENT, tmp_path / "rows.csv", tmp_path / "scored.csv")
    assert not (tmp_path / "scored.csv").exists()


def test_predict_names_the_missing_column_and_the_file(project, tmp_path):
    root, folder = project
    held_out_csv(folder, tmp_path / "rows.csv", drop=("target", "mean radius"))
    with pytest.raises(DataError, match=r"rows\.csv lacks 1 column\(s\) the model was trained on: mean radius"):
        predict_file(root / "results", EXPERIMENT, tmp_path / "rows.csv", tmp_path / "scored.csv")


def test_predict_command_scores_and_refuses_with_one_line(project, tmp_path, capsys):
    root, folder = project
    held_out_csv(folder, tmp_path / "rows.csv")
    args = ["--project", str(root), "predict", EXPERIMENT, str(tmp_path / "rows.csv")]
    assert main([*args, "-o", str(tmp_path / "out.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 114
    held_out_csv(folder, tmp_path / "rows.csv", drop=("target", "worst area"))
    assert main(args) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "worst area" in error and error.count("\n") == 1


def test_predict_without_a_champion_says_how_to_get_one(tmp_path):
    with pytest.raises(ModelError, match=f"no champion for {EXPERIMENT}.*dag-factory run {EXPERIMENT}"):
        load_champion(tmp_path / "results", EXPERIMENT)


def test_predict_names_the_row_and_column_of_text_in_a_numeric_column(project, tmp_path, capsys):
    root, folder = project
    test = held_out_csv(folder, tmp_path / "rows.csv")
    rows = test.drop(columns=["target"]).astype({"mean area": object})
    rows.loc[rows.index[2], "mean area"] = "large\x1b[31m"
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert main(["--project", str(root), "predict", EXPERIMENT, str(tmp_path / "rows.csv")]) == 2
    error = capsys.readouterr().err
    assert error == (f'error: {tmp_path / "rows.csv"}: row 3 (line 4), column "mean area" holds "large?[31m", which '
                     "is not a number; the model was trained on numbers in this column (leave the cell blank when the "
                     "value is unknown)\n")


def test_predict_refuses_a_file_with_a_header_and_no_rows(project, tmp_path, capsys):
    root, folder = project
    held_out_csv(folder, tmp_path / "rows.csv")
    header = (tmp_path / "rows.csv").read_text().splitlines()[0]
    (tmp_path / "rows.csv").write_text(header + "\n")
    assert main(["--project", str(root), "predict", EXPERIMENT, str(tmp_path / "rows.csv")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'rows.csv'} has a header but no rows; add at least one "
                                       "row to score\n")


def test_predict_says_which_extra_columns_it_ignored(project, tmp_path, capsys):
    root, folder = project
    test = held_out_csv(folder, tmp_path / "rows.csv", drop=())  # keeps the target column, and adds a patient id
    rows = test.assign(patient_id=range(len(test)))
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert main(["--project", str(root), "predict", EXPERIMENT, str(tmp_path / "rows.csv"),
                 "-o", str(tmp_path / "out.csv")]) == 0
    assert capsys.readouterr().out == (f"Scored 114 row(s) into {tmp_path / 'out.csv'}; column(s) target, patient_id "
                                       "are not features of the model, so they were ignored for scoring (and copied "
                                       "to the output)\nAdded columns: predicted: the predicted class (benign or "
                                       "malignant); proba_malignant: probability of malignant; threshold: malignant "
                                       "when proba_malignant >= threshold\n")
    assert pd.read_csv(tmp_path / "out.csv")["patient_id"].tolist() == list(range(114))
