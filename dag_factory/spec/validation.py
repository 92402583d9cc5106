"""`dag-factory validate`: every spec of a project (or the files named) checked as Airflow would see them, and deeper."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dag_factory.errors import DagFactoryError, SpecError
from dag_factory.spec.estimators import ModelProblem, describe, model_problems
from dag_factory.spec.loader import load_catalog, load_experiment, load_experiments
from dag_factory.spec.schema import Catalog, ExperimentSpec, ModelEntry
from dag_factory.spec.yaml_source import YamlDocument, key_path


@dataclass
class Validation:
    """Valid specs, per-file errors, and broken catalog entries."""

    specs: dict[Path, ExperimentSpec] = field(default_factory=dict)
    errors: dict[Path, DagFactoryError] = field(default_factory=dict)
    catalog_errors: dict[str, SpecError] = field(default_factory=dict)

    @property
    def valid(self) -> dict[Path, ExperimentSpec]:
        return {p: s for p, s in self.specs.items() if p not in self.errors}


def validate(experiments: Path, models: Path, files: list[Path] | None = None, deep: bool = True,
             project_root: Path | None = None) -> Validation:
    """Check the specs in ``experiments`` (or only ``files``) against the catalog in ``models``.

    Files in experiments/ are judged with their neighbours (name clashes); other files alone.
    Local data paths start at ``project_root`` (default: the folder holding ``experiments``).
    ``deep`` also imports each estimator and checks it, every param name and value and every
    search candidate (slower: imports scikit-learn and XGBoost), which Airflow's parser never does.
    """
    catalog, catalog_errors = load_catalog(models)
    project_root = project_root if project_root is not None else Path(experiments).resolve().parent
    folder = load_experiments(experiments, catalog, catalog_errors, project_root=project_root)
    result = Validation(dict(folder.specs), dict(folder.errors), catalog_errors)
    if files:
        wanted = [p.resolve() for p in files]
        result.specs = {p: s for p, s in result.specs.items() if p.resolve() in wanted}
        result.errors = {p: e for p, e in result.errors.items() if p.resolve() in wanted}
        for path in files:
            if not path.is_file():
                result.errors[path] = SpecError(str(path), ["no such file; give the path of an experiment YAML file"])
            elif path.resolve().parent != experiments.resolve():
                try:
                    result.specs[path] = load_experiment(path, catalog, catalog_errors, project_root)
                except DagFactoryError as err:
                    result.errors[path] = err
    if deep:
        result.errors.update(_estimator_errors(result.specs, catalog, models))
    return result


def _estimator_errors(specs: dict[Path, ExperimentSpec], catalog: Catalog, models: Path) -> dict[Path, DagFactoryError]:
    """Import every estimator and check it, its param names and values, and its search space, with their lines."""
    errors: dict[Path, DagFactoryError] = {}
    for path, spec in specs.items():
        doc = YamlDocument.read(path)
        problems = [_located(problem, entry, doc, i, models)
                    for i, entry in enumerate(spec.models)
                    for problem in model_problems(catalog[entry.model], entry, catalog[entry.model].task)]
        if problems:
            errors[path] = SpecError(str(path), problems)
    return errors


def _located(problem: ModelProblem, entry: ModelEntry, doc: YamlDocument, index: int, models: Path) -> str:
    """A model's problem with the line it was written on: in the experiment, or in the catalog file it came from."""
    model = key_path(("models", index))
    if not problem.in_catalog:
        return f"{model}{doc.line(('models', index, *problem.key))}: {describe(entry.label, problem)}"
    catalog_file = Path(models) / f"{entry.model}.yaml"
    written = YamlDocument.read(catalog_file).line(problem.key)
    return f"{model}{doc.line(('models', index, 'model'))}: {describe(entry.label, problem)}; set in {catalog_file}{written}"
