"""The Spark engine (data.engine: spark) in local mode, on generated partitions of the breast cancer data.

One SparkSession (one JVM) serves the whole module: the engine's steps find it already running.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data_helpers import SPARK, champion_identity, load_spec, partitioned, prepare, run_steps, small_frame, small_spec
from dag_factory.artifacts.layout import RunFiles, table_dir
from dag_factory.artifacts.records import DataProfile, Leaderboard, RunMeta
from dag_factory.errors import DataError, NothingToDo
from dag_factory.render.tables import leaderboard_table
from dag_factory.steps.partitions import seen

pytestmark = pytest.mark.spark



@pytest.fixture(scope="module", autouse=True)
def spark():
    """The module's one SparkSession, in local mode; stopped after the module's last test."""
    from dag_factory.spec.schema import SparkSpec
    from dag_factory.steps.spark.session import spark_session

    session = spark_session(SparkSpec(master="local[2]"), "dag_factory tests")
    yield session
    session.stop()


def spec_for(tmp: Path, name: str, source: Path, extra: str = SPARK):
    return load_spec(tmp, small_spec(name, source, extra))


def board_of(folder: Path) -> Leaderboard:
    return Leaderboard.read(RunFiles(folder).leaderboard)


def test_same_leaderboard_as_pandas_engine(tmp_path: Path) -> None:
    """Partitions read by Spark train exactly as their concatenation read by pandas: same splits, same scores."""
    frame = small_frame()
    source = partitioned(tmp_path / "days", frame, ["2026-01-01", "2026-01-02", "2026-01-03"])
    whole = tmp_path / "whole.parquet"
    frame.to_parquet(whole, index=False)
    on_spark = board_of(run_steps(spec_for(tmp_path, "wdbc", source), tmp_path / "spark", "r1"))
    on_pandas = board_of(run_steps(spec_for(tmp_path, "wdbc", whole, ""), tmp_path / "pandas", "r1"))

    assert [r.name for r in on_spark.ranked] == [r.name for r in on_pandas.ranked]
    assert on_spark.winner == on_pandas.winner
    for a, b in zip(on_spark.ranked, on_pandas.ranked, strict=True):
        assert a.fold_scores["roc_auc"] == pytest.approx(b.fold_scores["roc_auc"], abs=1e-9)
        assert a.test == pytest.approx(b.test, abs=1e-9)
    assert on_spark.sample is not None and on_spark.sample.rows == on_spark.sample.of_rows == len(frame)
    profiles = [DataProfile.read(RunFiles(tmp_path / e / "runs" / "wdbc" / "r1").profile_json) for e in ("spark", "pandas")]
    assert profiles[0].class_balance == profiles[1].class_balance
    assert [c.column for c in profiles[0].top_correlations] == [c.column for c in profiles[1].top_correlations]
    assert [c.correlation for c in profiles[0].top_correlations] == pytest.approx(
        [c.correlation for c in profiles[1].top_correlations], abs=1e-4)
    cleaned = RunFiles(tmp_path / "spark" / "runs" / "wdbc" / "r1").cleaned
    assert sorted(p.name for p in cleaned.glob("__partition=*")) == [
        "__partition=2026-01-01.parquet", "__partition=2026-01-02.parquet", "__partition=2026-01-03.parquet"]


def test_new_partition_between_runs_and_a_corrupt_one(tmp_path: Path) -> None:
    """Each run cleans only the partitions no run trained on; none new: skipped; a corrupt one: named, nothing lost."""
    frame = small_frame()
    source = partitioned(tmp_path / "days", frame.iloc[:380], ["2026-01-01", "2026-01-02"])
    spec = spec_for(tmp_path, "daily", source, SPARK + "  incremental: true\n")
    results = tmp_path / "results"
    run_steps(spec, results, "day2", force=False)
    assert sorted(seen(results, "daily").partitions) == ["2026-01-01.parquet", "2026-01-02.parquet"]

    with pytest.raises(NothingToDo, match="no new partition in .* newest 2026-01-02.parquet"):
        run_steps(spec, results, "day2_again", force=False)
    assert "training skipped" in (RunFiles(results / "runs" / "daily" / "day2_again").skipped.read_text())

    frame.iloc[380:].to_parquet(source / "2026-01-03.parquet", index=False)
    folder = run_steps(spec, results, "day3", force=False)
    files = RunFiles(folder)
    assert [p.name for p in (files.raw).glob("*.parquet")]  # the raw copy holds this run's partition only:
    assert pd.read_parquet(files.raw).shape[0] == len(frame) - 380
    meta = RunMeta.read(files.meta)
    assert meta.rows == len(frame)  # ... and the models trained on all three partitions
    assert sorted(seen(results, "daily").partitions) == [f"2026-01-0{d}.parquet" for d in (1, 2, 3)]

    table = table_dir(results, "daily") / "cleaned"
    before = sorted((p.relative_to(table), p.stat().st_mtime_ns) for p in table.rglob("*.parquet"))
    champion = champion_identity(results, "daily")
    (source / "2026-01-04.parquet").write_bytes(b"PAR1 this is not a Parquet file")
    with pytest.raises(DataError, match=r"partition 2026-01-04.parquet .* is not a valid PARQUET file .* fix or remove"):
        run_steps(spec, results, "day4", force=False)
    assert sorted((p.relative_to(table), p.stat().st_mtime_ns) for p in table.rglob("*.parquet")) == before
    assert sorted(seen(results, "daily").partitions) == [f"2026-01-0{d}.parquet" for d in (1, 2, 3)]
    assert champion_identity(results, "daily") == champion


def test_models_train_on_a_stratified_reproducible_sample(tmp_path: Path) -> None:
    """sample_rows below the table's size: a stratified sample of that size, the same each run, said everywhere."""
    frame = small_frame()
    source = partitioned(tmp_path / "days", frame, ["2026-01-01", "2026-01-02"])
    spec = spec_for(tmp_path, "sampled", source, SPARK + "  spark: {sample_rows: 200}\n")
    first, meta = prepare(spec, tmp_path / "a", "r1")
    second, _ = prepare(spec, tmp_path / "b", "r1")
    assert meta["sample"]["rows"] == 200 and meta["sample"]["of_rows"] == len(frame)
    assert meta["rows"] == 200
    counts = {**meta["train_class_counts"]}
    test = pd.read_parquet(RunFiles(first).test)
    malignant = counts["M"] + int((test["diagnosis"] == 1).sum())
    assert malignant == round(200 * (frame["diagnosis"] == "M").sum() / len(frame))  # the classes' shares kept
    pd.testing.assert_frame_equal(pd.read_parquet(RunFiles(first).train), pd.read_parquet(RunFiles(second).train))

    board = board_of(run_steps(spec, tmp_path / "a", "r2"))
    assert "stratified sample of 200 of the 569 rows" in leaderboard_table(board)
    card = (tmp_path / "a" / "best" / "sampled" / "model_card.md").read_text()
    assert "stratified sample of 200 of the 569 rows" in card


@pytest.mark.parametrize("engine", ["", SPARK], ids=["pandas", "spark"])
def test_bad_data_gets_the_pandas_engines_sentence(tmp_path: Path, engine: str) -> None:
    """A non-numeric value in a feature: both engines stop with the same sentence, naming the column and values."""
    frame = small_frame().astype({"radius_mean": object})
    frame.loc[[3, 7], "radius_mean"] = "about 12"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    spec = spec_for(tmp_path, "bad", tmp_path / "bad.csv", engine)
    with pytest.raises(DataError) as raised:
        prepare(spec, tmp_path / "results", "r1")
    assert str(raised.value) == ('data: column "radius_mean" should be numeric but has 2 non-numeric value(s), '
                                 "e.g. 'about 12'; fix the data, list such markers of a missing value under "
                                 "data.missing_values, or list the column under data.categorical or data.drop")
