"""The cleaned table as partitioned Parquet, its partitions' digests, and the stratified sample the models train on."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING

from dag_factory.artifacts.records import PartitionStats, TrainingSample
from dag_factory.errors import DataError
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.steps.spark.load import ORDER, PARTITION, column, data_columns

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame, SparkSession

#: Hash bits turned into a uniform number in [0, 1): the sample's draw, the same on every engine and cluster.
DRAW_BITS = 53


def write_table(cleaned: DataFrame, table: Path) -> None:
    """Write the cleaned rows into ``table``, partitioned by source partition; only their partitions are replaced."""
    cleaned.write.mode("overwrite").partitionBy(PARTITION).parquet(str(table))


def partition_stats(spark: SparkSession, table: Path, names: list[str], target: str,
                    run_id: str) -> dict[str, PartitionStats]:
    """Rows, rows per class and a content digest of each partition ``names`` of the written table."""
    from pyspark.sql import functions as F

    frame = read_table(spark, table, names)
    digest = F.xxhash64(*[column(c) for c in data_columns(frame)]).cast("decimal(38,0)")
    rows = frame.groupBy(PARTITION, column(target).cast("string").alias("label")).agg(
        F.count(F.lit(1)).alias("rows"), F.sum(digest).alias("digest")).collect()
    stats: dict[str, PartitionStats] = {}
    for name in names:
        mine = [r for r in rows if r[PARTITION] == name]
        content = hashlib.sha256(repr(sorted((r["label"], r["rows"], str(r["digest"])) for r in mine)).encode())
        stats[name] = PartitionStats(rows=sum(r["rows"] for r in mine), classes={r["label"]: r["rows"] for r in mine},
                                     digest=content.hexdigest(), run_id=run_id)
    return stats


def table_fingerprint(columns: list[str], stats: dict[str, PartitionStats]) -> str:
    """SHA-256 of the column names and every partition's digest: the same rows, the same fingerprint."""
    payload = repr((columns, sorted((name, s.rows, s.digest) for name, s in stats.items())))
    return hashlib.sha256(payload.encode()).hexdigest()


def read_table(spark: SparkSession, table: Path, names: list[str]) -> DataFrame:
    """The partitions ``names`` of the cleaned table (not any other a failed run may have left)."""
    from pyspark.sql import functions as F

    return spark.read.parquet(str(table)).where(F.col(PARTITION).isin(names))


def training_rows(frame: DataFrame, stats: dict[str, PartitionStats], spec: ExperimentSpec,
                  table: Path) -> tuple[pd.DataFrame, TrainingSample]:
    """The rows the models train on, as pandas: the whole table in source order when it has at most
    ``data.spark.sample_rows`` rows, else a stratified sample drawn by a seeded hash of each row's content."""
    limit, total = spec.data.spark.sample_rows, sum(s.rows for s in stats.values())
    columns = data_columns(frame)
    if total <= limit:
        rows = _pandas(frame.orderBy(*ORDER).select(*[column(c) for c in columns]))
    else:
        rows = _stratified(frame, columns, _class_counts(stats), total, spec, table)
    return rows, TrainingSample(rows=len(rows), of_rows=total, table=str(table))


def _pandas(frame: DataFrame) -> pd.DataFrame:
    """``frame`` as pandas, without the query metrics Spark Connect attaches (``attrs`` that Parquet cannot store)."""
    rows = frame.toPandas()
    rows.attrs.clear()
    return rows


def _class_counts(stats: dict[str, PartitionStats]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for partition in stats.values():
        for label, rows in partition.classes.items():
            counts[label] = counts.get(label, 0) + rows
    return counts


def _stratified(frame: DataFrame, columns: list[str], counts: dict[str, int], total: int,
                spec: ExperimentSpec, table: Path) -> pd.DataFrame:
    """Each class's share of ``sample_rows`` (at least 2 rows): its rows with the smallest draws, in draw order.

    One pass keeps every row whose draw is below a margin over the class's share; the margin (six standard
    deviations) makes a second pass, with twice the margin, all but impossible; a table short of the rows its
    partitions recorded is a DataError, not an endless loop.
    """
    from pyspark.sql import functions as F

    wanted = {c: min(n, max(2, round(spec.data.spark.sample_rows * n / total))) for c, n in counts.items()}
    label = column(spec.data.target).cast("string")
    draw = (F.xxhash64(F.lit(spec.split.seed), *[column(c) for c in columns])
            .bitwiseAND(F.lit((1 << DRAW_BITS) - 1)) / float(1 << DRAW_BITS))
    margin = 6.0
    while True:
        share = {c: min(1.0, (k + margin * math.sqrt(k) + 10) / counts[c]) for c, k in wanted.items()}
        kept = _pandas(frame.select(*[column(c) for c in columns], draw.alias("__draw"), label.alias("__label")).where(
            F.col("__draw") < _per_class(F.col("__label"), share)))
        sizes = kept["__label"].value_counts()
        if all(sizes.get(c, 0) >= k for c, k in wanted.items()):
            break
        if all(value == 1.0 for value in share.values()):  # every row taken, still short: rows were lost
            short = sorted(c for c, k in wanted.items() if sizes.get(c, 0) < k)
            raise DataError(f"the cleaned table {table} has fewer rows of class {', '.join(short)} than its partitions "
                            f"had when written ({len(kept)} rows found, {total} recorded): something removed or "
                            "overwrote part of it; delete that folder and run with force to rebuild it")
        margin *= 2
    kept = kept.sort_values("__draw", kind="stable")
    sample = kept[kept.groupby("__label").cumcount() < kept["__label"].map(wanted)]
    return sample.drop(columns=["__draw", "__label"]).reset_index(drop=True)


def _per_class(label: Column, share: dict[str, float]) -> Column:
    """The draw below which a row of each class is kept."""
    from pyspark.sql import functions as F

    expression = F.lit(0.0)
    for name, value in share.items():
        expression = F.when(label == name, F.lit(value)).otherwise(expression)
    return expression
