"""Load step: bring an experiment's data into one DataFrame, from a loader, a file or a URL."""

from __future__ import annotations

import http.client
import logging
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import pandas as pd

from dag_factory.errors import DataError, DownloadError, did_you_mean, excerpt
from dag_factory.spec.schema import DataSpec, DownloadSpec
from dag_factory.spec.sources import SourceRefused, local_source
from dag_factory.storage.files import write_with
from dag_factory.storage.location import LOCAL_SCHEMES, scheme_of

log = logging.getLogger(__name__)

SKLEARN_LOADERS = ("breast_cancer", "wine", "iris", "diabetes")
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Attempt:
    """Which attempt of the load task this is (Airflow counts them; a plain call is attempt 1 of 1)."""

    number: int = 1
    of: int = 1


def load_data(data: DataSpec, cache_dir: Path, base: Path | None = None,
              attempt: Attempt = Attempt(), key: str = "source") -> tuple[pd.DataFrame, str]:
    """Return the raw table of ``data.<key>`` (``source``, or ``test_source``) and a line saying where it came from.

    Remote sources are downloaded once into ``cache_dir`` so every later step, and a
    retry of this one, reads the same bytes. Relative file paths start at ``base`` (the
    project folder; default: the current folder), not at whatever folder the Airflow worker happens
    to run in, and must stay inside the data roots (checked again here, right before the file is opened).
    A test file is cached in a folder of its own, so a train and a test URL may end in the same file name.
    """
    source = getattr(data, key)
    if source.startswith("sklearn:"):
        return _sklearn_frame(source.removeprefix("sklearn:"), data.target), f"scikit-learn loader {source}"
    scheme = scheme_of(source)
    cache = cache_dir if key == "source" else cache_dir / key
    if scheme in LOCAL_SCHEMES or "::" in source:
        local = _local_path(source, base or Path.cwd(), key)
    elif scheme in ("http", "https"):
        local = download(source, cache, data.download, attempt, key)
    else:
        local = _fetch_fsspec(source, cache, key)
    return read_table(local, data, key), f"{source} ({local.stat().st_size:,} bytes)"


def _local_path(source: str, base: Path, key: str) -> Path:
    """A local source as an existing file inside the data roots (resolved), relative paths taken from ``base``."""
    try:
        path = local_source(source, base)
    except SourceRefused as refused:
        raise DataError(f"data.{key}: {refused}") from None
    if path is None or not path.is_file():
        raise DataError(f"data.{key}: file {path or source} does not exist; check the path "
                        "(a relative path starts at the project folder)")
    return path


def _sklearn_frame(name: str, target: str) -> pd.DataFrame:
    """A bundled scikit-learn data set with its target as class names (e.g. 'malignant'), or as numbers (diabetes)."""
    import sklearn.datasets

    if name not in SKLEARN_LOADERS:
        raise DataError(
            f'data.source: unknown scikit-learn loader "{name}"{did_you_mean(name, SKLEARN_LOADERS)}; '
            f"available: {', '.join('sklearn:' + n for n in SKLEARN_LOADERS)}"
        )
    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    frame = bunch.data.copy()
    if "target_names" not in bunch:  # a regression set: the target is a quantity
        frame[target] = bunch.target
        return frame
    # The loaders encode classes as integers (breast_cancer: 0 = malignant); name them instead.
    frame[target] = pd.Categorical.from_codes(bunch.target, categories=list(bunch.target_names)).astype(str)
    return frame


#: HTTP statuses worth retrying: the server may answer differently a moment later.
TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Errors of one download attempt that a later attempt may not meet.
TRANSIENT_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException)


def download(url: str, cache_dir: Path, options: DownloadSpec, attempt: Attempt = Attempt(),
             key: str = "source") -> Path:
    """Download ``url`` into ``cache_dir`` once, with a time limit on the connection and each read.

    A complete earlier download in the same run folder (a retried task) is reused, so every
    step of a run reads the same bytes. A failure that a later attempt may not meet raises
    DownloadError, which Airflow retries (``data.download.retries``, with exponential backoff);
    a client error such as 404 raises DataError, which is not retried.
    """
    target = _cache_path(url, cache_dir)
    if target.exists():
        log.info("Using %s, downloaded earlier in this run from %s", target, url)
        return target
    try:
        _fetch_http(url, target, options.timeout_seconds)
    except TRANSIENT_ERRORS as err:
        permanent = isinstance(err, urllib.error.HTTPError) and err.code not in TRANSIENT_HTTP
        last = permanent or attempt.number >= attempt.of
        when = (f"failed after {attempt.number} attempt(s)" if last
                else f"failed on attempt {attempt.number} of {attempt.of}")
        raise (DataError if permanent else DownloadError)(
            f"data.{key}: downloading {url} {when} ({_describe(err)}); "
            "check the URL, or raise data.download.retries or timeout_seconds if the server is slow"
        ) from err
    log.info("Downloaded %s (%s bytes) to %s on attempt %d", url, f"{target.stat().st_size:,}", target, attempt.number)
    return target


def _fetch_http(url: str, target: Path, timeout: float) -> None:
    """One download attempt; a body shorter than its Content-Length counts as a failed attempt."""
    request = urllib.request.Request(url, headers={"User-Agent": "dag-factory"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        expected = response.headers.get("Content-Length")
        size = _save_stream(response, target)
    if expected is not None and expected.isdigit() and int(expected) != size:
        target.unlink()
        raise http.client.IncompleteRead(b"", int(expected) - size)


def _describe(err: Exception) -> str:
    """A short reason for a failed attempt: 'HTTP 503 Service Unavailable', 'timed out', ..."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, http.client.IncompleteRead):
        return f"connection closed {err.expected} byte(s) before the end of the file"
    return str(getattr(err, "reason", None) or err or type(err).__name__)


def _fetch_fsspec(url: str, cache_dir: Path, key: str) -> Path:
    """Copy an fsspec URL (s3://, gs://, memory://, ...) into the cache, once per run folder."""
    import fsspec

    target = _cache_path(url, cache_dir)
    if target.exists():
        log.info("Using %s, copied earlier in this run from %s", target, url)
        return target
    try:
        with fsspec.open(url, "rb") as source:
            _save_stream(source, target)
    except ImportError as err:
        raise DataError(f"data.{key}: reading {url} needs an fsspec driver that is not installed ({err})") from err
    except (OSError, ValueError) as err:
        raise DataError(f"data.{key}: cannot read {url} ({type(err).__name__}: {err}); check the URL and your credentials") from err
    log.info("Copied %s (%s bytes) to %s", url, f"{target.stat().st_size:,}", target)
    return target


def _cache_path(url: str, cache_dir: Path) -> Path:
    """Where a remote source is kept in the run folder: its file name from the URL."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    return cache_dir / (Path(urlparse(url).path).name or "download")


def _save_stream(stream: BinaryIO, target: Path) -> int:
    """Copy a stream to ``target``, which appears only once complete; returns its size."""
    write_with(target, lambda out: shutil.copyfileobj(stream, out, 1 << 20))
    return target.stat().st_size


def read_table(path: Path, data: DataSpec, key: str = "source") -> pd.DataFrame:
    """Parse the CSV or Parquet file of ``data.<key>``, with a clear error when it is empty or not that format."""
    kind = data.format
    if kind == "auto":
        kind = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    _check_content(path, kind, key)
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, header=0 if data.header else None, na_values=data.missing_values or None)
    except Exception as err:  # pandas and pyarrow raise many types for a malformed file
        first_line = excerpt(str(err).strip().splitlines()[0], 120) if str(err).strip() else type(err).__name__
        raise DataError(f"data.{key}: {path} is not a valid {kind.upper()} file ({first_line}); "
                        "check the file, or set data.format") from err
    if frame.empty:
        raise DataError(f"data.{key}: {path} has no data rows, only a header; check the file")
    if data.columns is not None:
        if len(data.columns) != frame.shape[1]:
            raise DataError(
                f"data.columns names {len(data.columns)} columns but {path.name} has {frame.shape[1]}; "
                "list one name per column, in file order"
            )
        frame.columns = data.columns
    elif not data.header:
        frame.columns = [f"col_{i}" for i in range(frame.shape[1])]
    return frame


def _check_content(path: Path, kind: str, key: str) -> None:
    """Catch an empty file, or one that is plainly not the format it claims, before pandas guesses."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head.strip():
        raise DataError(f"data.{key}: {path} is empty; check that the file was written completely")
    is_parquet = head.startswith(PARQUET_MAGIC)
    if kind == "parquet" and not is_parquet:
        raise DataError(f"data.{key}: {path} is not a Parquet file (no Parquet header); "
                        "set data.format: csv if it is a CSV file")
    if kind == "csv" and is_parquet:
        raise DataError(f"data.{key}: {path} is a Parquet file, not CSV; set data.format: parquet")
    if kind == "csv" and head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        raise DataError(f"data.{key}: {path} is an HTML page, not CSV; the URL probably points to a web page "
                        "instead of the file itself")
    if kind == "csv" and b"\x00" in head:
        raise DataError(f"data.{key}: {path} is binary, not a CSV text file; check the file or set data.format")
