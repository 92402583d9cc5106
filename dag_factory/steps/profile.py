"""Profile step: the statistics a person checks before trusting a model trained on the data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dag_factory.artifacts.records import NUMERIC_STATS, DataProfile
from dag_factory.spec.schema import DataSpec, TaskKind
from dag_factory.steps.validate import infer_task, positive_label

MISSING_LABEL = "(missing)"


def profile(frame: pd.DataFrame, data: DataSpec, top: int = 10, task: TaskKind | None = None) -> DataProfile:
    """Row and column counts, class balance (classification), per-column statistics and top target correlations.

    ``task`` is the spec's; without one it is inferred from the target as preprocess will.
    """
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
    regression = has_target and (task or infer_task(frame[data.target], data)[0]) == "regression"
    result["target_kind"] = "a quantity (regression)" if regression else "classes"
    if has_target and not regression:
        result["class_balance"] = _class_balance(frame[data.target])
    if has_target:
        result["top_correlations"] = _target_correlations(frame.drop(columns=_present(frame, data.drop)), data, top,
                                                          regression)
    return DataProfile.model_validate(result)


def _class_balance(target: pd.Series) -> dict[str, dict[str, Any]]:
    """Rows per class, largest first; rows without a target are counted as '(missing)'."""
    counts = target.astype(object).where(target.notna(), MISSING_LABEL).astype(str).value_counts()
    return {str(k): {"count": int(v), "share": round(float(v) / len(target), 4)} for k, v in counts.items()}


def _present(frame: pd.DataFrame, names: list[str]) -> list[str]:
    """The names that are columns of ``frame`` (the raw data may lack a misspelt one)."""
    return [n for n in names if n in frame.columns]


def _column_stats(column: pd.Series) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "dtype": str(column.dtype),
        "missing": int(column.isna().sum()),
        "distinct": int(column.nunique(dropna=True)),
    }
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        described = column.describe()
        for key in NUMERIC_STATS:
            value = described.get(key)
            stats[key] = None if value is None or pd.isna(value) else round(float(value), 6)
    return stats


def _target_correlations(frame: pd.DataFrame, data: DataSpec, top: int, regression: bool) -> list[dict[str, Any]]:
    """Pearson correlation of numeric columns with the target (regression), the positive class (binary) or each
    class (strongest)."""
    frame = frame[frame[data.target].notna()]
    target = frame[data.target]
    numeric = frame.drop(columns=[data.target]).select_dtypes("number")
    if numeric.empty:
        return []
    positive = positive_label(target, data)
    labels = [positive] if positive is not None and target.nunique() == 2 else list(target.dropna().unique())
    targets = [target.astype(float)] if regression else [(target == label).astype(float) for label in labels]
    best: dict[str, float] = {}
    for indicator in targets:
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = numeric.corrwith(indicator)
        for column, value in corr.dropna().items():
            if abs(value) > abs(best.get(str(column), 0.0)):
                best[str(column)] = float(value)
    ranked = sorted(best.items(), key=lambda kv: -abs(kv[1]))[:top]
    return [{"column": c, "correlation": round(v, 4)} for c, v in ranked]


