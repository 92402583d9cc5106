"""Select step: rank every model on the same cross-validated metric and write the leaderboard.

Ranking rule (documented in the README): eligible models first; then the better CV mean of
the spec's metric; ties go to the lower CV standard deviation, then the faster mean fit,
then the name in alphabetical order. The held-out test split is reported, never used to rank.
With ``selection.threshold`` the threshold-dependent metrics (recall, specificity, precision, ...)
are each model's at its own chosen threshold, so gates judge the operating point that is deployed.
"""

from __future__ import annotations

import logging
import math

from dag_factory.artifacts.layout import MODEL_ERROR, MODEL_METRICS, RunFiles
from dag_factory.artifacts.records import (
    CVProtocol, Decision, Leaderboard, MeanStd, ModelFailure, ModelResult, RankedRow, UnrankedRow,
)
from dag_factory.spec.schema import LOWER_IS_BETTER, ExperimentSpec

log = logging.getLogger(__name__)

RANKING_RULE = "eligible first; best CV mean of the metric; then lower CV std; then faster fit; then name"


def collect(files: RunFiles, names: list[str]) -> list[ModelResult | UnrankedRow]:
    """One entry per model of the spec: its result, its error, or 'skipped' when it did not run."""
    entries: list[ModelResult | UnrankedRow] = []
    for name in names:
        folder = files.model(name)
        if (folder / MODEL_METRICS).exists():
            entries.append(ModelResult.read(folder / MODEL_METRICS))
        elif (folder / MODEL_ERROR).exists():
            error = ModelFailure.read(folder / MODEL_ERROR)
            entries.append(UnrankedRow(status="failed", name=name, model=error.model, error=error.error))
        else:
            entries.append(UnrankedRow(status="skipped", name=name))
    return entries


def gate_failures(cv: dict[str, MeanStd], require: dict[str, float]) -> list[str]:
    """Reasons a model misses the spec's ``require`` minimums (maximums for losses)."""
    reasons = []
    for metric, bound in require.items():
        value = cv[metric].mean
        if metric in LOWER_IS_BETTER and not value <= bound:  # `not <=` also refuses NaN (undefined on a fold)
            reasons.append(f"{metric} {value:.4f} > required maximum {bound}")
        elif metric not in LOWER_IS_BETTER and not value >= bound:
            reasons.append(f"{metric} {value:.4f} < required minimum {bound}")
    return reasons


def _rank_key(metric: str, require: dict[str, float]):
    """Sort key implementing the documented ranking rule."""
    sign = 1 if metric in LOWER_IS_BETTER else -1

    def key(result: ModelResult) -> tuple:
        score = sign * result.score(metric)
        return (bool(gate_failures(result.cv, require)), math.inf if math.isnan(score) else score,
                result.cv[metric].std, result.cv["fit_seconds"].mean, result.name)

    return key


def select(spec: ExperimentSpec, files: RunFiles, run_id: str) -> Leaderboard:
    """Build the leaderboard of one run from its models' folders and write it."""
    metric, require = spec.selection.metric, spec.selection.require
    entries = collect(files, spec.model_names())
    trained = sorted((e for e in entries if isinstance(e, ModelResult)), key=_rank_key(metric, require))
    rows: list[RankedRow | UnrankedRow] = []
    for rank, result in enumerate(trained, start=1):
        reasons = gate_failures(result.cv, require)
        rows.append(RankedRow(**result.model_dump(), rank=rank, eligible=not reasons, ineligible_reasons=reasons))
    unranked = [e for e in entries if isinstance(e, UnrankedRow)]
    rows += unranked
    winner = next((r for r in rows if isinstance(r, RankedRow) and r.eligible), None)
    board = Leaderboard(
        experiment=spec.experiment,
        run_id=run_id,
        metric=metric,
        ranking_rule=RANKING_RULE,
        cv_protocol=CVProtocol(folds=spec.cv.folds, repeats=spec.cv.repeats, seed=spec.cv.seed),
        require=require,
        threshold=spec.selection.threshold.model_dump() if spec.selection.threshold else None,
        classes=trained[0].classes if trained else None,
        winner=winner.name if winner else None,
        leaderboard=rows,
        failed=[e.name for e in unranked if e.status == "failed"],
    )
    if winner is None:
        board.decision = Decision(promoted=False, reason=_no_winner_reason(board))
    board.write(files.leaderboard)
    for row in rows:
        if isinstance(row, RankedRow):
            log.info("#%d %s: CV %s %.4f +/- %.4f%s", row.rank, row.name, metric, row.cv[metric].mean,
                     row.cv[metric].std, "" if row.eligible else f" (ineligible: {'; '.join(row.ineligible_reasons)})")
        else:
            log.warning("%s: %s %s", row.name, row.status, row.error or "")
    log.info("Leaderboard written to %s; winner: %s", files.leaderboard, board.winner)
    return board


def _no_winner_reason(board: Leaderboard) -> str:
    if not board.ranked:
        failed = [r for r in board.leaderboard if r.status == "failed"]
        if failed:
            return "every model failed: " + "; ".join(f"{r.name}: {r.error}" for r in failed)
        return "no model was trained"
    return "no model meets the selection.require gates: " + "; ".join(
        f"{r.name}: {', '.join(r.ineligible_reasons)}" for r in board.ranked)
