"""What `dag-factory run` prints after the DAG run: its state, folder, leaderboard or why it stopped, the champion."""

from __future__ import annotations

from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import Leaderboard, SkipNote, StopReason
from dag_factory.render.tables import leaderboard_table
from dag_factory.storage.location import StoragePath


def run_summary(files: RunFiles, run_id: str, state: str, champion_model: StoragePath | None) -> str:
    """The lines a terminal user reads after a run."""
    lines = ["", f"DAG run {run_id}: {state}", f"Run folder: {files.folder}"]
    if files.leaderboard.exists():
        lines += ["", leaderboard_table(Leaderboard.read(files.leaderboard))]
    elif files.skipped.exists():
        lines.append(SkipNote.read(files.skipped).reason)
    elif files.stop_reason.exists():
        lines.append(StopReason.read(files.stop_reason).error)
    lines += ["", f"Champion model: {champion_model}" if champion_model else "No champion has been promoted yet."]
    return "\n".join(lines)
