"""Run an experiment's steps in DAG order without Airflow, for fast evaluation tests.

The same steps the DAG's tasks run (``dag_factory.workflow``), with real scikit-learn training;
only the scheduler is left out.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from conftest import REPO, fast_spec
from dag_factory.workflow import Run, run_steps as run_workflow
from dag_factory.spec.loader import load_catalog
from dag_factory.spec.schema import CatalogEntry, ExperimentSpec

#: Deliberately weak models for champion/challenger tests: a one-split tree and a constant guess.
STUMP = CatalogEntry(name="stump", estimator="sklearn.tree.DecisionTreeClassifier",
                     params={"max_depth": 1, "random_state": 0})
DUMMY = CatalogEntry(name="dummy", estimator="sklearn.dummy.DummyClassifier", params={"strategy": "prior"})


def catalog() -> dict[str, CatalogEntry]:
    """The project's model catalog plus the weak test models."""
    entries, errors = load_catalog(REPO / "models")
    assert not errors, errors
    return {**entries, "stump": STUMP, "dummy": DUMMY}


def spec_from_text(text: str) -> ExperimentSpec:
    """An experiment spec from YAML text."""
    return ExperimentSpec.model_validate(yaml.safe_load(text))


def quick_spec(name: str, models: str, extra: str = "") -> ExperimentSpec:
    """A 3-fold breast cancer spec with the given ``models:`` YAML lines and extra top-level YAML."""
    return spec_from_text(fast_spec(name, models) + extra)


def shipped_spec(name: str = "breast_cancer") -> ExperimentSpec:
    """The spec shipped in experiments/, as a user runs it."""
    return spec_from_text((REPO / "experiments" / f"{name}.yaml").read_text(encoding="utf-8"))


def private_copy(folder: Path, to: Path) -> Path:
    """A copy of ``folder`` (links copied as links) that a test may damage; returns ``to``."""
    shutil.copytree(folder, to, symlinks=True)
    return to


def run_of(spec: ExperimentSpec, results, run_id: str, models: dict[str, CatalogEntry] | None = None,
           force: bool = True) -> Run:
    """A run of ``spec`` in ``results``, as a DAG run would make it (the checkout as the project)."""
    return Run.of(spec, models or catalog(), REPO, results, run_id, force=force)


def run_steps(spec: ExperimentSpec, results: Path, run_id: str, until: str = "report") -> Path:
    """load -> preprocess -> train every model -> select -> promote -> report; returns the run folder."""
    return run_workflow(run_of(spec, results, run_id), until=until).folder
