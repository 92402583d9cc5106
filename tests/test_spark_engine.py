"""The Spark engine (data.engine: spark) in local mode, on generated partitions of the breast cancer data.

One SparkSession (one JVM) serves the whole module: the engine's steps find it already running.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data_helpers import champion_identity, load_spec, prepare, run_steps, wdbc_frame
from dag_factory.artifacts.layout import RunFiles, table_dir
from dag_factory.artifacts.records import Leaderboard, RunMeta
from dag_factory.errors import DataError, NothingToDo
from dag_factory.render.tables import leaderboard_table
from dag_factory.steps.partitions import seen

pytestmark = pytest.mark.spark

SPEC = """\
experiment: {name}
retries: 0
data:
  source: "{source}"
  target: diagnosis
  positive_class: M
  drop: [id]
{extra}
cv: {{folds: 3, repeats: 2, seed: 1}}
models:
  - model: logistic_regression
  - model: random_forest
    params: {{n_estimators: 20}}
"""
SPARK = "  engine: spark\n"


@pytest.fixture(scope="module", autouse=True)
def spark():
    """The module's one SparkSession, in local mode; stopped after the module's last test."""
    from dag_factory.spec.schema import SparkSpec
    from dag_factory.steps.spark.session import spark_session

    session = spark_session(SparkSpec(master="local[2]"), "dag_factory tests")
    yield session
    session.stop()


def partitioned(folder: Path, frame: pd.DataFrame, days: list[str]) -> Path:
    """Write ``frame`` as one Parquet partition per day (consecutive row ranges) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(frame) // len(days))
    for i, day in enumerate(days):
        frame.iloc[i * size:(i + 1) * size].to_parquet(folder / f"{day}.parquet", index=False)
    return folder


def spec_for(tmp: Path, name: str, source: Path, extra: str = SPARK):
    return load_spec(tmp, SPEC.format(name=name, source=source, extra=extra))


def board_of(folder: Path) -> Leaderboard:
    return Leaderboard.read(RunFiles(folder).leaderboard)


def test_same_leaderboard_as_pandas_engine(tmp_path: Path) -> None:
    """Partitions read by Spark train exactly as their concatenation read by pandas: same splits, same scores."""
    frame = wdbc_frame()
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
    cleaned = RunFiles(tmp_path / "spark" / "runs" / "wdbc" / "r1").cleaned
    assert sorted(p.name for p in cleaned.glob("__partition=*")) == [
        "__partition=2026-01-01.parquet", "__partition=2026-01-02.parquet", "__partition=2026-01-03.parquet"]
