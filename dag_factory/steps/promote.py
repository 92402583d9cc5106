"""Promote step: replace an experiment's champion only with a better model.

The champion store (``champion_store``) keeps every champion as a complete, never-changed
version folder and switches a small pointer to a new one in a single step, so readers and a
killed process always see one whole champion, and two runs finishing together cannot both
win. Every file of a version has its SHA-256 in the version's SHA256SUMS; ``champion``
refuses a champion whose files no longer match.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from sklearn.model_selection import FixedThresholdClassifier

from dag_factory.errors import ModelError
from dag_factory.files import (
    MANIFEST, manifest_problems, read_joblib, read_json, sha256_file, write_json, write_manifest, write_text,
)
from dag_factory.html_report import install_champion_report
from dag_factory.layout import safe_run_id
from dag_factory.spec import ExperimentSpec
from dag_factory.steps.card import CARD_JSON, CARD_MD, card_markdown, model_card
from dag_factory.steps.champion_store import ChampionMoved, LinkStore, PointerStore, champion_store
from dag_factory.steps.metrics import metric_is_better
from dag_factory.steps.select import LEADERBOARD_FILE
from dag_factory.storage import StoragePath, copy_file

log = logging.getLogger(__name__)

HISTORY = "history.jsonl"
#: How often a promotion decides again when another one switched the champion meanwhile.
MAX_ATTEMPTS = 5


def champion(results: StoragePath, experiment: str) -> dict[str, Any] | None:
    """The current champion's model card, or None when nothing was promoted yet.

    Raises ModelError when a file of the champion no longer matches its recorded SHA-256.
    """
    folder = champion_store(results, experiment).current()
    return None if folder is None else _verified_card(folder)


def _verified_card(folder: StoragePath) -> dict[str, Any]:
    verify_champion(folder)
    return read_json(folder / CARD_JSON)


def verify_champion(folder: StoragePath) -> None:
    """Raise ModelError unless every file of the champion in ``folder`` matches its SHA-256."""
    if (folder / MANIFEST).exists():
        problems = manifest_problems(folder)
    else:  # promoted before SHA256SUMS existed: the card records the model's checksum
        expected = read_json(folder / CARD_JSON)["artifact"]["sha256"]
        problems = [] if sha256_file(folder / "model.joblib") == expected else [
            f"{folder / 'model.joblib'} does not match the SHA-256 in its model card"]
    if problems:
        raise ModelError(
            f"the champion in {folder} was changed after promotion ({'; '.join(problems)}); refusing to use it. "
            "Restore the file, or delete the results/best/<experiment> link (or champion.json) to start over "
            "(every promoted version stays in results/best/.versions/)")


def promote(spec: ExperimentSpec, results: StoragePath, run_dir: StoragePath, meta: dict[str, Any]) -> dict[str, Any]:
    """Compare this run's winner with the champion, promote it if it is better, record the decision.

    The decision (promoted or not, and why) is written into the run's leaderboard. Running it
    again for the same run (a retried or cleared task) changes nothing.
    """
    board_path = run_dir / LEADERBOARD_FILE
    board = read_json(board_path)
    if board["winner"] is None:
        decision = board["decision"]
        log.warning("Nothing to promote: %s", decision["reason"])
        return decision
    winner = next(r for r in board["leaderboard"] if r["name"] == board["winner"])
    store = champion_store(results, spec.experiment)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            decision = _promote_once(spec, store, run_dir, meta, board, winner)
            break
        except ChampionMoved as moved:
            log.warning("%s (attempt %d of %d); deciding again against the new champion", moved, attempt, MAX_ATTEMPTS)
    else:
        raise ModelError(f"the champion of {spec.experiment} was replaced {MAX_ATTEMPTS} times while this run "
                         "promoted; clear the promote task to decide again")
    board["decision"] = decision
    write_json(board_path, board)
    log.info("Promotion decision: %s", decision["reason"])
    return decision


def _promote_once(spec: ExperimentSpec, store: LinkStore | PointerStore, run_dir: StoragePath,
                  meta: dict[str, Any], board: dict[str, Any], winner: dict[str, Any]) -> dict[str, Any]:
    """One compare-and-swap: read the champion, decide, and install the winner if it is better."""
    with store.claim():
        folder = store.current()
        current = None if folder is None else _verified_card(folder)
        if current is not None and current.get("evaluation_ground") != evaluation_ground(spec, meta):
            current = _rescored(spec, folder, run_dir, meta, current)
        decision = _decide(spec, board["run_id"], winner, current)
        if decision.get("repeated"):
            decision["path"] = str(folder)
        elif decision["promoted"]:
            card = {**model_card(spec, board, winner, meta, decision), "evaluation_ground": evaluation_ground(spec, meta)}
            decision["path"] = str(_install(store, folder, run_dir, winner, card, {**board, "decision": decision}))
    return decision


def evaluation_ground(spec: ExperimentSpec, meta: dict[str, Any]) -> dict[str, Any]:
    """What a CV score depends on besides the model: the data, the split, the folds, the threshold rule.

    Two scores compare fairly only on the same ground; it is recorded in every model card.
    """
    threshold = spec.selection.threshold
    return {"data": meta["fingerprint"], "split": spec.split.model_dump(), "cv": spec.cv.model_dump(),
            "target_recall": None if threshold is None else threshold.target_recall}


def _rescored(spec: ExperimentSpec, folder: StoragePath, run_dir: StoragePath, meta: dict[str, Any],
              current: dict[str, Any]) -> dict[str, Any]:
    """The champion's card with its CV scores measured again on this run's data and folds.

    When the data, split or CV protocol changed since the champion was trained, its recorded
    score is not comparable: its pipeline (same family and params) is cross-validated on this
    run's training split, by the same rule as the challenger. If that is impossible (say, a
    column it needs is gone), the champion has no score and the decision says why.
    """
    from sklearn.base import clone

    from dag_factory.steps.preprocess import load_split
    from dag_factory.steps.train import evaluate_cv, target_recall_of

    model = read_joblib(folder / "model.joblib")
    pipeline = model.estimator.estimator if isinstance(model, FixedThresholdClassifier) else model
    x_train, y_train, _, _ = load_split(run_dir / "data", meta["target"])
    try:
        _, _, cv = evaluate_cv(clone(pipeline), x_train, y_train, spec.cv,
                               target_recall_of(spec, len(meta["classes"])))
    except Exception as err:  # noqa: BLE001  any failure means: no comparable score
        log.warning("The champion could not be re-scored on this run's data: %s: %s", type(err).__name__, err)
        return {**current, "cv": {}, "rescored": f"could not be re-scored on this run's data ({type(err).__name__}: {err})"}
    log.info("Champion %s re-scored on this run's data and folds: CV %s %.4f (recorded %.4f)",
             current["model"]["name"], spec.selection.metric, cv[spec.selection.metric]["mean"],
             current["cv"].get(spec.selection.metric, {}).get("mean", float("nan")))
    return {**current, "cv": cv, "rescored": "re-scored on this run's data and folds"}


def _decide(spec: ExperimentSpec, run_id: str, winner: dict[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
    """Whether ``winner`` replaces the ``current`` champion, and why, in one sentence."""
    metric, margin = spec.selection.metric, spec.selection.min_improvement
    score = winner["cv"][metric]["mean"]
    decision: dict[str, Any] = {"promoted": False, "metric": metric, "challenger": winner["name"],
                                "challenger_score": score, "champion": None, "champion_score": None}
    if current is None:
        return {**decision, "promoted": True, "reason": "no champion yet"}
    decision["champion"] = f"{current['model']['name']} (run {current['run_id']})"
    decision["champion_score"] = current["cv"].get(metric, {}).get("mean")
    if current["run_id"] == run_id and current["model"]["name"] == winner["name"]:
        return {**decision, "promoted": True, "repeated": True,
                "reason": f"already promoted by an earlier attempt of this run ({current['reason']})"}
    if decision["champion_score"] is None:
        why = current.get("rescored", f"has no {metric} score")
        return {**decision, "promoted": True, "reason": f"the champion {why}, so it cannot be compared"}
    ground = f" ({current['rescored']})" if "rescored" in current else ""
    verdict = (f"{winner['name']} CV {metric} {score:.4f} %s the champion's {decision['champion_score']:.4f}{ground} "
               f"by at least min_improvement {margin}")
    if metric_is_better(metric, score, decision["champion_score"], margin):
        return {**decision, "promoted": True, "reason": verdict % "beats"}
    return {**decision, "reason": verdict % "does not beat" + "; champion kept"}


def _install(store: LinkStore | PointerStore, current: StoragePath | None, run_dir: StoragePath,
             winner: dict[str, Any], card: dict[str, Any], board: dict[str, Any]) -> StoragePath:
    """Assemble the new champion as a complete version folder, then let the store switch to it."""
    version = f"{safe_run_id(card['run_id'])}-{uuid.uuid4().hex[:8]}"
    trained = run_dir / "models" / winner["name"]
    with store.staging(version) as staging:
        copy_file(trained / "model.joblib", staging / "model.joblib")
        if sha256_file(staging / "model.joblib") != winner["model_sha256"]:
            raise ModelError(f"{trained / 'model.joblib'} does not match the SHA-256 its training recorded; "
                             "champion kept")
        copy_file(trained / "metrics.json", staging / "metrics.json")
        write_json(staging / "leaderboard.json", board)  # with this promotion's decision
        write_json(staging / CARD_JSON, card)
        write_text(staging / CARD_MD, card_markdown(card))
        install_champion_report(staging, board, trained, card)  # report.html and plot_*.png
        earlier = current / HISTORY if current is not None else None
        history = earlier.read_text(encoding="utf-8") if earlier is not None and earlier.exists() else ""
        entry = {"promoted_at": card["promoted_at"], "run_id": card["run_id"], "model": card["model"]["name"],
                 "metric": card["metric"], "score": card["cv"][card["metric"]]["mean"], "reason": card["reason"],
                 "version": version}
        write_text(staging / HISTORY, history + json.dumps(entry, sort_keys=True) + "\n")
        write_manifest(staging)
        target = store.install(staging, version, card)
    log.info("Promoted %s to %s", card["model"]["name"], target)
    return target
