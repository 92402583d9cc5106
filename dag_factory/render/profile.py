"""The data profile for people: profile.md and the headline lines of the profile task's log."""

from __future__ import annotations

import logging
from typing import Any

from dag_factory.artifacts.records import NUMERIC_STATS, DataProfile
from dag_factory.render.tables import table
from dag_factory.render.templates import render

log = logging.getLogger(__name__)

COLUMN_HEADER = ["column", "type", "missing", "mean", "std", "min", "25%", "median", "75%", "max", "distinct"]


def profile_markdown(profile: DataProfile) -> str:
    """profile.md: counts, class balance, per-column statistics and top correlations."""
    return render(
        "profile.md.j2", p=profile, column_table=column_table(profile),
        class_rows=[[k, v.count, f"{v.share:.1%}"] for k, v in profile.class_balance.items()],
        correlation_rows=[[c.column, f"{c.correlation:.3f}"] for c in profile.top_correlations])


def column_table(profile: DataProfile) -> str:
    """Per-column statistics as a Markdown table (for profile.md and the task log)."""
    rows = [[name, s["dtype"], s["missing"], *[_fmt(s.get(k)) for k in NUMERIC_STATS], s["distinct"]]
            for name, s in profile.columns_stats.items()]
    return table(COLUMN_HEADER, rows, "markdown", right=range(2, len(COLUMN_HEADER)))


def log_profile(profile: DataProfile) -> None:
    """Print the headline numbers of a profile to the task log."""
    log.info("Data: %d rows x %d columns, %d missing cells, %d duplicate rows",
             profile.rows, profile.columns, profile.missing_cells, profile.duplicate_rows)
    for label, info in profile.class_balance.items():
        log.info("Class %s: %d rows (%.1f%%)", label, info.count, 100 * info.share)
    for item in profile.top_correlations[:5]:
        log.info("Correlation with target: %s %.3f", item.column, item.correlation)
    log.info("Per-column statistics:\n%s", column_table(profile))


def _fmt(value: Any) -> str:
    """A statistic for the table: 4 significant digits, blank when undefined."""
    return "" if value is None else f"{value:.4g}"
