"""Score new rows with an experiment's champion, after checking the artifact is the one promoted."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from dag_factory.artifacts.champion_store import champion_store, verified_card
from dag_factory.artifacts.layout import CARD_JSON, best_dir
from dag_factory.artifacts.records import ModelCard
from dag_factory.errors import DataError, ModelError
from dag_factory.steps.card import package_versions
from dag_factory.steps.metrics import predicted_labels
from dag_factory.storage.files import read_joblib, sha256_file, write_text
from dag_factory.storage.location import StoragePath

log = logging.getLogger(__name__)


def load_champion(results: StoragePath, experiment: str) -> tuple[Any, ModelCard]:
    """The champion's fitted Pipeline and model card; refuses an artifact whose SHA-256 differs from the card's.

    The champion's version folder is looked up once, so a promotion happening meanwhile cannot
    pair one version's card with another version's model.
    """
    folder = champion_store(results, experiment).current()
    if folder is None:
        raise ModelError(f"no champion for {experiment} in {best_dir(results, experiment)}; "
                         f"run `dag-factory run {experiment}` first")
    card = ModelCard.read(folder / CARD_JSON)
    artifact = folder / card.artifact.file
    if not artifact.is_file():
        raise ModelError(f"{artifact} is missing although its model card names it; re-run the experiment "
                         "to promote a fresh model")
    actual = sha256_file(artifact)
    if actual != card.artifact.sha256:
        raise ModelError(
            f"{artifact} has SHA-256 {actual[:16]}..., but its model card records {card.artifact.sha256[:16]}...; "
            "the file was changed after promotion, refusing to load it (re-run the experiment to promote a fresh model)"
        )
    card = verified_card(folder)  # the card (threshold, features) and every other file, too
    _warn_on_version_drift(card)
    return read_joblib(artifact), card


def predict_frame(model: Any, card: ModelCard, rows: pd.DataFrame, source: str = "the input") -> pd.DataFrame:
    """Predicted class and class probabilities for each row, at the card's decision threshold."""
    features = card.data.features
    missing = [c for c in features if c not in rows.columns]
    if missing:
        raise DataError(f"{source} lacks {len(missing)} column(s) the model was trained on: {', '.join(missing)}; "
                        "add them (a blank cell is allowed, the model imputes it)")
    proba = model.predict_proba(rows[features])
    classes = card.data.classes
    out = rows.copy()
    out["predicted"] = [classes[i] for i in predicted_labels(proba, card.threshold)]
    if len(classes) == 2:
        out[f"proba_{classes[1]}"] = proba[:, 1]
        out["threshold"] = card.threshold
    else:
        for i, name in enumerate(classes):
            out[f"proba_{name}"] = proba[:, i]
    return out


def predict_file(results: StoragePath, experiment: str, input_csv: StoragePath, output_csv: StoragePath) -> StoragePath:
    """Score a CSV of new rows with the champion and write the predictions as CSV (either file on any storage)."""
    model, card = load_champion(results, experiment)
    try:
        with input_csv.open("rb") as handle:
            rows = pd.read_csv(handle)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {input_csv} as CSV: {err}; give a CSV file with a header row") from err
    scored = predict_frame(model, card, rows, source=str(input_csv))
    write_text(output_csv, scored.to_csv(index=False))
    log.info("Scored %d rows of %s with %s (run %s, threshold %s) into %s",
             len(scored), input_csv, card.model.name, card.run_id, card.threshold, output_csv)
    return output_csv


def _warn_on_version_drift(card: ModelCard) -> None:
    """Warn when the packages differ from those that trained the model: unpickling may misbehave."""
    now = package_versions()
    drift = [f"{name} {then} -> {now.get(name, 'missing')}" for name, then in card.packages.items()
             if now.get(name) != then]
    if drift:
        log.warning("The champion was trained with other package versions (%s); predictions may differ",
                    ", ".join(drift))
