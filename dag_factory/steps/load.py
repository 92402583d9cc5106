"""Load step: bring an experiment's data into one DataFrame, from a loader, a file or a URL."""

from __future__ import annotations

import logging
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from dag_factory.errors import DataError, did_you_mean
from dag_factory.spec import DataSpec, DownloadSpec

log = logging.getLogger(__name__)

SKLEARN_LOADERS = ("breast_cancer", "wine", "iris")
_LOCAL_SCHEMES = ("", "file")


def load_data(data: DataSpec, cache_dir: Path) -> tuple[pd.DataFrame, str]:
    """Return the raw table and a one-line description of where it came from.

    Remote sources are downloaded once into ``cache_dir`` so every later step, and a
    retry of this one, reads the same bytes.
    """
    source = data.source
    if source.startswith("sklearn:"):
        return _sklearn_frame(source.removeprefix("sklearn:"), data.target), f"scikit-learn loader {source}"
    scheme = urlparse(source).scheme
    if scheme in _LOCAL_SCHEMES or len(scheme) == 1:  # a Windows drive letter is not a scheme
        path = Path(source.removeprefix("file://")).expanduser()
        if not path.exists():
            raise DataError(f"data.source: file {path} does not exist; check the path (relative paths start at the project folder)")
        local = path
    elif scheme in ("http", "https"):
        local = download(source, cache_dir, data.download)
    else:
        local = _fetch_fsspec(source, cache_dir)
    return read_table(local, data), f"{source} ({local.stat().st_size:,} bytes)"


def _sklearn_frame(name: str, target: str) -> pd.DataFrame:
    """A bundled scikit-learn data set with its target as class names (e.g. 'malignant')."""
    import sklearn.datasets

    if name not in SKLEARN_LOADERS:
        raise DataError(
            f'data.source: unknown scikit-learn loader "{name}"{did_you_mean(name, SKLEARN_LOADERS)}; '
            f"available: {', '.join('sklearn:' + n for n in SKLEARN_LOADERS)}"
        )
    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    frame = bunch.data.copy()
    # The loaders encode classes as integers (breast_cancer: 0 = malignant); name them instead.
    frame[target] = pd.Categorical.from_codes(bunch.target, categories=list(bunch.target_names)).astype(str)
    return frame


def download(url: str, cache_dir: Path, options: DownloadSpec) -> Path:
    """Download ``url`` into ``cache_dir`` with a timeout and retries with exponential backoff."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = Path(urlparse(url).path).name or "download"
    target = cache_dir / name
    attempts = options.retries + 1
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(url, timeout=options.timeout_seconds) as response:
                partial = target.with_suffix(target.suffix + ".part")
                with partial.open("wb") as out:
                    shutil.copyfileobj(response, out)
            partial.replace(target)
            log.info("Downloaded %s (%s bytes) to %s on attempt %d", url, f"{target.stat().st_size:,}", target, attempt)
            return target
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            if attempt == attempts:
                raise DataError(f"data.source: downloading {url} failed after {attempts} attempt(s): {reason}") from err
            delay = options.backoff_seconds * 2 ** (attempt - 1)
            log.warning("Download of %s failed (%s), attempt %d of %d; retrying in %.1fs", url, reason, attempt, attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _fetch_fsspec(url: str, cache_dir: Path) -> Path:
    """Copy an fsspec URL (s3://, gs://, ...) into the cache."""
    import fsspec

    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / (Path(urlparse(url).path).name or "download")
    try:
        with fsspec.open(url, "rb") as src, target.open("wb") as out:
            shutil.copyfileobj(src, out)
    except ImportError as err:
        raise DataError(f"data.source: reading {url} needs an fsspec driver that is not installed: {err}") from err
    except (OSError, ValueError) as err:
        raise DataError(f"data.source: cannot read {url}: {err}") from err
    return target


def read_table(path: Path, data: DataSpec) -> pd.DataFrame:
    """Parse a CSV or Parquet file, with a clear error when it is empty or not that format."""
    if path.stat().st_size == 0:
        raise DataError(f"data.source: {path} is empty (0 bytes)")
    kind = data.format
    if kind == "auto":
        kind = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, header=0 if data.header else None)
    except Exception as err:  # pandas and pyarrow raise many types for a malformed file
        raise DataError(f"data.source: {path} is not a valid {kind.upper()} file: {err}") from err
    if frame.empty:
        raise DataError(f"data.source: {path} has no data rows")
    if not data.header:
        names = data.columns or [f"col_{i}" for i in range(frame.shape[1])]
        if len(names) != frame.shape[1]:
            raise DataError(
                f"data.columns names {len(names)} columns but {path.name} has {frame.shape[1]}; "
                "list one name per column"
            )
        frame.columns = names
    return frame
