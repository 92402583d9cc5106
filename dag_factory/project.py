"""Where a checkout keeps its specs, its model catalog, its DAG file and its results."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dag_factory.storage.location import StoragePath, open_location

if TYPE_CHECKING:
    from dag_factory.spec.schema import ExperimentSpec


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
        from dag_factory.spec.loader import find_experiment, load_catalog

        catalog, catalog_errors = load_catalog(self.models)
        return find_experiment(self.experiments, catalog, name, catalog_errors, project_root=self.root)

    def results_for(self, spec: ExperimentSpec) -> StoragePath:
        """Where ``spec``'s runs and champion live: its ``results`` section, else the default root."""
        if spec.results is None:
            return self.results
        return open_location(spec.results.root, spec.results.conn_id, base=self.root)

    @property
    def dags(self) -> Path:
        return self.root / "dags"
