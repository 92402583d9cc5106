"""Promote step: replace the champion in results/best/<experiment>/ only with a better model.

The champion folder is a symlink to a complete, immutable version folder. A new champion is
written in full beside the old one, then the symlink is swapped with one atomic rename, under
a lock, so readers and a killed process always see one whole champion, never a mix, and two
runs finishing together cannot both win.
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

from dag_factory.files import read_json, sha256_file, write_json, write_text
from dag_factory.layout import best_dir, safe_run_id
from dag_factory.spec import ExperimentSpec
from dag_factory.steps.card import CARD_JSON, CARD_MD, card_markdown, model_card
from dag_factory.steps.metrics import metric_is_better
from dag_factory.steps.select import LEADERBOARD_FILE

log = logging.getLogger(__name__)

HISTORY = "history.jsonl"


def champion(results: Path, experiment: str) -> dict[str, Any] | None:
    """The current champion's model card, or None when nothing was promoted yet."""
    card = best_dir(results, experiment) / CARD_JSON
    return read_json(card) if card.exists() else None


def promote(spec: ExperimentSpec, results: Path, run_dir: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Compare this run's winner with the champion, promote it if it is better, record the decision.

    The decision (promoted or not, and why) is written into the run's leaderboard.
    """
    board_path = run_dir / LEADERBOARD_FILE
    board = read_json(board_path)
    if board["winner"] is None:
        decision = board["decision"]
        log.warning("Nothing to promote: %s", decision["reason"])
        return decision
    winner = next(r for r in board["leaderboard"] if r["name"] == board["winner"])
    metric, margin = spec.selection.metric, spec.selection.min_improvement
    with _lock(results, spec.experiment):
        current = champion(results, spec.experiment)
        score = winner["cv"][metric]["mean"]
        decision: dict[str, Any] = {"promoted": False, "metric": metric, "challenger": winner["name"],
                                    "challenger_score": score, "champion": None, "champion_score": None}
        if current is not None:
            decision["champion"] = f"{current['model']['name']} (run {current['run_id']})"
            decision["champion_score"] = current["cv"].get(metric, {}).get("mean")
        if current is None:
            decision.update(promoted=True, reason="no champion yet")
        elif decision["champion_score"] is None:
            decision.update(promoted=True, reason=f"the champion has no {metric} score to compare with")
        elif metric_is_better(metric, score, decision["champion_score"], margin):
            decision.update(promoted=True, reason=(
                f"{winner['name']} CV {metric} {score:.4f} beats the champion's "
                f"{decision['champion_score']:.4f} by more than min_improvement {margin}"))
        else:
            decision["reason"] = (
                f"{winner['name']} CV {metric} {score:.4f} does not beat the champion's "
                f"{decision['champion_score']:.4f} by more than min_improvement {margin}; champion kept")
        if decision["promoted"]:
            card = model_card(spec, board, winner, meta, decision)
            decision["path"] = str(_install(results, spec.experiment, winner, card, board_path))
    board["decision"] = decision
    write_json(board_path, board)
    log.info("Promotion decision: %s", decision["reason"])
    return decision


def _install(results: Path, experiment: str, winner: dict[str, Any], card: dict[str, Any], board: Path) -> Path:
    """Write the new champion as a complete version folder, then atomically point best/ at it."""
    link = best_dir(results, experiment)
    versions = link.parent / ".versions" / experiment
    version = versions / f"{safe_run_id(card['run_id'])}-{uuid.uuid4().hex[:8]}"
    staging = versions / f".staging-{version.name}"
    staging.mkdir(parents=True)
    shutil.copy2(winner["model_path"], staging / "model.joblib")
    if sha256_file(staging / "model.joblib") != winner["model_sha256"]:
        shutil.rmtree(staging)
        raise OSError(f"copy of {winner['model_path']} does not match its recorded SHA-256; champion kept")
    shutil.copy2(Path(winner["model_path"]).with_name("metrics.json"), staging / "metrics.json")
    shutil.copy2(board, staging / "leaderboard.json")
    write_json(staging / CARD_JSON, card)
    write_text(staging / CARD_MD, card_markdown(card))
    history = (link / HISTORY).read_text(encoding="utf-8") if (link / HISTORY).exists() else ""
    entry = {"promoted_at": card["promoted_at"], "run_id": card["run_id"], "model": card["model"]["name"],
             "metric": card["metric"], "score": card["cv"][card["metric"]]["mean"], "reason": card["reason"]}
    write_text(staging / HISTORY, history + json.dumps(entry, sort_keys=True) + "\n")
    _fsync_tree(staging)
    staging.rename(version)
    pointer = link.with_name(f".{experiment}.link-{uuid.uuid4().hex[:8]}")
    os.symlink(os.path.relpath(version, link.parent), pointer)
    if link.exists() and not link.is_symlink():
        raise OSError(f"{link} is a plain folder, not a champion link; move it away and run again")
    os.replace(pointer, link)  # the atomic switch: best/<experiment> now names the new version
    log.info("Promoted %s to %s (version %s)", card["model"]["name"], link, version.name)
    return link


@contextmanager
def _lock(results: Path, experiment: str) -> Iterator[None]:
    """Exclusive lock per experiment, so compare-and-swap of the champion is one step."""
    path = Path(results) / "best" / f".{experiment}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
