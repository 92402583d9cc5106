"""What `dag-factory run` prints after the DAG run: its state, folder, leaderboard, what it decided, the champion."""

from __future__ import annotations

from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import Leaderboard
from dag_factory.render.tables import leaderboard_table
from dag_factory.storage.location import StoragePath


def run_summary(files: RunFiles, run_id: str, state: str, champion_model: StoragePath | None, verdict: str) -> str:
    """The lines a terminal user reads after a run; ``verdict`` says what the run decided (and its exit code)."""
    lines = ["", f"DAG run {run_id}: {state}", f"Run folder: {files.folder}"]
    if files.leaderboard.exists():
        lines += ["", leaderboard_table(Leaderboard.read(files.leaderboard))]
    lines += ["", verdict, "", f"Champion model: {champion_model}" if champion_model else
              "No champion has been promoted yet."]
    return "\n".join(lines)
