"""Where things live: the project's folders and the results tree of every run."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Project:
    """The folders of one checkout: specs in, results out."""

    root: Path

    @classmethod
    def locate(cls, root: Path | str | None = None) -> Project:
        """Use ``root``, else $DAG_FACTORY_HOME, else the current folder if it has experiments/, else the checkout."""
        chosen = root or os.environ.get("DAG_FACTORY_HOME")
        if not chosen:
            cwd = Path.cwd()
            chosen = cwd if (cwd / "experiments").is_dir() else Path(__file__).resolve().parents[1]
        return cls(Path(chosen).resolve())

    @property
    def experiments(self) -> Path:
        return Path(os.environ.get("DAG_FACTORY_EXPERIMENTS", self.root / "experiments"))

    @property
    def models(self) -> Path:
        return Path(os.environ.get("DAG_FACTORY_MODELS", self.root / "models"))

    @property
    def results(self) -> Path:
        return Path(os.environ.get("DAG_FACTORY_RESULTS", self.root / "results"))

    @property
    def dags(self) -> Path:
        return self.root / "dags"


def safe_run_id(run_id: str) -> str:
    """An Airflow run id as a folder name: 'manual__2026-01-01T00:00:00+00:00' -> 'manual__2026-01-01T00-00-00-00-00'."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", run_id)


def run_dir(results: Path, experiment: str, run_id: str) -> Path:
    """results/runs/<experiment>/<run id>/: everything one run produces."""
    return Path(results) / "runs" / experiment / safe_run_id(run_id)


def best_dir(results: Path, experiment: str) -> Path:
    """results/best/<experiment>/: the promoted champion."""
    return Path(results) / "best" / experiment


def last_trained_file(results: Path, experiment: str) -> Path:
    """results/best/.last_trained/<experiment>.json: the fingerprints of the newest run that trained."""
    return Path(results) / "best" / ".last_trained" / f"{experiment}.json"
