"""Profile with Spark: the statistics of ``steps.profile``, computed on the cluster in a few passes.

Distinct counts and quartiles are Spark's approximations (approx_count_distinct; percentile_approx
within 0.1% of the rank), duplicate rows are counted by a 64-bit hash of each row (two different rows
share one with odds of about 1 in 10^8 at 10M rows); everything else is exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dag_factory.artifacts.records import DataProfile
from dag_factory.spec.schema import DataSpec
from dag_factory.steps.profile import MISSING_LABEL
from dag_factory.steps.spark.load import column, data_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

NUMERIC_TYPES = ("double", "float", "int", "bigint", "smallint", "tinyint", "decimal")
QUARTILES = ("25%", "50%", "75%")
#: percentile_approx's accuracy: a quartile's rank is off by at most 1/ACCURACY of the rows (Spark's default,
#: 10000, costs several times more on wide tables).
ACCURACY = 1000


def profile(raw: DataFrame, data: DataSpec, top: int = 10) -> DataProfile:
    """Rows, columns, class balance, per-column statistics and the top target correlations of ``raw``."""
    from pyspark.sql import functions as F

    columns = data_columns(raw)
    frame = raw.select(*[column(c) for c in columns])
    types = dict(frame.dtypes)
    numeric = [c for c in columns if types[c].startswith(NUMERIC_TYPES)]
    aggregates = [F.count(F.lit(1)).alias("__rows")]
    for i, c in enumerate(columns):
        aggregates += [F.sum(column(c).isNull().cast("long")).alias(f"m{i}"),
                       F.approx_count_distinct(column(c)).alias(f"d{i}")]
        if c in numeric:
            value = column(c)
            aggregates += [F.mean(value).alias(f"mean{i}"), F.stddev(value).alias(f"std{i}"),
                           F.min(value).alias(f"min{i}"), F.max(value).alias(f"max{i}"),
                           F.percentile_approx(value, [0.25, 0.5, 0.75], ACCURACY).alias(f"q{i}")]
    row = frame.agg(*aggregates).first().asDict()
    rows = int(row["__rows"])
    stats = {c: _column_stats(row, i, types[c], c in numeric) for i, c in enumerate(columns)}
    has_target = data.target in columns
    return DataProfile.model_validate({
        "rows": rows, "columns": len(columns), "target": data.target, "positive_class": data.positive_class,
        "duplicate_rows": rows - frame.select(F.xxhash64(*[column(c) for c in columns])).distinct().count(),
        "missing_cells": sum(s["missing"] for s in stats.values()),
        "class_balance": _class_balance(frame, data.target, rows) if has_target else {},
        "columns_stats": stats,
        "top_correlations": _correlations(frame, data, [c for c in numeric if c != data.target and c not in data.drop],
                                          top) if has_target else [],
    })


def _column_stats(row: dict[str, Any], i: int, dtype: str, numeric: bool) -> dict[str, Any]:
    stats: dict[str, Any] = {"dtype": dtype, "missing": int(row[f"m{i}"]), "distinct": int(row[f"d{i}"])}
    if numeric:
        quartiles = row[f"q{i}"] or [None] * 3
        values = {"mean": row[f"mean{i}"], "std": row[f"std{i}"], "min": row[f"min{i}"], "max": row[f"max{i}"],
                  **dict(zip(QUARTILES, quartiles, strict=True))}
        stats.update({k: None if v is None else round(float(v), 6) for k, v in values.items()})
    return stats


def _class_balance(frame: DataFrame, target: str, rows: int) -> dict[str, dict[str, Any]]:
    """Rows per class, largest first; rows without a target are counted as '(missing)'."""
    from pyspark.sql import functions as F

    label = F.coalesce(column(target).cast("string"), F.lit(MISSING_LABEL)).alias("label")
    counts = sorted(((r["label"], r["count"]) for r in frame.groupBy(label).count().collect()), key=lambda kv: -kv[1])
    return {k: {"count": int(v), "share": round(v / rows, 4)} for k, v in counts}


def _correlations(frame: DataFrame, data: DataSpec, numeric: list[str], top: int) -> list[dict[str, Any]]:
    """Pearson correlation of numeric columns with the positive class (binary) or each class (the strongest)."""
    from pyspark.sql import functions as F

    if not numeric:
        return []
    frame = frame.where(column(data.target).isNotNull())
    labels = [r[0] for r in frame.select(column(data.target).cast("string")).distinct().collect()]
    wanted = str(data.positive_class)
    if data.positive_class is not None and len(labels) == 2 and wanted in labels:
        labels = [wanted]
    text = column(data.target).cast("string")  # once per row, not once per column: the indicators come first
    frame = frame.select(*[column(c).cast("double").alias(f"x{i}") for i, c in enumerate(numeric)],
                         *[(text == label).cast("double").alias(f"y{j}") for j, label in enumerate(labels)])
    row = frame.agg(*[F.corr(f"x{i}", f"y{j}").alias(f"c{j}_{i}")
                      for j, _ in enumerate(labels) for i, _ in enumerate(numeric)]).first().asDict()
    best: dict[str, float] = {}
    for j, _ in enumerate(labels):
        for i, c in enumerate(numeric):
            value = row[f"c{j}_{i}"]
            if value is not None and value == value and abs(value) > abs(best.get(c, 0.0)):
                best[c] = float(value)
    ranked = sorted(best.items(), key=lambda kv: -abs(kv[1]))[:top]
    return [{"column": c, "correlation": round(v, 4)} for c, v in ranked]
