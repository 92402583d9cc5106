"""Small file helpers shared by the steps: atomic JSON writes and checksums."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: Path, payload: Any) -> Path:
    """Write JSON atomically (temp file, fsync, rename) so a reader never sees half a file."""
    return write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def write_text(path: Path, text: str) -> Path:
    """Write text atomically: a crash leaves the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: Path) -> Any:
    """Read a JSON file written by ``write_json``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


MANIFEST = "SHA256SUMS"


def write_manifest(folder: Path) -> Path:
    """Record the SHA-256 of every file in ``folder`` in ``SHA256SUMS`` (``sha256sum -c`` format)."""
    folder = Path(folder)
    lines = [f"{sha256_file(p)}  {p.name}\n" for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST]
    return write_text(folder / MANIFEST, "".join(lines))


def manifest_problems(folder: Path) -> list[str]:
    """What differs from the folder's ``SHA256SUMS``: changed or missing files ([] when all match)."""
    folder = Path(folder)
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
    """Flush a folder's entries (renames, new files) to disk, so they survive a power loss too."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
