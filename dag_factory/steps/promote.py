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
import platform
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from dag_factory.files import read_json, sha256_file, write_json, write_text
from dag_factory.layout import best_dir, safe_run_id
from dag_factory.spec import ExperimentSpec
from dag_factory.steps.metrics import metric_is_better
from dag_factory.steps.select import LEADERBOARD_FILE

log = logging.getLogger(__name__)

CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
HISTORY = "history.jsonl"
PACKAGES = ("apache-airflow", "scikit-learn", "xgboost-cpu", "xgboost", "pandas", "numpy", "joblib")


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


def model_card(
    spec: ExperimentSpec, board: dict[str, Any], winner: dict[str, Any], meta: dict[str, Any], decision: dict[str, Any]
) -> dict[str, Any]:
    """What the promoted model is, how it was measured, and what it may be used for."""
    return {
        "experiment": spec.experiment,
        "description": spec.description,
        "intended_use": (
            f"{spec.description or spec.experiment}. Scores rows with the same columns as the training data. "
            "Decision support for a qualified person, not an autonomous decision; "
            "validate on your own population before use."
        ),
        "limitations": (
            f"Trained on {meta['train_rows']} rows; metrics are estimates on data like the training data "
            "and may not hold under a shift in population, measurement or prevalence."
        ),
        "run_id": board["run_id"],
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reason": decision["reason"],
        "previous_champion": decision["champion"],
        "model": {"name": winner["name"], "family": winner["model"], "params": winner["params"],
                  "chosen_params": winner["chosen_params"]},
        "metric": board["metric"],
        "cv_protocol": board["cv_protocol"],
        "cv": winner["cv"],
        "test": winner["test"],
        "data": {"fingerprint": meta["fingerprint"], "rows": meta["rows"], "train_rows": meta["train_rows"],
                 "test_rows": meta["test_rows"], "classes": meta["classes"],
                 "positive_class": meta["positive_class"], "features": meta["numeric"] + meta["categorical"]},
        "config_fingerprint": meta.get("config_fingerprint"),
        "threshold": 0.5,
        "artifact": {"file": "model.joblib", "sha256": winner["model_sha256"]},
        "packages": package_versions(),
    }


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as a page a person reads."""
    lines = [
        f"# Model card: {card['experiment']} / {card['model']['name']}",
        "",
        f"**Intended use.** {card['intended_use']}",
        "",
        f"**Limitations.** {card['limitations']}",
        "",
        f"- Promoted: {card['promoted_at']} from run `{card['run_id']}` ({card['reason']})",
        f"- Model: {card['model']['family']} with params `{card['model']['params']}`",
        f"- Data: {card['data']['rows']} rows, fingerprint `{card['data']['fingerprint'][:16]}`, "
        f"positive class `{card['data']['positive_class']}`",
        f"- CV: {card['cv_protocol']['folds']} folds x {card['cv_protocol']['repeats']} repeat(s), "
        f"seed {card['cv_protocol']['seed']}; decision threshold {card['threshold']}",
        f"- Artifact: `model.joblib`, SHA-256 `{card['artifact']['sha256']}`",
        "",
        "| metric | CV mean | CV std | held-out test |",
        "|---|---:|---:|---:|",
    ]
    for name, test_value in card["test"].items():
        cv = card["cv"][name]
        lines.append(f"| {name} | {cv['mean']:.4f} | {cv['std']:.4f} | {test_value:.4f} |")
    lines += ["", "Packages: " + ", ".join(f"{k} {v}" for k, v in card["packages"].items()), ""]
    return "\n".join(lines)


def package_versions() -> dict[str, str]:
    """Versions of the packages that produced the artifact (needed to load it safely)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


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
