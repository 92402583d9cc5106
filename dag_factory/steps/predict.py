"""Score new rows with an experiment's champion, after checking the artifact is the one promoted."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dag_factory.artifacts.champion_store import champion_store, verified_card
from dag_factory.artifacts.layout import CARD_JSON, MODEL_FILE, best_dir
from dag_factory.artifacts.model_file import load_model
from dag_factory.artifacts.records import ModelCard
from dag_factory.errors import DataError, ModelError, UntrustedModel, excerpt
from dag_factory.steps.card import package_versions
from dag_factory.steps.metrics import predicted_labels
from dag_factory.storage.files import sha256_file, write_text
from dag_factory.storage.location import StoragePath

log = logging.getLogger(__name__)


def load_champion(results: StoragePath, experiment: str) -> tuple[Any, ModelCard]:
    """The champion's fitted model and model card, after checking every file's SHA-256 and the model's types.

    The checksums catch a file changed by accident; the skops format (``artifacts.model_file``)
    is what keeps a deliberately rewritten model from running code. The champion's version
    folder is looked up once, so a promotion happening meanwhile cannot pair one version's card
    with another version's model.
    """
    folder = champion_store(results, experiment).current()
    if folder is None:
        raise ModelError(f"no champion for {experiment} in {best_dir(results, experiment)}; "
                         f"run `dag-factory run {experiment}` first")
    artifact = folder / MODEL_FILE
    card = ModelCard.read(folder / CARD_JSON)
    if artifact.is_file() and (actual := sha256_file(artifact)) != card.artifact.sha256:
        raise UntrustedModel(
            f"{artifact} has SHA-256 {actual[:16]}..., but its model card records {card.artifact.sha256[:16]}...; "
            "the file was changed after promotion, refusing to load it (re-run the experiment to promote a fresh model)"
        )
    card = verified_card(folder)  # every file's checksum, the card's too, and the model's format
    _warn_on_version_drift(card)
    return load_model(artifact), card


@dataclass(frozen=True)
class Scored:
    """What scoring a file did: where the predictions went, how many rows, which input columns the model ignored."""

    path: StoragePath
    rows: int
    ignored: list[str]
    added: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """The output, the columns it adds (which is which), and the columns that were not used."""
        line = f"Scored {self.rows} row(s) into {self.path}"
        if self.ignored:
            line += (f"; column(s) {', '.join(excerpt(c) for c in self.ignored)} are not features of the model, so "
                     "they were ignored for scoring (and copied to the output)")
        if self.added:
            line += "\nAdded columns: " + "; ".join(f"{name}: {meaning}" for name, meaning in self.added.items())
        return line


def added_columns(card: ModelCard) -> dict[str, str]:
    """What each column ``predict_frame`` adds means, in the source's class names (or the target's name)."""
    if card.task == "regression":
        return {"predicted": f"the predicted {card.data.target or 'value'}"}
    classes = card.data.classes
    if len(classes) == 2:
        return {"predicted": f"the predicted class ({' or '.join(classes)})",
                f"proba_{classes[1]}": f"probability of {classes[1]}",
                "threshold": f"{classes[1]} when proba_{classes[1]} >= threshold"}
    return {"predicted": "the most probable class", **{f"proba_{c}": f"probability of {c}" for c in classes}}


def predict_frame(model: Any, card: ModelCard, rows: pd.DataFrame, source: str = "the input") -> pd.DataFrame:
    """Predicted class and class probabilities for each row, at the card's decision threshold; or, for a
    regression, the predicted value.

    Every bad input is one DataError sentence naming the row and the column: no rows, a missing
    column, text in a numeric column.
    """
    features = card.data.features
    if rows.empty:
        raise DataError(f"{source} has a header but no rows; add at least one row to score")
    missing = [c for c in features if c not in rows.columns]
    if missing:
        raise DataError(f"{source} lacks {len(missing)} column(s) the model was trained on: {', '.join(missing)}; "
                        "add them (a blank cell is allowed, the model imputes it)")
    inputs = _numbers_checked(rows[features], [c for c in features if c not in card.data.categorical], source)
    regression = card.task == "regression"
    try:
        output = model.predict(inputs) if regression else model.predict_proba(inputs)
    except (ValueError, TypeError) as err:
        raise DataError(f"{source} cannot be scored by the model ({type(err).__name__}: {excerpt(err, 120)}); "
                        "compare its columns and values with the data the model was trained on") from None
    out = rows.copy()
    if regression:
        out["predicted"] = output
        return out
    proba, classes = output, card.data.classes
    out["predicted"] = [classes[i] for i in predicted_labels(proba, card.threshold)]
    if len(classes) == 2:
        out[f"proba_{classes[1]}"] = proba[:, 1]
        out["threshold"] = card.threshold
    else:
        for i, name in enumerate(classes):
            out[f"proba_{name}"] = proba[:, i]
    return out


def predict_file(results: StoragePath, experiment: str, input_csv: StoragePath, output_csv: StoragePath) -> Scored:
    """Score a CSV of new rows with the champion and write the predictions as CSV (either file on any storage)."""
    model, card = load_champion(results, experiment)
    try:
        with input_csv.open("rb") as handle:
            rows = pd.read_csv(handle)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {input_csv} as CSV ({excerpt(err, 120)}); give a CSV file with a header "
                        "row") from None
    scored = predict_frame(model, card, rows, source=str(input_csv))
    write_text(output_csv, scored.to_csv(index=False))
    result = Scored(output_csv, len(scored), [str(c) for c in rows.columns if c not in card.data.features],
                    added_columns(card))
    log.info("%s (model %s of run %s, threshold %s)", result.describe(), card.model.name, card.run_id, card.threshold)
    return result


def _numbers_checked(rows: pd.DataFrame, numeric: list[str], source: str) -> pd.DataFrame:
    """``rows`` with its numeric features as numbers; DataError naming the first cell that is not a number."""
    rows = rows.copy()
    for column in numeric:
        values = rows[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        converted = pd.to_numeric(values, errors="coerce")
        bad = values.notna() & converted.isna()
        if bad.any():
            position = int(bad.to_numpy().argmax())
            raise DataError(
                f'{source}: row {position + 1} (line {position + 2}), column "{column}" holds '
                f'"{excerpt(values.iloc[position])}", which is not a number; the model was trained on numbers in this '
                "column (leave the cell blank when the value is unknown)")
        rows[column] = converted
    return rows


def _warn_on_version_drift(card: ModelCard) -> None:
    """Warn when the packages differ from those that trained the model: unpickling may misbehave."""
    now = package_versions()
    drift = [f"{name} {then} -> {now.get(name, 'missing')}" for name, then in card.packages.items()
             if now.get(name) != then]
    if drift:
        log.warning("The champion was trained with other package versions (%s); predictions may differ",
                    ", ".join(drift))
