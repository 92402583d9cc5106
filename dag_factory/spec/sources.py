"""Where a spec may read its data from: files inside the data roots, loaders, and remote URLs.

A spec is untrusted input: whoever can add a YAML file must not make a worker read the
worker's own secrets (``../../etc/shadow``, ``file:///etc/passwd``, a symbolic link out of the
project). Local sources are confined to the project folder and the folders named in
``DAG_FACTORY_DATA_ROOTS``; the check runs when a spec is read (``validate``, Airflow's parse)
and again right before the file is opened (the load step), on the path with every ``..`` and
symbolic link resolved.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from dag_factory.storage.location import LOCAL_SCHEMES, scheme_of

#: The setting that adds data roots to the project folder: folders separated by ":" (like PATH).
DATA_ROOTS_SETTING = "DAG_FACTORY_DATA_ROOTS"
#: fsspec protocols that read this machine's files or wrap another URL (``simplecache::file:///etc/passwd``).
LOCAL_WRAPPERS = ("asynclocal", "blockcache", "cached", "dir", "filecache", "libarchive", "reference",
                  "simplecache", "tar", "zip")


class SourceRefused(ValueError):
    """A data source the spec may not read; its message is the sentence a user sees."""


def data_roots(project_root: Path) -> list[Path]:
    """The folders local data may come from: the project folder, then those of DAG_FACTORY_DATA_ROOTS."""
    extra = os.environ.get(DATA_ROOTS_SETTING, "")
    added = [Path(p).expanduser().resolve() for p in extra.split(os.pathsep) if p.strip()]
    return [Path(project_root).resolve(), *added]


def local_source(source: str, project_root: Path) -> Path | None:
    """The resolved file a local source names (relative paths start at the project), or None for any other source.

    Raises SourceRefused when the file is outside the data roots, or the URL can reach local files another way.
    """
    scheme = scheme_of(source)
    if "::" in source or scheme in LOCAL_WRAPPERS:
        raise SourceRefused(f'"{source}" reads local files through an fsspec wrapper ({scheme}://, a::b); '
                            "give a path inside the data roots, or the remote URL itself")
    if scheme not in LOCAL_SCHEMES:
        return None
    path = Path(_path_of(source, scheme)).expanduser()
    resolved = (path if path.is_absolute() else Path(project_root) / path).resolve()
    roots = data_roots(project_root)
    if not any(resolved.is_relative_to(root) for root in roots):
        raise SourceRefused(
            f'"{source}" resolves to {resolved}, outside the data roots ({", ".join(map(str, roots))}); move the '
            f'file into the project folder, or add its folder to {DATA_ROOTS_SETTING} (folders separated by ":")')
    return resolved


def _path_of(source: str, scheme: str) -> str:
    """The file path of a plain path or a ``file://`` URL (only this machine's: no other host)."""
    if not scheme:
        return source
    parts = urlsplit(source)
    if parts.netloc not in ("", "localhost"):
        raise SourceRefused(f'"{source}" names a file on host "{parts.netloc}"; a {scheme}:// URL can only name '
                            f"this machine's files, as file:///path")
    return unquote(parts.path)
