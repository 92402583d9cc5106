"""Small file helpers shared by the steps: atomic writes, JSON, Parquet and checksums, on any storage.

Every helper takes a ``StoragePath`` (a local ``Path`` or an object-store path): a write on a
disk goes through a temporary file and a rename, a write to an object store is one PUT; in both
cases a reader sees the old content or the new, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from dag_factory.storage.location import StoragePath, ensure_parent, is_local

MANIFEST = "SHA256SUMS"

if TYPE_CHECKING:
    import pandas as pd


def write_json(path: StoragePath, payload: Any) -> StoragePath:
    """Write JSON atomically so a reader never sees half a file."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def write_text(path: StoragePath, text: str) -> StoragePath:
    """Write text atomically: a crash leaves the old file or the new one, never a mix."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: StoragePath, data: bytes) -> StoragePath:
    """Write bytes atomically (disk: temp file, fsync, rename; object store: a single PUT)."""
    return write_with(path, lambda handle: handle.write(data))


def write_with(path: StoragePath, writer: Callable[[BinaryIO], Any]) -> StoragePath:
    """Let ``writer`` fill a binary file that appears at ``path`` only once complete.

    The one way a single file is written: on a disk, a temporary file beside it, flushed,
    then renamed; on an object store the object becomes visible when the upload completes,
    which is already all or nothing. (Whole folders: ``publish.building``.)
    """
    ensure_parent(path)
    if not is_local(path):
        with path.open("wb") as handle:
            writer(handle)
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: StoragePath) -> Any:
    """Read a JSON file written by ``write_json``."""
    return json.loads(path.read_text(encoding="utf-8"))


def read_parquet(path: StoragePath) -> pd.DataFrame:
    """Read a Parquet file from any storage."""
    import pandas as pd

    with path.open("rb") as handle:
        return pd.read_parquet(handle)


def write_parquet(frame: pd.DataFrame, path: StoragePath) -> StoragePath:
    """Write a table as Parquet to any storage, streaming (no second copy in memory)."""
    return write_with(path, frame.to_parquet)


def sha256_file(path: StoragePath) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> Path:
    """Record the SHA-256 of every file in a local ``folder`` in ``SHA256SUMS`` (``sha256sum -c`` format)."""
    lines = [f"{sha256_file(p)}  {p.name}\n" for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST]
    return write_text(folder / MANIFEST, "".join(lines))


def manifest_problems(folder: StoragePath) -> list[str]:
    """What differs from the folder's ``SHA256SUMS``: changed or missing files ([] when all match)."""
    manifest = folder / MANIFEST
    if not manifest.exists():
        return [f"{manifest} is missing"]
    problems = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        expected, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{path} has SHA-256 {actual[:16]}..., but {MANIFEST} records {expected[:16]}...")
    return problems


def fsync_dir(folder: Path) -> None:
    """Flush a local folder's entries (renames, new files) to disk, so they survive a power loss too."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
