"""Profile step: the statistics a person checks before trusting a model trained on the data."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from dag_factory.spec import DataSpec
from dag_factory.steps.validate import positive_label

log = logging.getLogger(__name__)

MISSING_LABEL = "(missing)"
#: Statistics of a numeric column, as pandas' describe() names them.
STAT_KEYS = ("mean", "std", "min", "25%", "50%", "75%", "max")


def profile(frame: pd.DataFrame, data: DataSpec, top: int = 10) -> dict[str, Any]:
    """Row and column counts, class balance, per-column statistics and top target correlations."""
    has_target = data.target in frame.columns
    result: dict[str, Any] = {
        "rows": int(len(frame)),
        "columns": int(frame.shape[1]),
        "target": data.target,
        "positive_class": data.positive_class,
        "duplicate_rows": int(frame.duplicated().sum()),
        "missing_cells": int(frame.isna().sum().sum()),
        "class_balance": {},
        "columns_stats": {str(c): _column_stats(frame[c]) for c in frame.columns},
        "top_correlations": [],
    }
    if has_target:
        result["class_balance"] = _class_balance(frame[data.target])
        result["top_correlations"] = _target_correlations(frame.drop(columns=_present(frame, data.drop)), data, top)
    return result


def _class_balance(target: pd.Series) -> dict[str, dict[str, Any]]:
    """Rows per class, largest first; rows without a target are counted as '(missing)'."""
    counts = target.astype(object).where(target.notna(), MISSING_LABEL).astype(str).value_counts()
    return {str(k): {"count": int(v), "share": round(float(v) / len(target), 4)} for k, v in counts.items()}


def _present(frame: pd.DataFrame, names: list[str]) -> list[str]:
    """The names that are columns of ``frame`` (the raw data may lack a misspelt one)."""
    return [n for n in names if n in frame.columns]


def log_profile(summary: dict[str, Any]) -> None:
    """Print the headline numbers of a profile to the task log."""
    log.info("Data: %d rows x %d columns, %d missing cells, %d duplicate rows",
             summary["rows"], summary["columns"], summary["missing_cells"], summary["duplicate_rows"])
    for label, info in summary["class_balance"].items():
        log.info("Class %s: %d rows (%.1f%%)", label, info["count"], 100 * info["share"])
    for item in summary["top_correlations"][:5]:
        log.info("Correlation with target: %s %.3f", item["column"], item["correlation"])
    log.info("Per-column statistics:\n%s", "\n".join(_column_table(summary["columns_stats"])))


def to_markdown(summary: dict[str, Any]) -> str:
    """A short human-readable report of a profile."""
    lines = [
        "# Data profile",
        "",
        f"- Rows: {summary['rows']}, columns: {summary['columns']}",
        f"- Target: `{summary['target']}`, positive class: `{summary['positive_class']}`",
        f"- Missing cells: {summary['missing_cells']}, duplicate rows: {summary['duplicate_rows']}",
        "",
        "## Class balance",
        "",
        "| class | rows | share |",
        "|---|---:|---:|",
    ]
    lines += [f"| {k} | {v['count']} | {v['share']:.1%} |" for k, v in summary["class_balance"].items()]
    lines += ["", "## Columns", "", *_column_table(summary["columns_stats"])]
    if summary["top_correlations"]:
        lines += ["", "## Top correlations with the target", "", "| column | correlation |", "|---|---:|"]
        lines += [f"| {c['column']} | {c['correlation']:.3f} |" for c in summary["top_correlations"]]
    return "\n".join(lines) + "\n"


def _column_table(stats: dict[str, dict[str, Any]]) -> list[str]:
    """Per-column statistics as Markdown table rows (for profile.md and the task log)."""
    lines = ["| column | type | missing | mean | std | min | 25% | median | 75% | max | distinct |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in stats.items():
        cells = " | ".join(_fmt(s.get(k)) for k in STAT_KEYS)
        lines.append(f"| {name} | {s['dtype']} | {s['missing']} | {cells} | {s['distinct']} |")
    return lines


def _column_stats(column: pd.Series) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "dtype": str(column.dtype),
        "missing": int(column.isna().sum()),
        "distinct": int(column.nunique(dropna=True)),
    }
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        described = column.describe()
        for key in STAT_KEYS:
            value = described.get(key)
            stats[key] = None if value is None or pd.isna(value) else round(float(value), 6)
    return stats


def _target_correlations(frame: pd.DataFrame, data: DataSpec, top: int) -> list[dict[str, Any]]:
    """Pearson correlation of numeric columns with the positive class (binary) or each class (strongest)."""
    frame = frame[frame[data.target].notna()]
    target = frame[data.target]
    numeric = frame.drop(columns=[data.target]).select_dtypes("number")
    if numeric.empty:
        return []
    positive = positive_label(target, data)
    labels = [positive] if positive is not None and target.nunique() == 2 else list(target.dropna().unique())
    best: dict[str, float] = {}
    for label in labels:
        indicator = (target == label).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = numeric.corrwith(indicator)
        for column, value in corr.dropna().items():
            if abs(value) > abs(best.get(str(column), 0.0)):
                best[str(column)] = float(value)
    ranked = sorted(best.items(), key=lambda kv: -abs(kv[1]))[:top]
    return [{"column": c, "correlation": round(v, 4)} for c, v in ranked]


def _fmt(value: Any) -> str:
    """A statistic for the Markdown table: 4 significant digits, blank when undefined."""
    return "" if value is None else f"{value:.4g}"
