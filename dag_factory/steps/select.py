"""Select step: rank every model on the same CV folds, compare each with the leader, write the leaderboard.

Ranking rule (documented in the README): eligible models first; then the better CV mean of
the spec's metric; ties go to the lower CV standard deviation, then the faster mean fit,
then the name in alphabetical order. The first is the leader. Every other model is compared with
it pair by pair on the same folds (``steps.paired``): "tied with the leader" when the interval of
the difference holds zero, else "worse, p = ...". The winner is the simplest eligible model tied
with the leader (lowest catalog ``complexity``, then the name), so a difference inside the noise
never buys a more complex model. The held-out test split is reported, never used to rank.
A model is eligible when it meets the ``require`` gates, reaches ``threshold.target_recall``
in cross-fitted CV (with a threshold), and credibly beats the chance baseline.
"""

from __future__ import annotations

import logging
import math

from dag_factory.artifacts.layout import MODEL_ERROR, MODEL_METRICS, RunFiles
from dag_factory.artifacts.records import (
    BaselineRow, CVProtocol, Decision, Leaderboard, MeanStd, ModelFailure, ModelResult, PairedComparison, RankedRow,
    RunMeta, UnrankedRow,
)
from dag_factory.spec.schema import LOWER_IS_BETTER, ExperimentSpec
from dag_factory.steps.paired import COMPARISON_RULE, compare_folds, credibly_better, is_tied

log = logging.getLogger(__name__)

RANKING_RULE = ("eligible first; best CV mean of the metric; then lower CV std; then faster fit; then name. "
                "Winner: the eligible model of lowest catalog complexity (then name) among the leader and the "
                "models tied with it")


#: Why a model of the spec has neither a result nor an error in a run.
NOT_TRAINED = "not among this run's models, or never finished"


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
            entries.append(UnrankedRow(status="skipped", name=name, error=NOT_TRAINED))
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


def threshold_failure(result: ModelResult, target_recall: float | None) -> list[str]:
    """Why a model misses the spec's target recall at its chosen threshold (cross-fitted CV recall), if it does."""
    if target_recall is None:
        return []
    recall = result.cv["recall"]
    if recall.mean >= target_recall - 1e-12:
        return []
    return [f"cross-fitted CV recall {recall.mean:.4f} ± {recall.std:.4f} at threshold {result.threshold.value:.4f} "
            f"misses target_recall {target_recall} by {target_recall - recall.mean:.4f}"]


def baseline_failure(vs_baseline: PairedComparison | None) -> list[str]:
    """A model whose gain over the chance baseline is not credible is flagged, and cannot be promoted."""
    if vs_baseline is None or credibly_better(vs_baseline, 0.0):
        return []
    return [f"not clearly better than the baseline: gain {vs_baseline.interval()}"]


def _rank_key(metric: str, reasons: dict[str, list[str]]):
    """Sort key implementing the documented ranking rule."""
    sign = 1 if metric in LOWER_IS_BETTER else -1

    def key(result: ModelResult) -> tuple:
        score = sign * result.score(metric)
        return (bool(reasons[result.name]), math.inf if math.isnan(score) else score,
                result.cv[metric].std, result.cv["fit_seconds"].mean, result.name)

    return key


def verdict(comparison: PairedComparison | None) -> str:
    """'tied with the leader (p = 0.41)' or 'worse, p = 0.003' (or better, for an ineligible model)."""
    if comparison is None:
        return "not compared (no per-fold scores)"
    p = f"p = {comparison.p_value:.3g}"
    if is_tied(comparison):
        return f"tied with the leader ({p})"
    return f"{'worse' if comparison.gain < 0 else 'better'}, {p}"


def choose_winner(rows: list[RankedRow]) -> tuple[RankedRow | None, str | None]:
    """The simplest eligible model among the leader and the models tied with it, and the reason in words."""
    if not rows or not rows[0].eligible:
        return None, None
    leader = rows[0]
    tied = [r for r in rows if r.eligible and (r is leader or (r.vs_leader is not None and is_tied(r.vs_leader)))]
    winner = min(tied, key=lambda r: (r.complexity, r.name))
    if winner is leader:
        others = [r.name for r in tied if r is not leader]
        tie = f"; tied with {', '.join(others)} and the simplest of them (catalog complexity)" if others else ""
        return winner, f"{winner.name} has the best CV mean{tie}"
    assert winner.vs_leader is not None
    return winner, (f"{winner.name} is tied with the leader {leader.name} (gain {winner.vs_leader.interval()}, "
                    f"p = {winner.vs_leader.p_value:.3g}) and simpler by the rule (catalog complexity "
                    f"{winner.complexity} vs {leader.complexity}, then name)")


def select(spec: ExperimentSpec, files: RunFiles, run_id: str, baseline: BaselineRow | None = None) -> Leaderboard:
    """Build the leaderboard of one run from its models' folders (and the chance ``baseline``) and write it."""
    metric, require = spec.selection.metric, spec.selection.require
    target_recall = spec.selection.threshold.target_recall if spec.selection.threshold else None
    entries = collect(files, spec.model_names())
    results = [e for e in entries if isinstance(e, ModelResult)]
    vs_baseline = {r.name: compare_folds(spec, r.fold_scores.get(metric),
                                         baseline.fold_scores.get(metric) if baseline else None, "baseline")
                   for r in results}
    reasons = {r.name: gate_failures(r.cv, require) + threshold_failure(r, target_recall)
               + baseline_failure(vs_baseline[r.name]) for r in results}
    trained = sorted(results, key=_rank_key(metric, reasons))
    leader = trained[0] if trained else None
    rows: list[RankedRow | UnrankedRow] = []
    for rank, result in enumerate(trained, start=1):
        vs_leader = None if result is leader else compare_folds(spec, result.fold_scores.get(metric),
                                                                leader.fold_scores.get(metric), leader.name)
        rows.append(RankedRow(**result.model_dump(), rank=rank, eligible=not reasons[result.name],
                              ineligible_reasons=reasons[result.name], vs_leader=vs_leader,
                              verdict="leader" if result is leader else verdict(vs_leader),
                              vs_baseline=vs_baseline[result.name]))
    winner, why = choose_winner([r for r in rows if isinstance(r, RankedRow)])
    unranked = [e for e in entries if isinstance(e, UnrankedRow)]
    rows += unranked
    board = Leaderboard(
        experiment=spec.experiment,
        run_id=run_id,
        metric=metric,
        ranking_rule=RANKING_RULE,
        task=spec.task or "classification",
        comparison_rule=f"{COMPARISON_RULE}; {spec.selection.confidence:.0%} intervals",
        cv_protocol=CVProtocol(folds=spec.cv.folds, repeats=spec.cv.repeats, seed=spec.cv.seed),
        require=require,
        threshold=spec.selection.threshold.model_dump() if spec.selection.threshold else None,
        classes=trained[0].classes if trained else None,
        leader=leader.name if leader else None,
        min_improvement=spec.selection.min_improvement,
        winner=winner.name if winner else None,
        winner_reason=why,
        leaderboard=rows,
        failed=[e.name for e in unranked if e.status == "failed"],
        baseline=baseline,
        sample=RunMeta.read(files.meta).sample if files.meta.exists() else None,
    )
    if winner is None:
        board.decision = Decision(promoted=False, reason=_no_winner_reason(board, target_recall))
    board.write(files.leaderboard)
    for row in rows:
        if isinstance(row, RankedRow):
            log.info("#%d %s: CV %s %.4f +/- %.4f, %s%s", row.rank, row.name, metric, row.cv[metric].mean,
                     row.cv[metric].std, row.verdict,
                     "" if row.eligible else f" (ineligible: {'; '.join(row.ineligible_reasons)})")
        else:
            log.warning("%s: %s %s", row.name, row.status, row.error or "")
    log.info("Leaderboard written to %s; winner: %s (%s)", files.leaderboard, board.winner, why)
    return board


def _no_winner_reason(board: Leaderboard, target_recall: float | None) -> str:
    if not board.ranked:
        failed = [r for r in board.leaderboard if r.status == "failed"]
        if failed:
            return "every model failed: " + "; ".join(f"{r.name}: {r.error}" for r in failed)
        return "no model was trained"
    reason = "no model is eligible: " + "; ".join(f"{r.name}: {', '.join(r.ineligible_reasons)}" for r in board.ranked)
    if target_recall is not None:
        closest = max(board.ranked, key=lambda r: r.cv["recall"].mean)
        reason += (f". Closest to target_recall {target_recall}: {closest.name}, cross-fitted CV recall "
                   f"{closest.cv['recall'].mean:.4f} (short by {max(target_recall - closest.cv['recall'].mean, 0):.4f})")
    return reason
