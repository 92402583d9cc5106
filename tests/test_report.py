"""Plots, the HTML report and the model card: files a person opens, opened here the way a browser would."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from PIL import Image

from conftest import fast_spec, run_dag, write_experiment
from dag_factory.cli import main
from dag_factory.storage.files import read_json
from dag_factory.artifacts.layout import REPORT as REPORT_FILE
from dag_factory.artifacts.layout import best_dir
from dag_factory.artifacts.model_file import load_model
from dag_factory.render.comparison import COMPARISON_TITLES
from dag_factory.render.plots import PLOT_KINDS
from evaluation_support import quick_spec, run_steps, spec_from_text

MODELS = ("logistic_regression", "random_forest")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What a report page contains: its title, table rows, images and anything fetched from elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.title, self.rows, self.images, self.external, self.text = "", 0, [], [], []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self._in_title = tag == "title"
        self.rows += tag == "tr"
        if tag == "img":
            self.images.append(attributes["src"])
        for key in ("src", "href"):
            if (attributes.get(key) or "").startswith(("http:", "https:", "//")):
                self.external.append(attributes[key])

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        self.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


def assert_png(data: bytes) -> tuple[int, int]:
    """A real PNG that decodes to a picture of a sensible size; returns (width, height)."""
    assert data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.width >= 300 and image.height >= 200
        return image.size


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("report") / "results"
    spec = quick_spec("reported", "  - model: logistic_regression\n  - model: random_forest\n"
                      "    params: {n_estimators: 20}\n", "selection: {threshold: {target_recall: 0.95}}\n")
    return results, run_steps(spec, results, "r")


def test_every_model_has_every_plot_as_a_valid_png(binary_run):
    _, folder = binary_run
    for model in MODELS:
        summary = read_json(folder / "models" / model / "metrics.json")
        assert sorted(summary["plots"]) == sorted(PLOT_KINDS["classification"])
        for relative in summary["plots"].values():
            path = folder / "models" / model / relative
            assert_png(path.read_bytes())
            assert matplotlib.image.imread(path).ndim == 3


def test_the_run_report_shows_the_leaderboard_and_every_plot_inline(binary_run):
    _, folder = binary_run
    page = parse(folder / REPORT_FILE)
    assert page.title == "reported: run r"
    text = " ".join(page.text)
    assert all(model in text for model in MODELS)
    assert "PROMOTED" in text and "Decision threshold (target recall 0.95)" in text
    assert "CV roc_auc" in text and "±" in text
    assert "gain vs leader [CI]" in text and "Nadeau-Bengio" in text and "ddof = 1" in text
    runner_up = read_json(folder / "leaderboard.json")["leaderboard"][1]
    assert runner_up["vs_leader"] and runner_up["verdict"] in text
    assert "chance baseline (DummyClassifier, prior); never promoted" in text
    assert "target met" in text
    assert page.rows >= 2 + len(MODELS)
    assert len(page.images) == len(MODELS) * len(PLOT_KINDS["classification"]) + len(COMPARISON_TITLES)
    assert all(title in text for title in COMPARISON_TITLES.values())
    for src in page.images:
        prefix, data = src.split(",", 1)
        assert prefix == "data:image/png;base64"
        assert_png(base64.b64decode(data))
    assert page.external == []


def test_the_champion_folder_has_card_report_and_plots(binary_run):
    results, folder = binary_run
    best = best_dir(results, "reported")
    card = read_json(best / "model_card.json")
    board = read_json(folder / "leaderboard.json")
    winner = next(r for r in board["leaderboard"] if r["name"] == board["winner"])
    for key in ("intended_use", "limitations", "run_id", "cv_protocol", "threshold", "packages", "artifact"):
        assert card[key], key
    assert card["run_id"] == "r" and card["data"]["rows"] == 569 and len(card["data"]["fingerprint"]) == 64
    assert card["threshold"] == winner["threshold"]["value"] != 0.5
    assert card["cv"]["recall"]["std"] == winner["cv"]["recall"]["std"]
    assert card["model"]["params"] == winner["params"] and "scikit-learn" in card["packages"]
    markdown = (best / "model_card.md").read_text()
    for heading in ("**Intended use.**", "**Limitations.**", "## Decision threshold", "## Using the model",
                    "## Metrics", "## Packages"):
        assert heading in markdown
    met = "met" if winner["threshold"]["target_met"] else "NOT met"
    assert f"**Target recall 0.95: {met}**" in markdown and "Chosen because: " in markdown
    assert "`predict` returns the class names benign / malignant" in markdown
    assert card["data"]["fingerprint"] in markdown and "| roc_auc |" in markdown
    for name in card["plots"].values():
        assert_png((best / name).read_bytes())
        assert f"]({name})" in markdown
    page = parse(best / REPORT_FILE)
    assert len(page.images) == len(MODELS) * len(PLOT_KINDS["classification"]) + len(COMPARISON_TITLES)
    assert "PROMOTED" in " ".join(page.text)


def test_a_multiclass_run_draws_one_vs_rest_plots(tmp_path):
    spec = spec_from_text("experiment: iris_plots\ndata: {source: 'sklearn:iris'}\ncv: {folds: 3, repeats: 1}\n"
                          "models:\n  - model: logistic_regression\n")
    folder = run_steps(spec, tmp_path / "results", "m")
    summary = read_json(folder / "models" / "logistic_regression" / "metrics.json")
    assert summary["threshold"]["value"] is None and summary["cv"]["roc_auc"]["mean"] > 0.9
    assert sorted(summary["plots"]) == sorted(PLOT_KINDS["classification"])
    for relative in summary["plots"].values():
        assert_png((folder / "models" / "logistic_regression" / relative).read_bytes())
    assert len(parse(folder / REPORT_FILE).images) == len(PLOT_KINDS["classification"])


@pytest.mark.airflow
def test_a_real_dag_run_writes_the_report_and_the_champion_applies_its_threshold(project, airflow_db, tmp_path):
    write_experiment(project, "reported_dag", fast_spec("reported_dag") + "selection: {threshold: {target_recall: 0.97}}\n")
    outcome = run_dag(project, "reported_dag")
    assert outcome.state == "success"
    assert len(parse(outcome.folder / REPORT_FILE).images) == len(MODELS) * len(PLOT_KINDS["classification"]) + len(COMPARISON_TITLES)
    best = best_dir(project.results, "reported_dag")
    assert parse(best / REPORT_FILE).title == f"reported_dag: run {outcome.run_id}"
    card = read_json(best / "model_card.json")
    pd.read_parquet(outcome.folder / "data" / "test.parquet").drop(columns=["target"]).to_csv(tmp_path / "rows.csv", index=False)
    assert main(["--project", str(project.root), "predict", "reported_dag", str(tmp_path / "rows.csv"),
                 "-o", str(tmp_path / "scored.csv")]) == 0
    scored = pd.read_csv(tmp_path / "scored.csv")
    assert (scored["threshold"] == card["threshold"]).all() and card["threshold"] != 0.5
    assert ((scored["predicted"] == "malignant") == (scored["proba_malignant"] >= card["threshold"])).all()
    rows = pd.read_csv(tmp_path / "rows.csv")
    model = load_model(best / "model.skops")  # loaded directly, it makes the same calls in the same words
    assert (model.predict(rows) == scored["predicted"]).all()
