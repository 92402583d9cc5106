"""Validate and clean with Spark: the rules of ``steps.validate``, counted on the cluster, in the same sentences."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dag_factory.spec.schema import DataSpec
from dag_factory.steps.spark.load import ORDER, column, data_columns
from dag_factory.steps.validate import (
    check_classes, check_columns, check_features, check_min_rows, check_missing_share, check_target_rows,
    empty_column_error, non_numeric_error, note_duplicates,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def clean(raw: DataFrame, data: DataSpec) -> tuple[DataFrame, list[str]]:
    """The cleaned table (features, the target, then the ``ORDER`` columns) and the notes a user should read.

    Raises DataError, with the pandas engine's sentences, for anything that would make training meaningless.
    """
    from pyspark.sql import functions as F

    check_columns(data_columns(raw), data)
    notes: list[str] = []
    frame = raw.drop(*data.drop)
    target = column(data.target)
    floating = dict(frame.dtypes)[data.target] in ("double", "float")
    integral = (target % 1 == 0) if floating else F.lit(False)
    counts = frame.agg(F.count(F.lit(1)).alias("rows"), F.sum(target.isNull().cast("long")).alias("missing"),
                       F.sum((target.isNotNull() & ~integral).cast("long")).alias("fractional")).first()
    check_target_rows(counts["rows"], counts["missing"] or 0, data, notes)
    frame = frame.where(target.isNotNull())
    if floating and not counts["fractional"]:  # a CSV column with gaps reads 1 as 1.0: give the target one type
        frame = frame.withColumn(data.target, target.cast("long"))
    features = [c for c in data_columns(frame) if c != data.target]
    check_features(features)
    frame = _numeric_features(frame, features, data, counts["rows"] - (counts["missing"] or 0))
    frame = _duplicates(frame, [*features, data.target], data, notes)
    rows = frame.count()
    check_min_rows(rows, data)
    label = column(data.target).cast("string").alias("label")
    check_classes({r["label"]: r["count"] for r in frame.groupBy(label).count().collect()}, data, notes)
    return frame.select(*[column(c) for c in [*features, data.target, *ORDER]]), notes


def _numeric_features(frame: DataFrame, features: list[str], data: DataSpec, rows: int) -> DataFrame:
    """Features as numbers (categorical ones as they are), after the empty, non-numeric and missing-share checks."""
    from pyspark.sql import functions as F

    text = [c for c in features if c not in data.categorical and dict(frame.dtypes)[c] == "string"]
    aggregates = [F.count(column(c)).alias(f"n{i}") for i, c in enumerate(features)]
    aggregates += [F.sum((column(c).isNotNull() & column(c).try_cast("double").isNull()).cast("long")).alias(f"b{i}")
                   for i, c in enumerate(features) if c in text]
    row = frame.agg(*aggregates).first().asDict()
    for i, c in enumerate(features):
        if not row[f"n{i}"]:
            raise empty_column_error(c)
        if row.get(f"b{i}"):
            bad = frame.where(column(c).isNotNull() & column(c).try_cast("double").isNull()).select(column(c))
            raise non_numeric_error(c, row[f"b{i}"], [r[0] for r in bad.distinct().limit(5).collect()])
    check_missing_share({c: 1 - row[f"n{i}"] / rows for i, c in enumerate(features)}, data.max_missing_share)
    return frame.select(*[column(c).try_cast("double").alias(c) if c not in data.categorical else column(c)
                          for c in features], column(data.target), *ORDER)


def _duplicates(frame: DataFrame, columns: list[str], data: DataSpec, notes: list[str]) -> DataFrame:
    """Count duplicate rows; drop them when the spec says so, keeping each one's first row in source order."""
    from pyspark.sql import functions as F

    groups = frame.groupBy(*[column(c) for c in columns]).agg(
        F.count(F.lit(1)).alias("__copies"), F.min(F.struct(*ORDER)).alias("__first"))
    duplicates = groups.agg(F.sum(F.col("__copies") - 1)).first()[0] or 0
    note_duplicates(int(duplicates), data, notes)
    if duplicates and data.drop_duplicates:
        return groups.select(*[column(c) for c in columns], "__first.*")
    return frame
