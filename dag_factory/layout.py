"""Where things live: the project's folders and the results tree of every run."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dag_factory.storage import StoragePath, open_location

if TYPE_CHECKING:
    from dag_factory.spec import ExperimentSpec


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
    def results(self) -> StoragePath:
        """The default results root: $DAG_FACTORY_RESULTS (a folder or URL; its connection in
        $DAG_FACTORY_RESULTS_CONN_ID), else the project's results/ folder."""
        return open_location(os.environ.get("DAG_FACTORY_RESULTS") or self.root / "results",
                             os.environ.get("DAG_FACTORY_RESULTS_CONN_ID") or None, base=self.root)

    def experiment(self, name: str) -> ExperimentSpec:
        """The valid spec whose ``experiment`` is ``name``, or a SpecError that lists the known names."""
        from dag_factory.loader import find_experiment, load_catalog

        catalog, catalog_errors = load_catalog(self.models)
        return find_experiment(self.experiments, catalog, name, catalog_errors)

    def results_for(self, spec: ExperimentSpec) -> StoragePath:
        """Where ``spec``'s runs and champion live: its ``results`` section, else the default root."""
        if spec.results is None:
            return self.results
        return open_location(spec.results.root, spec.results.conn_id, base=self.root)

    @property
    def dags(self) -> Path:
        return self.root / "dags"


def safe_run_id(run_id: str) -> str:
    """An Airflow run id as a folder name: 'manual__2026-01-01T00:00:00+00:00' -> 'manual__2026-01-01T00-00-00-00-00'."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", run_id)


def run_dir(results: StoragePath, experiment: str, run_id: str) -> StoragePath:
    """results/runs/<experiment>/<run id>/: everything one run produces."""
    return results / "runs" / experiment / safe_run_id(run_id)


def best_dir(results: StoragePath, experiment: str) -> StoragePath:
    """results/best/<experiment>: the champion (a link to its version folder on a disk, a prefix
    holding the pointer object on an object store)."""
    return results / "best" / experiment


def last_trained_file(results: StoragePath, experiment: str) -> StoragePath:
    """results/best/.last_trained/<experiment>.json: the fingerprints of the newest run that trained."""
    return results / "best" / ".last_trained" / f"{experiment}.json"
