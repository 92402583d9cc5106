"""The Spark engine through a real Spark Connect server on loopback: the same tables, sample and scores as local mode.

The server is pyspark's own (its bundled spark-connect jar), started once for the module with spark-submit; the
engine's steps talk to it over gRPC from this process, which runs no JVM of its own while connected.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from conftest import run_dag, task_instances, write_experiment
from dag_factory.artifacts.layout import RunFiles, table_dir
from dag_factory.artifacts.records import DataProfile, Leaderboard, RunMeta
from dag_factory.errors import DataError, SpecError
from dag_factory.steps.partitions import seen
from data_helpers import SPARK, load_spec, partitioned, prepare, run_steps, small_frame, small_spec
from servers import spark_connect_server

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory: pytest.TempPathFactory):
    """The module's Spark Connect server (skipped only where no Java runs it); this process leaves Connect mode
    after it."""
    from dag_factory.steps.spark.session import disconnect, ensure_java

    try:
        ensure_java()
    except DataError as missing:
        pytest.skip(f"no Java to run a Spark Connect server: {missing}")
    with spark_connect_server(tmp_path_factory.mktemp("spark-connect")) as url:
        yield url
        disconnect()


def spark_spec(tmp: Path, source: Path, spark: str, name: str = "wdbc", more: str = ""):
    return load_spec(tmp, small_spec(name, source, f"{SPARK}{more}  spark: {{sample_rows: 200, {spark}}}\n"))


def cleaned_rows(table: Path) -> pd.DataFrame:
    """The cleaned table as pandas, one order, with its partition column (pyarrow skips folders named ``_*``)."""
    parts = [pd.read_parquet(p).assign(__partition=p.name.split("=", 1)[1])
             for p in sorted(table.glob("__partition=*"))]
    rows = pd.concat(parts, ignore_index=True).drop(columns=["__row"])  # ids Spark numbers by its tasks
    return rows.sort_values(list(rows.columns)).reset_index(drop=True)


def test_connect_gives_local_modes_tables_sample_and_scores(tmp_path: Path, connect_url: str) -> None:
    """The same generated partitions through local mode, then through the server: equal in everything the models see."""
    frame = small_frame()
    frame.loc[[5, 40], "texture_mean"] = None  # missing cells, and rows the cleaning drops, on both paths
    frame.loc[7, "diagnosis"] = None
    frame = pd.concat([frame, frame.iloc[[10, 11]]], ignore_index=True)
    source = partitioned(tmp_path / "days", frame, ["2026-01-01", "2026-01-02", "2026-01-03"])
    dedupe = "  drop_duplicates: true\n"
    local = run_steps(spark_spec(tmp_path, source, 'master: "local[2]"', more=dedupe), tmp_path / "local", "r1")
    remote = run_steps(spark_spec(tmp_path, source, f'remote: "{connect_url}"', more=dedupe), tmp_path / "remote",
                       "r1")

    from pyspark.sql import is_remote
    assert is_remote()  # the second run went through the server, not a local session
    on_server = cleaned_rows(RunFiles(remote).cleaned)
    pd.testing.assert_frame_equal(cleaned_rows(RunFiles(local).cleaned), on_server)
    assert len(on_server) == len(frame) - 1 - 2  # without the row missing its target and the two duplicates
    for split in ("train", "test"):  # the stratified sample (200 of 568 rows) and its split, row for row
        pd.testing.assert_frame_equal(pd.read_parquet(getattr(RunFiles(local), split)),
                                      pd.read_parquet(getattr(RunFiles(remote), split)))
    metas = [RunMeta.read(RunFiles(f).meta) for f in (local, remote)]
    assert metas[0].rows == metas[1].rows == 200
    assert metas[0].fingerprint == metas[1].fingerprint
    profiles = [DataProfile.read(RunFiles(f).profile_json) for f in (local, remote)]
    assert profiles[0].model_dump() == profiles[1].model_dump()
    boards = [Leaderboard.read(RunFiles(f).leaderboard) for f in (local, remote)]
    assert boards[0].winner == boards[1].winner
    assert [r.name for r in boards[0].ranked] == [r.name for r in boards[1].ranked]
    for a, b in zip(boards[0].ranked, boards[1].ranked, strict=True):
        assert a.fold_scores == b.fold_scores and a.test == b.test


def test_incremental_runs_on_the_server_keep_earlier_partitions(tmp_path: Path, connect_url: str) -> None:
    """The server's session gets the engine's SQL settings: a run writes its partitions and keeps the others."""
    frame = small_frame()
    source = partitioned(tmp_path / "days", frame.iloc[:380], ["2026-01-01", "2026-01-02"])
    spec = spark_spec(tmp_path, source, f'remote: "{connect_url}"', "daily", "  incremental: true\n")
    results = tmp_path / "results"
    run_steps(spec, results, "day2", force=False)
    frame.iloc[380:].to_parquet(source / "2026-01-03.parquet", index=False)
    prepare(spec, results, "day3", force=False)

    table = cleaned_rows(table_dir(results, "daily") / "cleaned")
    assert table["__partition"].value_counts().sort_index().to_dict() == {
        "2026-01-01.parquet": 190, "2026-01-02.parquet": 190, "2026-01-03.parquet": len(frame) - 380}
    assert sorted(seen(results, "daily").partitions) == ["2026-01-01.parquet", "2026-01-02.parquet"]
    assert RunMeta.read(RunFiles(results / "runs" / "daily" / "day3").meta).sample.of_rows == len(frame)


def test_an_airflow_connection_names_the_server(tmp_path: Path, connect_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """data.spark.conn_id: host and port from the Airflow connection, nothing of the server in the spec."""
    host_port = connect_url.removeprefix("sc://")
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CONNECT_TEST", f"spark-connect://{host_port}")
    frame = small_frame()
    source = partitioned(tmp_path / "days", frame, ["2026-01-01"])
    _, meta = prepare(spark_spec(tmp_path, source, "conn_id: spark_connect_test"), tmp_path / "results", "r1")
    assert (meta["sample"]["rows"], meta["sample"]["of_rows"]) == (200, len(frame))
    from pyspark.sql import SparkSession
    assert SparkSession.getActiveSession().conf.get("spark.sql.sources.partitionOverwriteMode") == "dynamic"

    missing = spark_spec(tmp_path, source, "conn_id: no_such_connection")
    with pytest.raises(DataError, match=r"data.spark.conn_id: Airflow connection 'no_such_connection' is not defined"):
        prepare(missing, tmp_path / "results", "r2")


@pytest.mark.airflow
def test_a_dag_run_through_airflow_reaches_the_server_by_its_connection(
        project, airflow_db, tmp_path: Path, connect_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real Airflow run whose data tasks look the server up in an Airflow connection (given as AIRFLOW_CONN_...)."""
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CONNECT_DAG", f"spark-connect://{connect_url.removeprefix('sc://')}")
    source = partitioned(tmp_path / "days", small_frame(), ["2026-01-01", "2026-01-02"])
    write_experiment(project, "connect_spark", small_spec(
        "connect_spark", source, SPARK + "  spark: {conn_id: spark_connect_dag, sample_rows: 400}\n"))

    outcome = run_dag(project, "connect_spark")

    assert outcome.state == "success"
    states = {t["task_id"]: t["state"] for t in task_instances(airflow_db, "connect_spark", outcome.run_id)}
    assert states["load_data"] == states["profile"] == states["preprocess"] == states["promote"] == "success"
    board = Leaderboard.read(outcome.files.leaderboard)
    assert board.sample is not None and (board.sample.rows, board.sample.of_rows) == (400, len(small_frame()))
    assert {r.name for r in board.ranked} == {"logistic_regression", "random_forest"}


def test_a_connections_url_refuses_what_would_change_its_meaning() -> None:
    """A token becomes the URL's token parameter; a host or token that would add parameters or a path is refused."""
    from dag_factory.steps.spark.session import url_of

    assert url_of("c", "spark.example.org", None, None, False) == "sc://spark.example.org:15002/"
    assert url_of("c", "10.0.0.5", 443, "s3cr3t-T0ken", True) == "sc://10.0.0.5:443/;token=s3cr3t-T0ken;use_ssl=true"
    with pytest.raises(DataError, match="connection 'c' needs the Spark Connect server's host name alone"):
        url_of("c", "sc://host:15002", None, None, False)
    with pytest.raises(DataError, match="the token of Airflow connection 'c' has characters"):
        url_of("c", "host", 15002, "abc;use_ssl=false", False)


def test_a_connections_use_ssl_is_true_or_false_and_nothing_else() -> None:
    """A text "false" in the extra must not turn TLS on; a misspelt value is refused, naming the connection."""
    from dag_factory.steps.spark.session import _use_ssl

    assert [_use_ssl("c", v) for v in (True, False, "true", "False", " TRUE ")] == [True, False, True, False, True]
    with pytest.raises(DataError, match=r"connection 'c' has use_ssl='yes' in its extra; set it to true or false"):
        _use_ssl("c", "yes")


def test_remote_and_conn_id_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"data.spark.*remote and conn_id both name a Spark Connect server; keep one"):
        spark_spec(tmp_path, tmp_path, 'remote: "sc://127.0.0.1:15002", conn_id: spark_connect')
