"""Which partitions of a data source a run processes: every one, or (incremental) those no run trained on yet.

A source is a file (one partition) or a folder whose entries (files or folders, dated names such as
``2026-01-01.parquet`` or ``date=2026-01-01``) are its partitions, in name order. What runs trained on is
recorded in ``<results>/tables/<experiment>/partitions.json`` when a run's promote step records its training,
so a run that failed before then leaves its partitions to the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dag_factory.artifacts.layout import RunFiles, table_dir
from dag_factory.artifacts.records import Partitions
from dag_factory.errors import DataError
from dag_factory.storage.location import StoragePath


@dataclass(frozen=True)
class Partition:
    """One partition of the source: its name (the entry's name) and its path."""

    name: str
    path: Path


def source_partitions(source: Path) -> list[Partition]:
    """The partitions of a local source, in name order; hidden entries (``.x``, ``_SUCCESS``) are not data."""
    if source.is_file():
        return [Partition(source.name, source)]
    if not source.is_dir():
        raise DataError(f"data.source: {source} does not exist; check the path (a relative path starts at the "
                        "project folder)")
    found = [Partition(p.name, p) for p in sorted(source.iterdir()) if not p.name.startswith((".", "_"))]
    if not found:
        raise DataError(f"data.source: the folder {source} holds no partitions; add files (or folders) of data to it")
    return found


def seen_file(results: StoragePath, experiment: str) -> StoragePath:
    """Where the partitions that runs trained on are recorded."""
    return table_dir(results, experiment) / "partitions.json"


def seen(results: StoragePath, experiment: str) -> Partitions:
    """The partitions that runs of ``experiment`` trained on (none yet: empty)."""
    path = seen_file(results, experiment)
    return Partitions.read(path) if path.exists() else Partitions()


def unseen(partitions: list[Partition], results: StoragePath, experiment: str) -> list[Partition]:
    """The partitions no run trained on yet."""
    known = seen(results, experiment).partitions
    return [p for p in partitions if p.name not in known]


def nothing_new_reason(source: str, partitions: list[Partition]) -> str:
    """The sentence of a run skipped because no partition arrived."""
    newest = max(p.name for p in partitions)
    return (f"no new partition in {source} since the last run that trained ({len(partitions)} seen, newest "
            f"{newest}); training skipped. Add a partition, or trigger with force=true (CLI: --force) to clean "
            "every partition again and retrain.")


def record_seen(files: RunFiles, results: StoragePath, experiment: str) -> None:
    """Add the partitions this run wrote to those runs trained on (an incremental run, once it trained)."""
    if not files.partitions.exists():
        return
    record = seen(results, experiment)
    added = Partitions.read(files.partitions).partitions
    Partitions(partitions={**record.partitions, **added}).write(seen_file(results, experiment))
