"""How a run ends: success, or the one reason it failed (a model failed, the promotion did not finish, ...).

Airflow judges a run by its leaf task, so the report task raises this reason: a run with a
failed model is never a silent green. ``ending`` turns a finished run into the exit code of
`dag-factory run` and the line that says what it means.
"""

from __future__ import annotations

from dataclasses import dataclass

from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import Leaderboard, SkipNote, StopReason
from dag_factory.errors import RunFailed
from dag_factory.spec.schema import ExperimentSpec

#: Exit codes of `dag-factory run`, one meaning each (2 is a bad command line or spec: the run never started).
EXIT_DECIDED = 0
EXIT_UNDECIDED = 1
EXIT_DECIDED_WITH_FAILED_MODELS = 3


@dataclass(frozen=True)
class Ending:
    """What a finished run means for its user: an exit code and the sentence that explains it."""

    code: int
    line: str


def ending(spec: ExperimentSpec, files: RunFiles, state: str) -> Ending:
    """Decided (the promotion or the kept champion stands), decided although some models failed, or undecided."""
    if files.skipped.exists() and state == "success":
        return Ending(EXIT_DECIDED, f"DECIDED: the champion stands; {SkipNote.read(files.skipped).reason}")
    if files.stop_reason.exists():
        return Ending(EXIT_UNDECIDED, f"NOT DECIDED: {StopReason.read(files.stop_reason).error}")
    board = Leaderboard.read(files.leaderboard) if files.leaderboard.exists() else None
    if board is None:
        return Ending(EXIT_UNDECIDED, f"NOT DECIDED: the run ({state}) stopped before its leaderboard was written; "
                                      "see the failed task above and in run.log")
    problem = failure(spec, board)
    decided = board.decision is not None and board.ranked
    if state == "success" and problem is None and decided:
        return Ending(EXIT_DECIDED, f"DECIDED: {_verdict(board)}")
    if decided and board.failed and problem is not None and problem.models_failed:
        return Ending(EXIT_DECIDED_WITH_FAILED_MODELS, f"DECIDED WITH FAILED MODELS: {_verdict(board)}; {problem}")
    reason = problem or f"the DAG run ended {state}; see the failed task above and in run.log"
    return Ending(EXIT_UNDECIDED, f"NOT DECIDED: {reason}")


def _verdict(board: Leaderboard) -> str:
    assert board.decision is not None
    return f"{'promoted' if board.decision.promoted else 'champion kept'} ({board.decision.reason})"


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
                         "the others were compared without them (see the leaderboard and the failed tasks' logs)",
                         models_failed=True)
    return None
