"""The one place that names every file a run and a champion are made of.

A run folder ``<results>/runs/<experiment>/<run id>/`` holds what one DAG run produced; a
champion is a version folder under ``<results>/best/.versions/<experiment>/`` that
``<results>/best/<experiment>`` points at. Steps, the report and the CLI ask these objects for
paths instead of spelling file names themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dag_factory.storage.files import MANIFEST
from dag_factory.storage.location import StoragePath

__all__ = ["MANIFEST"]  # the checksum file of a champion, named where storage writes it

#: The leaderboard of a run (and the copy kept with a champion).
LEADERBOARD = "leaderboard.json"
#: One model's evaluation: CV and test metrics, threshold, importance.
MODEL_METRICS = "metrics.json"
#: Why a model failed.
MODEL_ERROR = "error.json"
#: The fitted model, in the skops format (artifacts.model_file): loading it runs no code from the file.
MODEL_FILE = "model.skops"
PREDICTIONS = "predictions.csv"
REPORT = "report.html"
CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
HISTORY = "history.jsonl"
#: The pointer object of a champion on an object store.
POINTER = "champion.json"


def safe_run_id(run_id: str) -> str:
    """An Airflow run id as a folder name: 'manual__2026-01-01T00:00:00+00:00' -> 'manual__2026-01-01T00-00-00-00-00'."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", run_id)


@dataclass(frozen=True)
class RunFiles:
    """The files of one run folder."""

    folder: StoragePath

    @classmethod
    def of(cls, results: StoragePath, experiment: str, run_id: str) -> RunFiles:
        """The run folder of ``run_id``: results/runs/<experiment>/<run id>/."""
        return cls(results / "runs" / experiment / safe_run_id(run_id))

    @property
    def data(self) -> StoragePath:
        return self.folder / "data"

    @property
    def download_cache(self) -> StoragePath:
        """Where a remote source is kept for the rest of the run (a retried load reads the same bytes)."""
        return self.data / "source"

    @property
    def raw(self) -> StoragePath:
        return self.data / "raw.parquet"

    @property
    def raw_test(self) -> StoragePath:
        """The raw rows of data.test_source, when the spec gives the test set in a file of its own."""
        return self.data / "raw_test.parquet"

    @property
    def train(self) -> StoragePath:
        return self.data / "train.parquet"

    @property
    def test(self) -> StoragePath:
        return self.data / "test.parquet"

    @property
    def cleaned(self) -> StoragePath:
        """The cleaned table as partitioned Parquet (data.engine: spark, a source read whole each run)."""
        return self.data / "cleaned"

    @property
    def partitions(self) -> StoragePath:
        """The partitions of the cleaned table this run wrote (data.engine: spark)."""
        return self.data / "partitions.json"

    @property
    def meta(self) -> StoragePath:
        """Facts about the cleaned data and the split (classes, sizes, fingerprint)."""
        return self.data / "meta.json"

    @property
    def skipped(self) -> StoragePath:
        """Why training was skipped (data and spec unchanged)."""
        return self.data / "skipped.json"

    @property
    def stop_reason(self) -> StoragePath:
        """Why the run stopped before training (bad data, tracking server down)."""
        return self.data / "error.json"

    @property
    def profile_json(self) -> StoragePath:
        return self.folder / "profile.json"

    @property
    def profile_md(self) -> StoragePath:
        return self.folder / "profile.md"

    @property
    def models(self) -> StoragePath:
        return self.folder / "models"

    def model(self, name: str) -> StoragePath:
        """One model's folder: model.skops, metrics.json, predictions.csv, plots/ (or error.json)."""
        return self.models / name

    @property
    def leaderboard(self) -> StoragePath:
        return self.folder / LEADERBOARD

    @property
    def report(self) -> StoragePath:
        return self.folder / REPORT

    @property
    def log(self) -> StoragePath:
        return self.folder / "run.log"


def runs_dir(results: StoragePath, experiment: str) -> StoragePath:
    """results/runs/<experiment>/: one folder per run."""
    return results / "runs" / experiment


def leaderboards(results: StoragePath, experiment: str) -> list[StoragePath]:
    """Every leaderboard of an experiment, oldest first.

    Runs of version 0.1 named it metrics.json in the run folder; those are read too.
    """
    runs = runs_dir(results, experiment)
    if not runs.exists():
        return []
    found = {p.parent: p for p in runs.glob("*/metrics.json")}
    found.update({p.parent: p for p in runs.glob(f"*/{LEADERBOARD}")})
    return sorted(found.values(), key=lambda p: p.stat().st_mtime)


def best_dir(results: StoragePath, experiment: str) -> StoragePath:
    """results/best/<experiment>: the champion (a link to its version folder on a disk, a prefix
    holding the pointer object on an object store)."""
    return results / "best" / experiment


def versions_dir(results: StoragePath, experiment: str) -> StoragePath:
    """results/best/.versions/<experiment>/: every promoted champion, complete and never changed."""
    return results / "best" / ".versions" / experiment


def last_trained_file(results: StoragePath, experiment: str) -> StoragePath:
    """results/best/.last_trained/<experiment>.json: the fingerprints of the newest run that trained."""
    return results / "best" / ".last_trained" / f"{experiment}.json"


def table_dir(results: StoragePath, experiment: str) -> StoragePath:
    """results/tables/<experiment>/: an incremental experiment's cleaned table (cleaned/) and the partitions
    that runs trained on (partitions.json)."""
    return results / "tables" / experiment


def champion_plot_name(kind: str) -> str:
    """File name of a plot in the champion's folder (flat: a version folder holds files only)."""
    return f"plot_{kind}.png"
