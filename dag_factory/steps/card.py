"""The model card of a champion: what it is, how it was measured, what it may be used for."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from dag_factory.spec import LOWER_IS_BETTER, ExperimentSpec

CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
PACKAGES = ("apache-airflow", "scikit-learn", "xgboost-cpu", "xgboost", "pandas", "numpy", "joblib")


def model_card(
    spec: ExperimentSpec, board: dict[str, Any], winner: dict[str, Any], meta: dict[str, Any], decision: dict[str, Any]
) -> dict[str, Any]:
    """What the promoted model is, how it was measured, and what it may be used for."""
    threshold = winner["threshold"]
    return {
        "experiment": spec.experiment,
        "description": spec.description,
        "intended_use": (
            f"{(spec.description or spec.experiment).rstrip('.')}. Scores rows with the same columns as the training data. "
            "Decision support for a qualified person, not an autonomous decision; "
            "validate on your own population before use."
        ),
        "limitations": _limitations(meta, winner),
        "run_id": board["run_id"],
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reason": decision["reason"],
        "previous_champion": decision["champion"],
        "model": {"name": winner["name"], "family": winner["model"], "params": winner["params"],
                  "chosen_params": winner["chosen_params"]},
        "metric": board["metric"],
        "selection": {"ranking_rule": board["ranking_rule"], "require": board["require"]},
        "cv_protocol": {**board["cv_protocol"], "stratified": True, "split": "training split only",
                        "train_rows": meta["train_rows"]},
        "cv": winner["cv"],
        "test": winner["test"],
        "test_confusion_matrix": {"classes": meta["classes"], "rows_true_columns_predicted": winner["test_confusion_matrix"]},
        "data": {"fingerprint": meta["fingerprint"], "rows": meta["rows"], "train_rows": meta["train_rows"],
                 "test_rows": meta["test_rows"], "classes": meta["classes"],
                 "positive_class": meta["positive_class"], "features": meta["numeric"] + meta["categorical"]},
        "config_fingerprint": meta.get("config_fingerprint"),
        "threshold": threshold["value"],
        "threshold_selection": threshold,
        "top_features": {"kind": winner["importance_kind"], "values": winner["top_features"]},
        "plots": {kind: champion_plot_name(kind) for kind in winner.get("plots", {})},
        "artifact": {"file": "model.joblib", "sha256": winner["model_sha256"]},
        "packages": package_versions(),
    }


def describe_gates(require: dict[str, float]) -> str:
    """The selection gates in words: 'recall >= 0.9, brier <= 0.1', or 'none'."""
    return ", ".join(f"{m} {'<=' if m in LOWER_IS_BETTER else '>='} {v}" for m, v in require.items()) or "none"


def champion_plot_name(kind: str) -> str:
    """File name of a plot in the champion's folder (flat: a version folder holds files only)."""
    return f"plot_{kind}.png"


def _limitations(meta: dict[str, Any], winner: dict[str, Any]) -> str:
    """Plain words on how far the numbers carry."""
    recall = winner["cv"]["recall"]
    text = (
        f"Trained on {meta['train_rows']} rows of one data set; metrics are estimates on data like it and may not "
        "hold under a shift in population, measurement or prevalence."
    )
    if meta.get("positive_class") is not None:
        text += (f" In cross-validation it missed about {1 - recall['mean']:.1%} (± {recall['std']:.1%}) of "
                 f"{meta['positive_class']} cases at the decision threshold; never use it to rule a case out alone.")
    return text


def card_markdown(card: dict[str, Any]) -> str:
    """The model card as a page a person reads."""
    protocol = card["cv_protocol"]
    lines = [
        f"# Model card: {card['experiment']} / {card['model']['name']}",
        "",
        f"**Intended use.** {card['intended_use']}",
        "",
        f"**Limitations.** {card['limitations']}",
        "",
        "## Provenance",
        "",
        f"- Promoted: {card['promoted_at']} from run `{card['run_id']}` ({card['reason']})",
        f"- Previous champion: {card['previous_champion'] or 'none'}",
        f"- Model: {card['model']['family']} (`{card['model']['name']}`) with params `{card['model']['params']}`"
        + (f", search chose `{card['model']['chosen_params']}`" if card["model"]["chosen_params"] else ""),
        f"- Data: {card['data']['rows']} rows ({card['data']['train_rows']} train, {card['data']['test_rows']} "
        f"held-out test), {len(card['data']['features'])} features, classes {', '.join(card['data']['classes'])}; "
        f"positive class `{card['data']['positive_class']}`",
        f"- Data fingerprint (SHA-256): `{card['data']['fingerprint']}`",
        f"- CV: stratified {protocol['folds']} folds x {protocol['repeats']} repeat(s), seed {protocol['seed']}, "
        f"on the training split only; ranked on CV {card['metric']} ({card['selection']['ranking_rule']})",
        f"- Gates: {describe_gates(card['selection']['require'])}",
        f"- Artifact: `{card['artifact']['file']}`, SHA-256 `{card['artifact']['sha256']}`",
        "",
        "## Decision threshold",
        "",
        *_threshold_lines(card),
        "",
        "## Metrics",
        "",
        "| metric | CV mean | CV std | held-out test |",
        "|---|---:|---:|---:|",
    ]
    for name, test_value in card["test"].items():
        cv = card["cv"][name]
        lines.append(f"| {name} | {cv['mean']:.4f} | {cv['std']:.4f} | {test_value:.4f} |")
    lines += ["", *_confusion_lines(card["test_confusion_matrix"]), "", *_feature_lines(card["top_features"])]
    if card.get("plots"):
        lines += ["", "## Plots", "", *[f"![{kind}]({name})" for kind, name in card["plots"].items()]]
    lines += ["", "## Packages", "", ", ".join(f"{k} {v}" for k, v in card["packages"].items()), ""]
    return "\n".join(lines)


def _threshold_lines(card: dict[str, Any]) -> list[str]:
    selection = card["threshold_selection"]
    if selection["value"] is None:
        return [f"None: {selection['rule']}."]
    lines = [f"The model says `{card['data']['positive_class']}` when its probability is >= "
             f"**{selection['value']:.4f}** ({selection['rule']})."]
    if selection.get("target_recall") is not None:
        default = selection["at_default"]
        lines.append(
            f"Cross-validated (threshold chosen without each fold): recall {selection['cv_recall']['mean']:.4f} ± "
            f"{selection['cv_recall']['std']:.4f}, specificity {selection['cv_specificity']['mean']:.4f} ± "
            f"{selection['cv_specificity']['std']:.4f}; at 0.5 they were {default['cv_recall']['mean']:.4f} and "
            f"{default['cv_specificity']['mean']:.4f}, so the target costs {selection['specificity_cost']:.4f} "
            f"specificity. Held-out test: recall {selection['test_recall']:.4f}, "
            f"specificity {selection['test_specificity']:.4f}.")
    return lines


def _confusion_lines(confusion: dict[str, Any]) -> list[str]:
    classes = confusion["classes"]
    lines = ["Held-out test confusion matrix (rows: true, columns: predicted):", "",
             "| true / predicted | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for name, row in zip(classes, confusion["rows_true_columns_predicted"], strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return lines


def _feature_lines(top: dict[str, Any]) -> list[str]:
    if not top["values"]:
        return [f"Feature importance: {top['kind']}."]
    return [f"Most influential features ({top['kind']}): "
            + ", ".join(f"{name} ({value:+.3f})" for name, value in top["values"].items())]


def package_versions() -> dict[str, str]:
    """Versions of the packages that produced the artifact (needed to load it safely)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
