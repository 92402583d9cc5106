"""Run an experiment's steps in DAG order without Airflow, for fast evaluation tests.

The same task bodies the DAG calls (``dag_factory.tasks``), with real scikit-learn training;
only the scheduler is left out.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from conftest import REPO, fast_spec
from dag_factory import tasks
from dag_factory.loader import load_catalog
from dag_factory.spec import CatalogEntry, ExperimentSpec

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


def run_steps(spec: ExperimentSpec, results: Path, run_id: str) -> Path:
    """load -> preprocess -> train every model -> select -> promote -> report; returns the run folder."""
    return tasks.run_steps(spec, catalog(), results, run_id, force=True)
