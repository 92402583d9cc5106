"""The DAG docs Airflow shows on a DAG's page: an experiment's summary and spec, or why a spec is invalid.

Built at parse time, so it reads nothing but the spec file itself.
"""

from __future__ import annotations

from pathlib import Path

from dag_factory.errors import SpecError
from dag_factory.render.templates import render
from dag_factory.spec.schema import ExperimentSpec


def experiment_doc(spec: ExperimentSpec, spec_path: Path) -> str:
    """The DAG's documentation: the description, the models, and the spec as YAML."""
    rows = [[m.label, m.model, f"`{m.params or {}}`"] for m in spec.models]
    return render("dag_doc.md.j2", spec=spec, spec_name=spec_path.name, spec_text=_read(spec_path), model_rows=rows)


def invalid_spec_doc(error: SpecError) -> str:
    """The docs of a broken spec's stand-in DAG: every problem, one per line."""
    return render("invalid_spec.md.j2", error=error)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return "(spec file not readable)"
