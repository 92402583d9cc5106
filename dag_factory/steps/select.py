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
from typing import Any

from dag_factory.files import read_json, write_json
from dag_factory.spec import LOWER_IS_BETTER, METRICS, ExperimentSpec
from dag_factory.steps.train import ERROR_FILE, RESULT_FILE
from dag_factory.storage import StoragePath

log = logging.getLogger(__name__)

LEADERBOARD_FILE = "metrics.json"


def collect(models_dir: StoragePath, names: list[str]) -> list[dict[str, Any]]:
    """One entry per model of the spec: its summary, its error, or 'skipped' when it did not run."""
    entries = []
    for name in names:
        folder = models_dir / name
        if (folder / RESULT_FILE).exists():
            entries.append({"status": "ok", **read_json(folder / RESULT_FILE)})
        elif (folder / ERROR_FILE).exists():
            error = read_json(folder / ERROR_FILE)
            entries.append({"status": "failed", "name": name, "model": error["model"], "error": error["error"]})
        else:
            entries.append({"status": "skipped", "name": name})
    return entries


def gate_failures(cv: dict[str, dict[str, float]], require: dict[str, float]) -> list[str]:
    """Reasons a model misses the spec's ``require`` minimums (maximums for losses)."""
    reasons = []
    for metric, bound in require.items():
        value = cv[metric]["mean"]
        if metric in LOWER_IS_BETTER and not value <= bound:  # `not <=` also refuses NaN (undefined on a fold)
            reasons.append(f"{metric} {value:.4f} > required maximum {bound}")
        elif metric not in LOWER_IS_BETTER and not value >= bound:
            reasons.append(f"{metric} {value:.4f} < required minimum {bound}")
    return reasons


def rank_key(metric: str):
    """Sort key implementing the documented ranking rule."""
    sign = 1 if metric in LOWER_IS_BETTER else -1

    def key(row: dict[str, Any]) -> tuple:
        score = sign * row["cv"][metric]["mean"]
        return (not row["eligible"], math.inf if math.isnan(score) else score, row["cv"][metric]["std"],
                row["cv"]["fit_seconds"]["mean"], row["name"])

    return key


def select(spec: ExperimentSpec, run_dir: StoragePath, run_id: str) -> dict[str, Any]:
    """Build the leaderboard of one run from its models' folders and write ``metrics.json``."""
    metric = spec.selection.metric
    entries = collect(run_dir / "models", spec.model_names())
    trained = [e for e in entries if e["status"] == "ok"]
    for row in trained:
        reasons = gate_failures(row["cv"], spec.selection.require)
        row["eligible"] = not reasons
        row["ineligible_reasons"] = reasons
    trained.sort(key=rank_key(metric))
    rows = []
    for rank, row in enumerate(trained, start=1):
        rows.append({
            "rank": rank,
            "name": row["name"],
            "model": row["model"],
            "status": "ok",
            "eligible": row["eligible"],
            "ineligible_reasons": row["ineligible_reasons"],
            "cv": {m: row["cv"][m] for m in (*METRICS, "fit_seconds", "predict_seconds")},
            "test": row["test"],
            "test_confusion_matrix": row["test_confusion_matrix"],
            "threshold": row["threshold"],
            "params": row["params"],
            "chosen_params": row["chosen_params"],
            "model_path": row["model_path"],
            "model_sha256": row["model_sha256"],
            "top_features": row["top_features"],
            "importance_kind": row["importance_kind"],
            "plots": row["plots"],
            "tracking": row.get("tracking") or {},
        })
    rows += [{"rank": None, **{k: e.get(k) for k in ("name", "model", "status", "error")}}
             for e in entries if e["status"] != "ok"]
    winner = next((r for r in rows if r.get("eligible")), None)
    board = {
        "experiment": spec.experiment,
        "run_id": run_id,
        "metric": metric,
        "ranking_rule": "eligible first; best CV mean of the metric; then lower CV std; then faster fit; then name",
        "cv_protocol": {"folds": spec.cv.folds, "repeats": spec.cv.repeats, "seed": spec.cv.seed},
        "require": spec.selection.require,
        "threshold": spec.selection.threshold.model_dump() if spec.selection.threshold else None,
        "classes": next((e["classes"] for e in trained), None),
        "winner": winner["name"] if winner else None,
        "leaderboard": rows,
        "failed": [e["name"] for e in entries if e["status"] == "failed"],
        "decision": None,
    }
    if winner is None:
        board["decision"] = {"promoted": False, "reason": _no_winner_reason(entries, rows)}
    write_json(run_dir / LEADERBOARD_FILE, board)
    for row in rows:
        if row["status"] == "ok":
            log.info("#%d %s: CV %s %.4f +/- %.4f%s", row["rank"], row["name"], metric,
                     row["cv"][metric]["mean"], row["cv"][metric]["std"],
                     "" if row["eligible"] else f" (ineligible: {'; '.join(row['ineligible_reasons'])})")
        else:
            log.warning("%s: %s %s", row["name"], row["status"], row.get("error") or "")
    log.info("Leaderboard written to %s; winner: %s", run_dir / LEADERBOARD_FILE, board["winner"])
    return board


def _no_winner_reason(entries: list[dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    if not any(e["status"] == "ok" for e in entries):
        failed = [e for e in entries if e["status"] == "failed"]
        if failed:
            return "every model failed: " + "; ".join(f"{e['name']}: {e['error']}" for e in failed)
        return "no model was trained"
    return "no model meets the selection.require gates: " + "; ".join(
        f"{r['name']}: {', '.join(r['ineligible_reasons'])}" for r in rows if r["status"] == "ok"
    )
