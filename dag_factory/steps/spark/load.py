"""Load with Spark: read the source's partitions (CSV or Parquet) into the run's raw table, in source order.

Every row keeps where it came from (``ORDER``: partition, file, block, row), so the cleaned table can be
read back in the source's own order, as the pandas engine reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dag_factory.errors import DataError, excerpt
from dag_factory.spec.schema import DataSpec
from dag_factory.steps.partitions import Partition

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

PARTITION = "__partition"
#: The columns that say where a row came from, in the source's order.
ORDER = (PARTITION, "__file", "__block", "__row")


def read_partitions(spark: SparkSession, partitions: list[Partition], data: DataSpec) -> DataFrame:
    """The rows of ``partitions`` as one table with typed columns and the ``ORDER`` columns.

    A partition that cannot be read, or whose columns differ from the first one's, is named in a DataError.
    """
    frames = [_read(spark, p, data) for p in partitions]
    first = frames[0].columns
    for partition, frame in zip(partitions, frames, strict=True):
        if frame.columns != first:
            raise DataError(f"data.source: partition {partition.name} has columns {', '.join(frame.columns[:20])}, "
                            f"unlike {partitions[0].name} ({', '.join(first[:20])}); every partition needs the "
                            "same columns in the same order: fix or remove it")
    table = frames[0]
    for frame in frames[1:]:
        table = table.unionByName(frame)
    return table


def write_raw(table: DataFrame, partitions: list[Partition], target: Path, spark: SparkSession,
              data: DataSpec) -> int:
    """Write ``table`` as Parquet at ``target``; returns its rows. A corrupt partition is named in a DataError."""
    try:
        table.write.mode("overwrite").parquet(str(target))
    except Exception as err:  # noqa: BLE001  Spark raises many types for a file it cannot read
        raise _unreadable(spark, partitions, data, err) from err
    return spark.read.parquet(str(target)).count()


def column(name: str) -> Column:
    """A column by its name as written in the data (dots, spaces and backticks included)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def data_columns(frame: DataFrame) -> list[str]:
    """The columns of the data itself, without the ``ORDER`` columns."""
    return [c for c in frame.columns if c not in ORDER]


def _read(spark: SparkSession, partition: Partition, data: DataSpec) -> DataFrame:
    """One partition with its ``ORDER`` columns; CSV columns typed as numbers where every value is one."""
    from pyspark.sql import functions as F

    kind = _format(partition.path, data)
    try:
        reader = spark.read.format(kind)
        if kind == "csv":
            reader = reader.option("header", data.header).option("inferSchema", False)
        frame = reader.load(str(partition.path))
        names = frame.columns
    except Exception as err:  # noqa: BLE001
        raise _partition_error(partition, kind, err) from err
    if data.columns is not None:
        if len(data.columns) != len(names):
            raise DataError(f"data.columns names {len(data.columns)} columns but partition {partition.name} has "
                            f"{len(names)}; list one name per column, in file order")
        names = list(data.columns)
    elif not data.header:
        names = [f"col_{i}" for i in range(len(names))]
    frame = frame.select(
        *[column(old).alias(new) for old, new in zip(frame.columns, names, strict=True)],
        F.lit(partition.name).alias(PARTITION), F.col("_metadata.file_path").alias("__file"),
        F.col("_metadata.file_block_start").alias("__block"), F.monotonically_increasing_id().alias("__row"))
    return _typed(frame, names, data) if kind == "csv" else frame


def _typed(frame: DataFrame, names: list[str], data: DataSpec) -> DataFrame:
    """CSV text as the pandas engine reads it: missing-value markers (pandas' own and the spec's) as nulls, numeric
    columns as numbers."""
    from pandas._libs.parsers import STR_NA_VALUES
    from pyspark.sql import functions as F

    markers = sorted(STR_NA_VALUES | set(data.missing_values))
    texts = {n: F.when(column(n).isin(markers), None).otherwise(column(n)) for n in names}
    frame = frame.select(*[texts[n].alias(n) for n in names], *ORDER)
    bad = frame.agg(*[F.sum((column(n).isNotNull() & column(n).try_cast("double").isNull()).cast("long")).alias(n)
                      for n in names]).first()
    numeric = {n for n in names if not (bad[n] or 0)}
    return frame.select(*[column(n).try_cast("double").alias(n) if n in numeric else column(n) for n in names], *ORDER)


def _format(path: Path, data: DataSpec) -> str:
    """CSV or Parquet: the spec's data.format, else the file's suffix (a folder: its first data file's)."""
    if data.format != "auto":
        return data.format
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                  and not p.name.startswith((".", "_")))
    return "csv" if files and files[0].suffix.lower() == ".csv" else "parquet"


def _unreadable(spark: SparkSession, partitions: list[Partition], data: DataSpec, err: Exception) -> DataError:
    """The error of the first partition that cannot be read through (else the error as it came)."""
    for partition in partitions:
        try:
            _read(spark, partition, data).write.format("noop").mode("overwrite").save()
        except DataError as found:
            return found
        except Exception as failed:  # noqa: BLE001
            return _partition_error(partition, _format(partition.path, data), failed)
    return DataError(f"data.source: Spark could not copy the data ({_first_line(err)}); see the task log")


def _partition_error(partition: Partition, kind: str, err: Exception) -> DataError:
    return DataError(f"data.source: partition {partition.name} ({partition.path}) is not a valid {kind.upper()} "
                     f"file ({_first_line(err)}); fix or remove it and run again. Nothing of this run was added to "
                     "the cleaned table, and the partitions of earlier runs are kept")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return excerpt(text.splitlines()[0], 160) if text else type(err).__name__
