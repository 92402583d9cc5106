"""How a run ends: success, or the one reason it failed (a model failed, the promotion did not finish, ...).

Airflow judges a run by its leaf task, so the report task raises this reason: a run with a
failed model is never a silent green.
"""

from __future__ import annotations

from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import Leaderboard
from dag_factory.errors import RunFailed
from dag_factory.spec.schema import ExperimentSpec


def leaderboard_of(files: RunFiles) -> Leaderboard:
    """The run's leaderboard, or RunFailed when the run stopped before writing it."""
    if not files.leaderboard.exists():
        raise RunFailed(f"the run stopped before the leaderboard was written ({files.leaderboard}); "
                        "see the failed task's log")
    return Leaderboard.read(files.leaderboard)


def failure(spec: ExperimentSpec, board: Leaderboard) -> RunFailed | None:
    """Why the run failed, or None when it succeeded."""
    decision = board.decision
    if board.winner is not None and decision is None:
        return RunFailed(f"the promotion of {board.winner} did not happen or did not finish (see the log of the "
                         "failed task, select or promote); the champion is unchanged, clear that task to try again")
    assert decision is not None
    if spec.tracking is not None and decision.promoted and decision.registered is None:
        return RunFailed(f"{board.winner} was promoted to {decision.path} but not registered in MLflow "
                         "(see the promote task's log); clear the promote task to register it")
    if board.failed and not board.ranked:
        return RunFailed(f"nothing was promoted: {decision.reason}")
    if board.failed:
        return RunFailed(f"{len(board.failed)} of {len(spec.models)} model(s) failed: {', '.join(board.failed)}; "
                         "the others were compared without them (see the leaderboard and the failed tasks' logs)")
    return None
