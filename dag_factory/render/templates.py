"""The Jinja2 environment of every page: HTML autoescaped, Markdown as written, undefined names an error."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from dag_factory.render.tables import mean_std, table

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment() -> jinja2.Environment:
    """Built once per process; the DAG file uses it for DAG docs, so it stays light."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["f4"] = lambda value: "" if value is None else f"{value:.4f}"
    env.filters["mean_std"] = mean_std
    env.globals["table"] = table
    return env


def render(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` with ``context``."""
    return environment().get_template(name).render(**context)
