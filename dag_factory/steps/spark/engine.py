"""The data steps of ``data.engine: spark``, as the workflow calls them: load, profile and preprocess a run.

Spark writes local paths (or whatever its cluster's file system is): the run folder must be on this disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dag_factory.artifacts.layout import RunFiles, table_dir
from dag_factory.artifacts.records import DataProfile, Partitions, RunMeta
from dag_factory.errors import DataError
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.spec.sources import SourceRefused, local_source
from dag_factory.steps.partitions import nothing_new_reason, seen, source_partitions, unseen
from dag_factory.steps.preprocess import split_cleaned
from dag_factory.steps.spark.clean import clean
from dag_factory.steps.spark.load import PARTITION, data_columns, read_partitions, write_raw
from dag_factory.steps.spark.profile import profile as spark_profile
from dag_factory.steps.spark.session import spark_session
from dag_factory.steps.spark.table import partition_stats, read_table, table_fingerprint, training_rows, write_table
from dag_factory.storage.location import StoragePath, is_local


def load(spec: ExperimentSpec, files: RunFiles, results: StoragePath, base: Path,
         force: bool) -> tuple[dict[str, Any], str | None]:
    """Copy the partitions this run processes into the run's raw table; with none to process, the reason to skip.

    Every partition of the source, or (``data.incremental``) those no run trained on yet; ``force``: every one.
    """
    data = spec.data
    everything = source_partitions(_source_path(data.source, base))
    todo = unseen(everything, results, spec.experiment) if data.incremental and not force else everything
    if not todo:
        return {"partitions": []}, nothing_new_reason(data.source, everything)
    spark = spark_session(data.spark, f"{spec.experiment} load_data")
    raw = read_partitions(spark, todo, data)
    rows = write_raw(raw, todo, _local(files.raw), spark, data)
    names = [p.name for p in todo]
    return {"raw_path": str(files.raw), "rows": rows, "columns": len(data_columns(raw)), "partitions": names,
            "source": f"{data.source} ({len(names)} of {len(everything)} partition(s): {_span(names)})"}, None


def profile(spec: ExperimentSpec, files: RunFiles) -> DataProfile:
    """The profile of the rows this run loaded."""
    spark = spark_session(spec.data.spark, f"{spec.experiment} profile")
    return spark_profile(spark.read.parquet(str(_local(files.raw))), spec.data)


def preprocess(spec: ExperimentSpec, files: RunFiles, results: StoragePath, run_id: str, config: str) -> RunMeta:
    """Clean the loaded rows, write them into the cleaned table, and split its rows (or a sample) for the models.

    An incremental experiment's table (``<results>/tables/<experiment>/cleaned``) gains this run's partitions and
    the models see every partition runs trained on plus these; otherwise the table is the run's ``data/cleaned``.
    """
    data = spec.data
    spark = spark_session(data.spark, f"{spec.experiment} preprocess")
    raw = spark.read.parquet(str(_local(files.raw)))
    names = sorted(r[0] for r in raw.select(PARTITION).distinct().collect())
    cleaned, notes = clean(raw, data)
    table = _local(table_dir(results, spec.experiment) / "cleaned" if data.incremental else files.cleaned)
    write_table(cleaned, table)
    added = partition_stats(spark, table, names, data.target, run_id)
    included = added
    if data.incremental:
        Partitions(partitions=added).write(files.partitions)
        included = {**seen(results, spec.experiment).partitions, **added}
    frame = read_table(spark, table, sorted(included))
    rows, sample = training_rows(frame, included, spec, table)
    return split_cleaned(rows, notes, spec, files, config, table_fingerprint(list(rows.columns), included), sample)


def _source_path(source: str, base: Path) -> Path:
    """The local file or folder a spark source names, inside the data roots."""
    try:
        path = local_source(source, base)
    except SourceRefused as refused:
        raise DataError(f"data.source: {refused}") from None
    if path is None:
        raise DataError(f'data.source: "{source}" is not a file or folder on this machine; data.engine spark reads '
                        "local files and folders of partitions (a path shared with the cluster)")
    return path


def _local(path: StoragePath) -> Path:
    """A path of the run folder or results root as Spark writes it: on this disk."""
    if not is_local(path):
        raise DataError(f"data.engine spark writes its tables with Spark, which needs the results on this disk "
                        f"(or one the cluster shares), not {path}; set results.root to a folder")
    return Path(path)


def _span(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}"
