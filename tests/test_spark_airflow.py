"""One real Airflow run of an incremental experiment on the Spark engine (local mode, two models)."""

from __future__ import annotations

import pytest

from conftest import run_dag, task_instances, write_experiment
from dag_factory.artifacts.records import Leaderboard
from dag_factory.steps.partitions import seen
from data_helpers import SPARK, small_frame, small_spec

pytestmark = [pytest.mark.airflow, pytest.mark.spark]

DATA = SPARK + """\
  incremental: true
  spark: {master: "local[2]", sample_rows: 400}
"""


def test_daily_partitions_run_through_airflow(project, airflow_db, tmp_path) -> None:
    """load_data, profile and preprocess run Spark inside Airflow tasks; the models train on a sample it drew."""
    source = tmp_path / "days"
    source.mkdir()
    frame = small_frame()
    frame.iloc[:300].to_parquet(source / "2026-01-01.parquet", index=False)
    frame.iloc[300:].to_parquet(source / "2026-01-02.parquet", index=False)
    write_experiment(project, "daily_spark", 'schedule: "@daily"\n' + small_spec("daily_spark", source, DATA))

    outcome = run_dag(project, "daily_spark")

    assert outcome.state == "success"
    states = {t["task_id"]: t["state"] for t in task_instances(airflow_db, "daily_spark", outcome.run_id)}
    assert states["load_data"] == states["preprocess"] == states["promote"] == "success"
    board = Leaderboard.read(outcome.files.leaderboard)
    assert board.sample is not None and (board.sample.rows, board.sample.of_rows) == (400, len(frame))
    assert {r.name for r in board.ranked} == {"logistic_regression", "random_forest"}
    assert sorted(seen(project.results, "daily_spark").partitions) == ["2026-01-01.parquet", "2026-01-02.parquet"]
