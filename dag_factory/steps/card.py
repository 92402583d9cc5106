"""The model card of a champion: what it is, how it was measured, what it may be used for."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from dag_factory.spec import ExperimentSpec

CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
PACKAGES = ("apache-airflow", "scikit-learn", "xgboost-cpu", "xgboost", "pandas", "numpy", "joblib")


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
