"""Where results live: a local folder or any fsspec URL (s3://, gs://, ...), behind one path type.

Every step reads and writes through path objects with pathlib's API: ``pathlib.Path`` for a
local folder, ``upath.UPath`` for object storage (or Airflow's ``ObjectStoragePath`` when an
Airflow provider serves the URL's scheme through a connection). The few operations whose
safe form differs between a disk and an object store live here (removing a tree, copying a
file); publishing a finished folder lives in ``publish``.

Nothing heavy is imported at module level: the DAG file imports this module at parse time.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

from dag_factory.errors import SpecError

if TYPE_CHECKING:
    from upath import UPath

#: A local folder or an object-storage location; both offer pathlib's API.
StoragePath: TypeAlias = "Path | UPath"

#: URL schemes that name the local disk.
LOCAL_SCHEMES = ("", "file", "local")
#: Schemes of S3 and S3-compatible stores (MinIO, Ceph, R2, ...).
S3_SCHEMES = ("s3", "s3a")
#: Object stores whose first path part is a bucket (or container).
BUCKET_SCHEMES = (*S3_SCHEMES, "gs", "gcs", "az", "abfs", "abfss")
#: Stores without folders: nothing to create before a write (creating one could even create a bucket).
FOLDERLESS_SCHEMES = (*BUCKET_SCHEMES, "memory")


def scheme_of(url: str | os.PathLike[str]) -> str:
    """The URL scheme of ``url`` ('' for a plain path; a Windows drive letter is not a scheme)."""
    scheme = urlsplit(str(url)).scheme
    return "" if len(scheme) == 1 else scheme


def open_location(url: str | os.PathLike[str], conn_id: str | None = None, base: Path | None = None) -> StoragePath:
    """A path object for ``url``: a folder (relative to ``base``), ``file://...``, or an object-store URL.

    ``conn_id`` names an Airflow connection with the credentials; without one, the store's
    standard environment applies (for S3: AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ~/.aws, roles).
    """
    text = str(url)
    scheme = scheme_of(text)
    if scheme in LOCAL_SCHEMES and conn_id is None:
        path = Path(urlsplit(text).path if scheme else text).expanduser()
        return path if path.is_absolute() or base is None else base / path
    if conn_id is not None and _airflow_serves(scheme or "file"):
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(text, conn_id=conn_id)
    from upath import UPath

    options = connection_options(scheme, conn_id) if conn_id else {}
    return UPath(text, **options)


def _airflow_serves(scheme: str) -> bool:
    """Whether an installed Airflow provider (or Airflow itself) registers a filesystem for ``scheme``."""
    from airflow.sdk.io import has_fs

    return has_fs(scheme)


def connection_options(scheme: str, conn_id: str) -> dict[str, Any]:
    """fsspec options for an S3 URL from an Airflow connection of type aws.

    The fields are the Amazon provider's: login (access key id), password (secret access key),
    extra ``endpoint_url``, ``region_name`` and ``aws_session_token``. Used when the Amazon
    provider itself is not installed, so that a connection works with the ``s3`` extra alone.
    """
    if scheme not in S3_SCHEMES:
        raise SpecError(f"results.conn_id {conn_id}", [
            f"no installed Airflow provider serves {scheme}:// URLs through a connection; install the provider "
            f"for {scheme}:// (e.g. apache-airflow-providers-google for gs://), or remove conn_id to use the "
            "standard credentials of the environment"])
    from airflow.sdk import Connection

    conn = Connection.get(conn_id)
    extra = conn.extra_dejson
    options: dict[str, Any] = {}
    if conn.login:
        options["key"] = conn.login
    if conn.password:
        options["secret"] = conn.password
    if extra.get("aws_session_token"):
        options["token"] = extra["aws_session_token"]
    endpoint = extra.get("endpoint_url") or extra.get("service_config", {}).get("s3", {}).get("endpoint_url")
    if endpoint:
        options["endpoint_url"] = endpoint
    if extra.get("region_name"):
        options["client_kwargs"] = {"region_name": extra["region_name"]}
    return options


def is_local(path: StoragePath) -> bool:
    """True for a folder on this machine's disk (where renames are atomic and links exist)."""
    return isinstance(path, Path)


def ensure_parent(path: StoragePath) -> None:
    """Create the folder a file is about to be written to, on stores that have folders."""
    if is_local(path) or path.protocol not in FOLDERLESS_SCHEMES:
        path.parent.mkdir(parents=True, exist_ok=True)


def require_bucket(folder: StoragePath) -> None:
    """Refuse, before any work, a results root whose bucket does not exist (a typo would otherwise fail late)."""
    if is_local(folder) or folder.protocol not in BUCKET_SCHEMES:
        return
    bucket = folder.path.split("/", 1)[0]
    if not folder.fs.exists(bucket):
        raise SpecError("results.root", [
            f"the bucket {folder.protocol}://{bucket} of {folder} does not exist (or these credentials cannot see "
            "it); create the bucket, or fix results.root (or $DAG_FACTORY_RESULTS)"])


def remove_tree(path: StoragePath) -> None:
    """Delete a folder and everything under it; nothing happens when it does not exist."""
    if is_local(path):
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.fs.rm(path.path, recursive=True)


def copy_file(source: StoragePath, target: StoragePath) -> None:
    """Copy one file between any two locations (disk to store, store to disk, ...), streaming."""
    ensure_parent(target)
    with source.open("rb") as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
