"""The load step on every kind of source, without Airflow: loaders, files, URLs, fsspec."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest

from dag_factory.errors import DataError, DownloadError, is_permanent
from dag_factory.spec.schema import DataSpec
from dag_factory.steps.load import Attempt, load_data
from data_helpers import WDBC_COLUMNS, serve, wdbc_frame, write_wdbc


@pytest.fixture(autouse=True)
def _no_proxy_for_loopback(monkeypatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def wdbc_data(source: str, **options) -> DataSpec:
    """The data section of a wdbc.data experiment."""
    return DataSpec(source=source, header=False, columns=WDBC_COLUMNS, target="diagnosis", positive_class="M",
                    drop=["id"], **options)


@pytest.mark.parametrize(("name", "rows", "classes"), [
    ("breast_cancer", 569, {"malignant": 212, "benign": 357}),
    ("wine", 178, {"class_0": 59, "class_1": 71, "class_2": 48}),
    ("iris", 150, {"setosa": 50, "versicolor": 50, "virginica": 50}),
])
def test_sklearn_loaders_name_their_classes(tmp_path, name, rows, classes):
    frame, origin = load_data(DataSpec(source=f"sklearn:{name}", target="label"), tmp_path)
    assert len(frame) == rows and frame.columns[-1] == "label"
    assert frame["label"].value_counts().to_dict() == classes
    assert origin == f"scikit-learn loader sklearn:{name}"


def test_unknown_sklearn_loader_suggests_the_close_one(tmp_path):
    with pytest.raises(DataError, match=r'unknown scikit-learn loader "breast_cancr" \(did you mean "breast_cancer"\?\); '
                                        r"available: sklearn:breast_cancer, sklearn:wine, sklearn:iris"):
        load_data(DataSpec(source="sklearn:breast_cancr"), tmp_path)


def test_headerless_csv_gets_the_spec_column_names_in_file_order(tmp_path):
    frame, _ = load_data(wdbc_data(str(write_wdbc(tmp_path / "wdbc.data"))), tmp_path / "cache")
    expected = wdbc_frame()
    assert list(frame.columns) == WDBC_COLUMNS
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert not (tmp_path / "cache").exists()  # a local file is read in place, not copied


def test_headerless_csv_without_names_gets_numbered_columns(tmp_path):
    frame, _ = load_data(DataSpec(source=str(write_wdbc(tmp_path / "wdbc.data")), header=False), tmp_path)
    assert list(frame.columns[:3]) == ["col_0", "col_1", "col_2"] and frame.shape == (569, 32)


def test_csv_with_header_and_parquet_give_the_same_table(tmp_path):
    table = wdbc_frame()
    table.to_csv(tmp_path / "wdbc.csv", index=False)
    table.to_parquet(tmp_path / "wdbc.parquet")
    spec = {"target": "diagnosis", "positive_class": "M"}
    from_csv, _ = load_data(DataSpec(source=str(tmp_path / "wdbc.csv"), **spec), tmp_path)
    from_parquet, _ = load_data(DataSpec(source=f"file://{tmp_path / 'wdbc.parquet'}", **spec), tmp_path)
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_dtype=False)


def test_parquet_without_a_parquet_suffix_needs_the_format_key(tmp_path):
    wdbc_frame().to_parquet(tmp_path / "wdbc.bin")
    with pytest.raises(DataError, match=r"wdbc.bin is a Parquet file, not CSV; set data.format: parquet"):
        load_data(DataSpec(source=str(tmp_path / "wdbc.bin"), target="diagnosis"), tmp_path)
    frame, _ = load_data(DataSpec(source=str(tmp_path / "wdbc.bin"), target="diagnosis", format="parquet"), tmp_path)
    assert frame.shape == (569, 32)


def test_missing_value_markers_from_the_spec_become_missing(tmp_path):
    source = tmp_path / "data.csv"
    source.write_text("x,y\n1.5,a\n?,b\n2.5,a\n")
    frame, _ = load_data(DataSpec(source=str(source), target="y", missing_values=["?"]), tmp_path)
    assert frame["x"].isna().tolist() == [False, True, False]
    assert frame["x"].dtype == float


def test_relative_path_starts_at_the_project_folder(tmp_path, monkeypatch):
    write_wdbc(tmp_path / "project" / "data" / "wdbc.data")
    monkeypatch.chdir(tmp_path)  # not the project folder: a worker's working folder is anywhere
    frame, _ = load_data(wdbc_data("data/wdbc.data"), tmp_path / "cache", base=tmp_path / "project")
    assert len(frame) == 569


def test_header_only_csv_has_no_data_rows(tmp_path):
    source = tmp_path / "data.csv"
    source.write_text("x,y\n")
    with pytest.raises(DataError, match=r"data.csv has no data rows, only a header"):
        load_data(DataSpec(source=str(source), target="y"), tmp_path)


def test_url_is_downloaded_once_into_the_cache_and_reused(tmp_path):
    write_wdbc(tmp_path / "served" / "wdbc.data")
    cache = tmp_path / "run" / "data" / "source"
    with serve(tmp_path / "served") as server:
        first, origin = load_data(wdbc_data(server.url("wdbc.data")), cache)
        again, _ = load_data(wdbc_data(server.url("wdbc.data")), cache)  # a retried task in the same run
    assert server.log == [("/wdbc.data", 200)]
    assert (cache / "wdbc.data").read_bytes() == (tmp_path / "served" / "wdbc.data").read_bytes()
    assert [p.name for p in cache.iterdir()] == ["wdbc.data"]  # no partial file left behind
    pd.testing.assert_frame_equal(first, again)
    assert origin.endswith("(124,876 bytes)")


def test_url_that_times_out_fails_the_attempt_for_airflow_to_retry_and_the_retry_succeeds(tmp_path):
    write_wdbc(tmp_path / "served" / "wdbc.data")
    options = {"timeout_seconds": 0.3, "retries": 1, "backoff_seconds": 0.1}
    with serve(tmp_path / "served", failures=1, stall=1.5) as server:
        with pytest.raises(DownloadError, match=r"failed on attempt 1 of 2 \(timed out\)"):
            load_data(wdbc_data(server.url("wdbc.data"), download=options), tmp_path / "cache", attempt=Attempt(1, 2))
        frame, _ = load_data(wdbc_data(server.url("wdbc.data"), download=options), tmp_path / "cache",
                             attempt=Attempt(2, 2))  # Airflow's retry of the load_data task
    assert len(frame) == 569 and len(server.log) == 2
    assert not is_permanent(DownloadError("x")) and is_permanent(DataError("x"))  # the retry policy's view


def test_fsspec_url_is_copied_into_the_cache(tmp_path):
    import fsspec

    url = f"memory://bucket-{uuid.uuid4().hex}/wdbc.data"
    with fsspec.open(url, "wb") as handle:
        handle.write(write_wdbc(tmp_path / "wdbc.data").read_bytes())
    frame, origin = load_data(wdbc_data(url), tmp_path / "cache")
    assert len(frame) == 569 and (tmp_path / "cache" / "wdbc.data").exists()
    assert origin.startswith(url)


def test_fsspec_url_that_does_not_exist_fails_with_the_url(tmp_path):
    with pytest.raises(DataError, match=r"data.source: cannot read memory://nowhere/wdbc.data \(FileNotFoundError"):
        load_data(wdbc_data("memory://nowhere/wdbc.data"), tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


def test_fsspec_protocol_without_its_driver_names_what_is_missing(tmp_path):
    with pytest.raises(DataError, match=r"data.source: (reading|cannot read) nosuchproto://bucket/wdbc.data"):
        load_data(wdbc_data("nosuchproto://bucket/wdbc.data"), tmp_path / "cache")


def test_spec_rejects_column_names_for_a_file_with_a_header_and_dropping_the_target(tmp_path):
    with pytest.raises(ValueError, match="set 'header: false' too"):
        DataSpec(source=str(tmp_path / "x.csv"), columns=["a", "b"])
    with pytest.raises(ValueError, match="'drop' lists the target column"):
        DataSpec(source="x.csv", target="diagnosis", drop=["id", "diagnosis"])
