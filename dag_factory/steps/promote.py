"""Promote step: replace the champion in results/best/<experiment>/ only with a better model.

The champion folder is a symlink to a complete, immutable version folder. A new champion is
written in full beside the old one, then the symlink is swapped with one atomic rename, under
a lock, so readers and a killed process always see one whole champion, never a mix, and two
runs finishing together cannot both win. Every file of a version has its SHA-256 in the
version's SHA256SUMS; ``champion`` refuses a champion whose files no longer match.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
from sklearn.model_selection import FixedThresholdClassifier

from dag_factory.errors import ModelError
from dag_factory.files import (
    MANIFEST, fsync_dir, manifest_problems, read_json, sha256_file, write_json, write_manifest, write_text,
)
from dag_factory.html_report import install_champion_report
from dag_factory.layout import best_dir, safe_run_id
from dag_factory.spec import ExperimentSpec
from dag_factory.steps.card import CARD_JSON, CARD_MD, card_markdown, model_card
from dag_factory.steps.metrics import metric_is_better
from dag_factory.steps.select import LEADERBOARD_FILE

log = logging.getLogger(__name__)

HISTORY = "history.jsonl"
STAGING_PREFIX = ".staging-"


def champion(results: Path, experiment: str) -> dict[str, Any] | None:
    """The current champion's model card, or None when nothing was promoted yet.

    Raises ModelError when a file of the champion no longer matches its recorded SHA-256.
    """
    folder = best_dir(results, experiment).resolve()  # one version, even if another run swaps the link meanwhile
    if not (folder / CARD_JSON).exists():
        return None
    verify_champion(folder)
    return read_json(folder / CARD_JSON)


def verify_champion(folder: Path) -> None:
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
            "Restore the file, or delete the results/best/<experiment> link to start over (every promoted "
            "version stays in results/best/.versions/)")


def promote(spec: ExperimentSpec, results: Path, run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
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
    with _lock(results, spec.experiment):
        _sweep(results, spec.experiment)
        current = champion(results, spec.experiment)
        if current is not None and current.get("evaluation_ground") != evaluation_ground(spec, meta):
            current = _rescored(spec, results, meta, current)
        decision = _decide(spec, board["run_id"], winner, current)
        if decision["promoted"]:
            decision["path"] = str(best_dir(results, spec.experiment))
        if decision["promoted"] and not decision.get("repeated"):
            card = {**model_card(spec, board, winner, meta, decision), "evaluation_ground": evaluation_ground(spec, meta)}
            _install(results, spec.experiment, winner, card, {**board, "decision": decision})
    board["decision"] = decision
    write_json(board_path, board)
    log.info("Promotion decision: %s", decision["reason"])
    return decision


def evaluation_ground(spec: ExperimentSpec, meta: dict[str, Any]) -> dict[str, Any]:
    """What a CV score depends on besides the model: the data, the split, the folds, the threshold rule.

    Two scores compare fairly only on the same ground; it is recorded in every model card.
    """
    threshold = spec.selection.threshold
    return {"data": meta["fingerprint"], "split": spec.split.model_dump(), "cv": spec.cv.model_dump(),
            "target_recall": None if threshold is None else threshold.target_recall}


def _rescored(spec: ExperimentSpec, results: Path, meta: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The champion's card with its CV scores measured again on this run's data and folds.

    When the data, split or CV protocol changed since the champion was trained, its recorded
    score is not comparable: its pipeline (same family and params) is cross-validated on this
    run's training split, by the same rule as the challenger. If that is impossible (say, a
    column it needs is gone), the champion has no score and the decision says why.
    """
    from sklearn.base import clone

    from dag_factory.steps.preprocess import load_split
    from dag_factory.steps.train import evaluate_cv, target_recall_of

    model = joblib.load(best_dir(results, spec.experiment).resolve() / "model.joblib")
    pipeline = model.estimator.estimator if isinstance(model, FixedThresholdClassifier) else model
    x_train, y_train, _, _ = load_split(meta)
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


def _install(
    results: Path, experiment: str, winner: dict[str, Any], card: dict[str, Any], board: dict[str, Any]
) -> Path:
    """Write the new champion as a complete version folder, then atomically point best/ at it."""
    link = best_dir(results, experiment)
    if link.exists() and not link.is_symlink():
        raise ModelError(f"{link} is a plain folder, not a champion link; move it away and run again")
    versions = _versions(results, experiment)
    version = versions / f"{safe_run_id(card['run_id'])}-{uuid.uuid4().hex[:8]}"
    staging = versions / f"{STAGING_PREFIX}{version.name}"
    staging.mkdir(parents=True)
    shutil.copy2(winner["model_path"], staging / "model.joblib")
    if sha256_file(staging / "model.joblib") != winner["model_sha256"]:
        shutil.rmtree(staging)
        raise ModelError(f"{winner['model_path']} does not match the SHA-256 its training recorded; champion kept")
    shutil.copy2(Path(winner["model_path"]).with_name("metrics.json"), staging / "metrics.json")
    write_json(staging / "leaderboard.json", board)  # with this promotion's decision
    write_json(staging / CARD_JSON, card)
    write_text(staging / CARD_MD, card_markdown(card))
    install_champion_report(staging, board, winner, card)  # report.html and plot_*.png
    history = (link / HISTORY).read_text(encoding="utf-8") if (link / HISTORY).exists() else ""
    entry = {"promoted_at": card["promoted_at"], "run_id": card["run_id"], "model": card["model"]["name"],
             "metric": card["metric"], "score": card["cv"][card["metric"]]["mean"], "reason": card["reason"],
             "version": version.name}
    write_text(staging / HISTORY, history + json.dumps(entry, sort_keys=True) + "\n")
    write_manifest(staging)
    _fsync_tree(staging)
    staging.rename(version)
    fsync_dir(versions)
    pointer = link.with_name(f".{experiment}.link-{uuid.uuid4().hex[:8]}")
    os.symlink(os.path.relpath(version, link.parent), pointer)
    os.replace(pointer, link)  # the atomic switch: best/<experiment> now names the new version
    fsync_dir(link.parent)
    log.info("Promoted %s to %s (version %s)", card["model"]["name"], link, version.name)
    return link


def _versions(results: Path, experiment: str) -> Path:
    """results/best/.versions/<experiment>/: every promoted champion, complete and never changed."""
    return Path(results) / "best" / ".versions" / experiment


def _sweep(results: Path, experiment: str) -> None:
    """Remove what a promotion killed midway left (staging folders, unused links); call under the lock.

    A version folder renamed but never linked stays: it is complete, and only the link makes it the champion.
    """
    versions = _versions(results, experiment)
    for staging in versions.glob(f"{STAGING_PREFIX}*") if versions.exists() else ():
        log.warning("Removing %s, left by a promotion that did not finish", staging)
        shutil.rmtree(staging, ignore_errors=True)
    for pointer in best_dir(results, experiment).parent.glob(f".{experiment}.link-*"):
        pointer.unlink(missing_ok=True)


@contextmanager
def _lock(results: Path, experiment: str) -> Iterator[None]:
    """Exclusive lock per experiment, so compare-and-swap of the champion is one step.

    The kernel releases it when the holder dies, even by SIGKILL.
    """
    path = Path(results) / "best" / f".{experiment}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_tree(folder: Path) -> None:
    """Flush every file of a version folder and the folder itself before it is renamed into place."""
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(folder)
