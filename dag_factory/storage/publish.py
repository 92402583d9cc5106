"""Publishing a folder whole: a step builds it locally, readers then see all of it or none of it.

The one atomic-publish helper for run folders (a trained model) and champions (a version
folder), on a disk and on an object store alike. Single files go through ``files.write_with``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dag_factory.storage.files import fsync_dir
from dag_factory.storage.location import StoragePath, copy_file, is_local, remove_tree

#: Suffix of a folder being built beside its target on a disk; leftovers of killed attempts carry it.
PARTIAL = ".partial"
#: A scratch folder younger than this may not hold its builder's lock yet: a sweep without an outer lock leaves it.
JUST_STARTED_SECONDS = 60


@contextmanager
def building(target: StoragePath, last: str) -> Iterator[Path]:
    """A fresh local folder to build ``target`` in; when the block ends without error it replaces ``target``.

    On a disk the folder is built beside the target (``.<name>.partial``, same file system), its
    files are flushed, and one rename puts it in place; while it is built its builder holds a lock
    on it, so ``sweep_partials`` removes only what a killed builder left. On an object store it is
    built in the temp folder and uploaded file by file, ``last`` after all others: a reader that
    finds ``last`` finds everything. On an error nothing is published and the scratch folder goes.
    """
    if is_local(target):
        scratch = target.with_name(f".{target.name}{PARTIAL}")
        shutil.rmtree(scratch, ignore_errors=True)  # left by an attempt that was killed
        scratch.mkdir(parents=True)
    else:
        scratch = Path(tempfile.mkdtemp(prefix=f"dag-factory-{target.name}-"))
    lock = os.open(scratch, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the kernel when this process ends, even killed
        yield scratch
        _publish(scratch, target, last)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        os.close(lock)


def _publish(scratch: Path, target: StoragePath, last: str) -> None:
    remove_tree(target)
    if is_local(target):
        _fsync_tree(scratch)
        scratch.rename(target)
        fsync_dir(target.parent)
        return
    files = sorted(p for p in scratch.rglob("*") if p.is_file())
    for path in sorted(files, key=lambda p: p.relative_to(scratch).as_posix() == last):
        copy_file(path, target / path.relative_to(scratch).as_posix())


def sweep_partials(folder: StoragePath, min_age_seconds: float = 0) -> list[StoragePath]:
    """Remove what killed attempts left in a local ``folder`` (``.*.partial``); returns what was removed.

    A folder still being built (its builder holds its lock) is left alone, and so is one younger
    than ``min_age_seconds`` (its builder may not hold the lock yet; no need under an outer lock).
    """
    if not is_local(folder) or not folder.exists():
        return []
    leftovers = [path for path in folder.glob(f".*{PARTIAL}")
                 if time.time() - path.stat().st_mtime >= min_age_seconds and not _in_use(path)]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


def _in_use(folder: Path) -> bool:
    """Whether a live ``building`` holds the lock on ``folder``."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return False  # gone meanwhile
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)  # closing releases a lock taken here
    return False


@contextmanager
def local_folder(folder: StoragePath) -> Iterator[Path]:
    """``folder`` itself when it is on this disk; else a temporary local folder, removed afterwards.

    For working files that live as long as the run folder where they can (a download cache).
    """
    if is_local(folder):
        yield folder
        return
    temporary = Path(tempfile.mkdtemp(prefix="dag-factory-cache-"))
    try:
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _fsync_tree(folder: Path) -> None:
    """Flush every file of a folder, and the folders themselves, before it is renamed into place."""
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        else:
            fsync_dir(path)
    fsync_dir(folder)
