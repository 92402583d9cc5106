"""Promote step: replace an experiment's champion only with a credibly better model.

With ``selection.credible_gain`` (the default) the winner and the champion are compared pair by
pair on this run's folds (the champion re-scored when the data, split or folds changed), and the
winner replaces it only when the lower bound of its gain's interval exceeds ``min_improvement``:
an equal or noisily better challenger never churns the champion.

The champion store (``artifacts.champion_store``) keeps every champion as a complete,
never-changed version folder and switches a small pointer to a new one in a single step, so
readers and a killed process always see one whole champion, and two runs finishing together
cannot both win. Every file of a version has its SHA-256 in the version's SHA256SUMS.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dag_factory.artifacts.champion_store import (
    ChampionMoved, LinkStore, PointerStore, champion_store, install, verified_card,
)
from dag_factory.artifacts.layout import CARD_JSON, LEADERBOARD, MODEL_FILE, MODEL_METRICS, RunFiles, safe_run_id
from dag_factory.artifacts.model_file import load_model
from dag_factory.artifacts.records import (
    Approval, Decision, HistoryEntry, Leaderboard, MeanStd, ModelCard, ModelResult, RankedRow, RunMeta,
)
from dag_factory.errors import ModelError, UntrustedModel
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.steps.card import model_card
from dag_factory.steps.metrics import metric_is_better
from dag_factory.steps.paired import compare_folds, credibly_better
from dag_factory.storage.files import sha256_file
from dag_factory.storage.location import StoragePath, copy_file

log = logging.getLogger(__name__)

#: How often a promotion decides again when another one switched the champion meanwhile.
MAX_ATTEMPTS = 5

#: Adds the pages people read (report, model card, plots) to a champion being assembled; given by the caller,
#: so that this step decides and stores, and rendering stays in the render layer.
PageWriter = Callable[[Path, Leaderboard, StoragePath, ModelCard], None]


def promote(spec: ExperimentSpec, results: StoragePath, files: RunFiles, meta: RunMeta,
            add_pages: PageWriter | None = None, approval: Approval | None = None) -> Decision:
    """Compare this run's winner with the champion, promote it if it is better, record the decision.

    The decision (promoted or not, and why) is written into the run's leaderboard. Running it
    again for the same run (a retried or cleared task) changes nothing. With ``promotion.approval:
    required`` a better winner is installed only when ``approval`` says a person approved it.
    """
    board = Leaderboard.read(files.leaderboard)
    winner = board.winner_row
    if winner is None:
        assert board.decision is not None  # select records why there is no winner
        log.warning("Nothing to promote: %s", board.decision.reason)
        return board.decision
    store = champion_store(results, spec.experiment)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            decision = _promote_once(spec, store, files, meta, board, winner, add_pages, approval)
            break
        except ChampionMoved as moved:
            log.warning("%s (attempt %d of %d); deciding again against the new champion", moved, attempt, MAX_ATTEMPTS)
    else:
        raise ModelError(f"the champion of {spec.experiment} was replaced {MAX_ATTEMPTS} times while this run "
                         "promoted; clear the promote task to decide again")
    board.decision = decision
    board.write(files.leaderboard)
    log.info("Promotion decision: %s", decision.reason)
    return decision


def _promote_once(spec: ExperimentSpec, store: LinkStore | PointerStore, files: RunFiles, meta: RunMeta,
                  board: Leaderboard, winner: RankedRow, add_pages: PageWriter | None,
                  approval: Approval | None) -> Decision:
    """One compare-and-swap: read the champion, decide, and install the winner if it is better (and approved)."""
    with store.claim():
        folder = store.current()
        current = None if folder is None else verified_card(folder)
        ground = evaluation_ground(spec, meta)
        champion = Scores(current.cv, _recorded_folds(folder)) if current is not None else Scores({}, {})
        rescored = None
        if _needs_rescoring(spec, current, champion, ground):
            champion, rescored = _rescored(spec, folder, files, meta, current)
        decision = _approved(spec, _decide(spec, board.run_id, winner, current, champion, rescored), approval)
        if decision.repeated:
            decision.path = str(folder)
        elif decision.promoted:
            card = model_card(spec, board, winner, meta, decision, ground)
            decision.path = str(_install(store, folder, files, board.model_copy(update={"decision": decision}),
                                         winner, card, add_pages))
    return decision


def _approved(spec: ExperimentSpec, decision: Decision, approval: Approval | None) -> Decision:
    """``decision`` as it stands once the approval rule is applied: without an Approve, the champion is kept."""
    if spec.promotion.approval != "required" or not decision.promoted or decision.repeated:
        return decision
    answer = approval or Approval(asked=False)
    if answer.approved:
        return decision.model_copy(update={"approval": answer, "reason": f"{decision.reason}; approved by {answer.by}"})
    return decision.model_copy(update={
        "promoted": False, "approval": answer,
        "reason": f"{decision.reason}; not promoted: {answer.refusal(spec.promotion.timeout_hours)}; champion kept"})


def would_promote(spec: ExperimentSpec, results: StoragePath, files: RunFiles, meta: RunMeta, board: Leaderboard,
                  winner: RankedRow) -> tuple[Decision, ModelCard | None] | None:
    """What promote would decide now, before any approval, with the champion it compared against; None when it
    would keep the champion. A champion measured on other data counts as beatable (promote re-scores it)."""
    folder = champion_store(results, spec.experiment).current()
    current = None if folder is None else verified_card(folder)
    champion = Scores(current.cv, _recorded_folds(folder)) if current is not None else Scores({}, {})
    if _needs_rescoring(spec, current, champion, evaluation_ground(spec, meta)):
        note = "the champion was measured on other data or folds; promote re-scores it before it decides"
        return Decision(promoted=True, reason=note, metric=spec.selection.metric, challenger=winner.name), current
    decision = _decide(spec, board.run_id, winner, current, champion, None)
    return (decision, current) if decision.promoted and not decision.repeated else None


def evaluation_ground(spec: ExperimentSpec, meta: RunMeta) -> dict[str, Any]:
    """What a CV score depends on besides the model: the data, the split, the folds, the threshold rule.

    Two scores compare fairly only on the same ground; it is recorded in every model card.
    """
    threshold = spec.selection.threshold
    return {"data": meta.fingerprint, "split": spec.split.model_dump(), "cv": spec.cv.model_dump(),
            "target_recall": None if threshold is None else threshold.target_recall}


@dataclass(frozen=True)
class Scores:
    """A champion's CV scores: mean and std of each metric, and each metric's per-fold values (for pairing)."""

    cv: dict[str, MeanStd]
    folds: dict[str, list[float]]


def _needs_rescoring(spec: ExperimentSpec, current: ModelCard | None, champion: Scores,
                     ground: dict[str, Any]) -> bool:
    """Whether the champion's recorded scores cannot be compared with this run's: other data or folds, or
    no per-fold scores where the paired comparison needs them (champions of older versions)."""
    return current is not None and (current.evaluation_ground != ground
                                    or (spec.selection.credible_gain and not champion.folds))


def _recorded_folds(folder: StoragePath | None) -> dict[str, list[float]]:
    """The champion's per-fold scores as its training recorded them (none for champions of older versions)."""
    if folder is None or not (folder / MODEL_METRICS).exists():
        return {}
    return ModelResult.read(folder / MODEL_METRICS).fold_scores


def _rescored(spec: ExperimentSpec, folder: StoragePath, files: RunFiles, meta: RunMeta,
              current: ModelCard) -> tuple[Scores, str]:
    """The champion's CV scores measured again on this run's data and folds, and a note saying so.

    When the data, split or CV protocol changed since the champion was trained, its recorded
    score is not comparable: its pipeline (same family and params) is cross-validated on this
    run's training split, by the same rule as the challenger. If that is impossible (say, a
    column it needs is gone), the champion has no score and the note says why.
    """
    from sklearn.base import clone

    from dag_factory.artifacts.named_classifier import unwrapped

    from dag_factory.steps.evaluate import evaluate_cv, target_recall_of
    from dag_factory.steps.preprocess import load_split

    model = load_model(folder / MODEL_FILE)  # outside the try below: a refused champion fails the run, loudly
    pipeline = unwrapped(model)
    x_train, y_train, _, _ = load_split(files, meta.target)
    try:
        result = evaluate_cv(clone(pipeline), x_train, y_train, spec.cv, target_recall_of(spec, len(meta.classes)),
                             meta.task)
    except Exception as err:  # noqa: BLE001  any failure means: no comparable score
        log.warning("The champion could not be re-scored on this run's data: %s: %s", type(err).__name__, err)
        return Scores({}, {}), f"could not be re-scored on this run's data ({type(err).__name__}: {err})"
    recorded = current.cv.get(spec.selection.metric)
    log.info("Champion %s re-scored on this run's data and folds: CV %s %.4f (recorded %.4f)",
             current.model.name, spec.selection.metric, result.scores[spec.selection.metric].mean,
             recorded.mean if recorded else float("nan"))
    return Scores(result.scores, result.fold_scores), "re-scored on this run's data and folds"


def _decide(spec: ExperimentSpec, run_id: str, winner: RankedRow, current: ModelCard | None,
            champion: Scores, rescored: str | None) -> Decision:
    """Whether ``winner`` replaces the ``current`` champion, and why, in one sentence."""
    metric, margin = spec.selection.metric, spec.selection.min_improvement
    score = winner.score(metric)
    decision = Decision(promoted=False, reason="", metric=metric, challenger=winner.name, challenger_score=score)
    if current is None:
        return decision.model_copy(update={"promoted": True, "reason": "no champion yet"})
    decision.champion = f"{current.model.name} (run {current.run_id})"
    decision.champion_score = champion.cv[metric].mean if metric in champion.cv else None
    if current.run_id == run_id and current.model.name == winner.name:
        return decision.model_copy(update={"promoted": True, "repeated": True,
                                           "reason": f"already promoted by an earlier attempt of this run ({current.reason})"})
    if decision.champion_score is None:
        why = rescored or f"has no {metric} score"
        return decision.model_copy(update={"promoted": True, "reason": f"the champion {why}, so it cannot be compared"})
    ground = f" ({rescored})" if rescored else ""
    paired = compare_folds(spec, winner.fold_scores.get(metric), champion.folds.get(metric), decision.champion)
    if spec.selection.credible_gain and paired is not None:
        decision.vs_champion = paired
        beats = credibly_better(paired, margin)
        reason = (f"{winner.name} {'beats' if beats else 'does not beat'} the champion {decision.champion} credibly: "
                  f"paired gain in CV {metric} {paired.interval()} ({paired.confidence:.0%} interval, {paired.folds} "
                  f"folds{'; champion ' + rescored if rescored else ''}), lower bound "
                  f"{'above' if beats else 'not above'} min_improvement {margin}")
        return decision.model_copy(update={"promoted": beats, "reason": reason if beats else reason + "; champion kept"})
    verdict = (f"{winner.name} CV {metric} {score:.4f} %s the champion's {decision.champion_score:.4f}{ground} "
               f"by at least min_improvement {margin}")
    if metric_is_better(metric, score, decision.champion_score, margin):
        return decision.model_copy(update={"promoted": True, "reason": verdict % "beats"})
    return decision.model_copy(update={"reason": verdict % "does not beat" + "; champion kept"})


def _install(store: LinkStore | PointerStore, current: StoragePath | None, files: RunFiles, board: Leaderboard,
             winner: RankedRow, card: ModelCard, add_pages: PageWriter | None) -> StoragePath:
    """Assemble the new champion as a complete version folder, then let the store switch to it."""
    version = f"{safe_run_id(card.run_id)}-{uuid.uuid4().hex[:8]}"
    trained = files.model(winner.name)

    def fill(staging: Path) -> None:
        copy_file(trained / MODEL_FILE, staging / MODEL_FILE)
        if sha256_file(staging / MODEL_FILE) != winner.model_sha256:
            raise UntrustedModel(f"{trained / MODEL_FILE} does not match the SHA-256 its training recorded; "
                                 "champion kept")
        copy_file(trained / MODEL_METRICS, staging / MODEL_METRICS)
        board.write(staging / LEADERBOARD)  # with this promotion's decision
        card.write(staging / CARD_JSON)
        if add_pages is not None:
            add_pages(staging, board, trained, card)

    entry = HistoryEntry(promoted_at=card.promoted_at, run_id=card.run_id, model=card.model.name,
                         metric=card.metric, score=card.cv[card.metric].mean, reason=card.reason, version=version)
    target = install(store, version, card, entry, current, fill)
    log.info("Promoted %s to %s", card.model.name, target)
    return target
