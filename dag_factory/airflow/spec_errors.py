"""Broken experiment specs on Airflow's Import Errors page, without hiding any DAG.

Airflow lists a DAG file on its Import Errors page only when importing the file raises, and
then keeps no DAG of that file. So ``dags/experiments.py`` builds the DAGs (a broken spec as a
stand-in DAG) and never raises, and ``dags/spec_errors.py``, which holds no DAG, calls
``raise_for_broken_specs``: it reads every spec again and raises one error that lists every
problem of every broken spec on its own line. Nothing is generated, so nothing goes stale.
"""

from __future__ import annotations

from dag_factory.errors import DagFactoryError, SpecError
from dag_factory.project import Project
from dag_factory.spec.loader import load_catalog, load_experiments


class BrokenSpecs(DagFactoryError):
    """Experiment specs that did not become DAGs: one line per problem, each naming its file."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        lines = [f"{error.path}: {problem}" for error in errors for problem in error.problems]
        super().__init__(
            f"{len(errors)} experiment spec(s) are invalid, with {len(lines)} problem(s); each shows as a stand-in "
            "DAG invalid_spec__<file name> and every other experiment runs as usual. Fix each line below (run "
            "`dag-factory validate` to check) and this error goes away at the next parse:\n" + "\n".join(lines))


def broken_specs(project: Project) -> list[SpecError]:
    """The errors of every spec in the project that does not load, in file order."""
    catalog, catalog_errors = load_catalog(project.models)
    loaded = load_experiments(project.experiments, catalog, catalog_errors, project_root=project.root)
    return [loaded.errors[path] for path in sorted(loaded.errors)]


def raise_for_broken_specs(project: Project) -> None:
    """Raise BrokenSpecs when any spec is broken (Airflow then shows it as this file's import error)."""
    errors = broken_specs(project)
    if errors:
        raise BrokenSpecs(errors)
