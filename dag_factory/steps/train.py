"""Train-and-evaluate step for one model: cross-validate, choose the threshold, refit, test, save.

The model's files (model.skops, predictions.csv) are written into a local folder the caller
publishes once complete; the returned ``ModelResult`` is what the leaderboard compares.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from dag_factory.artifacts.layout import MODEL_FILE, PREDICTIONS, RunFiles
from dag_factory.artifacts.model_file import save_model
from dag_factory.artifacts.records import CVProtocol, Importance, ModelResult, RunMeta
from dag_factory.spec.schema import HEADLINE_METRICS, CatalogEntry, ExperimentSpec, ModelEntry
from dag_factory.steps.evaluate import (
    CVResult, evaluate_cv, final_threshold, predict_output, target_recall_of, threshold_report,
)
from dag_factory.steps.importance import feature_importance
from dag_factory.steps.metrics import classification_metrics, confusion, predicted_labels, task_metrics
from dag_factory.spec.estimators import estimator_params
from dag_factory.steps.pipeline import build_pipeline, chosen_params
from dag_factory.steps.preprocess import load_split
from dag_factory.storage.files import sha256_file

log = logging.getLogger(__name__)

TOP_FEATURES_IN_SUMMARY = 10
#: Training rows handed back as the model's input example (MLflow signatures).
EXAMPLE_ROWS = 5


def train_model(spec: ExperimentSpec, entry: ModelEntry, catalog: CatalogEntry, meta: RunMeta, files: RunFiles,
                out: Path) -> tuple[ModelResult, pd.DataFrame]:
    """Cross-validate, refit on the training split, test; write model.skops and predictions.csv into ``out``.

    Returns the model's measurements and a few training rows (an input example).
    """
    x_train, y_train, x_test, y_test = load_split(files, meta.target)
    classes, task = meta.classes, meta.task
    target_recall = target_recall_of(spec, len(classes))
    pipeline = build_pipeline(catalog, entry, meta.numeric, meta.categorical,
                              metric=spec.selection.metric, n_classes=len(classes), seed=spec.cv.seed)
    log.info("Model %s (%s): %d CV folds x %d repeat(s) on %d training rows",
             entry.label, catalog.estimator, spec.cv.folds, spec.cv.repeats, len(x_train))

    cv = evaluate_cv(pipeline, x_train, y_train, spec.cv, target_recall, task)
    threshold = final_threshold(cv, target_recall)
    for name in HEADLINE_METRICS[task]:
        log.info("Model %s CV %s: %.4f +/- %.4f", entry.label, name, cv.scores[name].mean, cv.scores[name].std)

    start = time.perf_counter()
    fitted = clone(pipeline).fit(x_train, y_train)
    refit_seconds = time.perf_counter() - start
    test_output = predict_output(fitted, x_test, task)
    test = task_metrics(task, y_test.to_numpy(), test_output, threshold)
    log.info("Model %s held-out test: %s (refit %.2fs)", entry.label,
             ", ".join(f"{name} {test[name]:.4f}" for name in HEADLINE_METRICS[task]), refit_seconds)

    chosen = threshold if target_recall is not None else None  # the default 0.5 is what predict() does anyway
    artifact, x_fit, y_fit = fitted, x_train, y_train
    if spec.selection.final_fit == "all":
        x_fit, y_fit = pd.concat([x_train, x_test]), pd.concat([y_train, y_test])
        artifact = clone(pipeline).fit(x_fit, y_fit)
        log.info("Model %s refit on all %d rows (selection.final_fit: all); the held-out figures describe the "
                 "train-only fit", entry.label, len(x_fit))
    if classes:  # a regressor is saved as it is: its predict already answers in the target's unit
        artifact = _with_names(_with_threshold(artifact, chosen, x_fit, y_fit), classes, x_fit)
    save_model(artifact, out / MODEL_FILE)
    _predictions(cv, test_output, y_test, threshold, classes).to_csv(out / PREDICTIONS, index=False)
    importance = _importance(fitted, x_test, y_test, spec.cv.seed, entry.label, task == "regression")
    result = ModelResult(
        name=entry.label,
        model=entry.model,
        estimator=catalog.estimator,
        params=estimator_params(catalog, entry),
        chosen_params=chosen_params(fitted),
        cv=cv.scores,
        fold_scores=cv.fold_scores,
        cv_protocol=CVProtocol(folds=spec.cv.folds, repeats=spec.cv.repeats, seed=spec.cv.seed),
        test=test,
        test_confusion_matrix=confusion(y_test.to_numpy(), test_output, threshold) if classes else [],
        threshold=threshold_report(cv, threshold, target_recall, test,
                                   classification_metrics(y_test.to_numpy(), test_output) if classes else {}),
        classes=classes,
        refit_seconds=refit_seconds,
        model_sha256=sha256_file(out / MODEL_FILE),
        features=list(x_train.columns),
        fingerprint=meta.fingerprint,
        importance=importance,
        top_features=dict(zip(importance.features[:TOP_FEATURES_IN_SUMMARY],
                              importance.values[:TOP_FEATURES_IN_SUMMARY], strict=True)),
        importance_kind=importance.kind,
        complexity=catalog.complexity,
        fitted_on=spec.selection.final_fit,
        fitted_rows=len(x_fit),
    )
    return result, x_train.head(EXAMPLE_ROWS)


def _importance(fitted: Any, x_test: pd.DataFrame, y_test: pd.Series, seed: int, label: str,
                regression: bool) -> Importance:
    """Feature importance for the report; a model that has none is still a trained model."""
    try:
        return feature_importance(fitted, x_test, y_test, seed, regression)
    except Exception as err:  # importance explains a model, it does not qualify it
        log.warning("Model %s: no feature importance (%s: %s)", label, type(err).__name__, err)
        return Importance(kind=f"unavailable ({type(err).__name__})", features=[], values=[])


def _with_threshold(fitted: Any, threshold: float | None, x: pd.DataFrame, y: pd.Series) -> Any:
    """The artifact to save: the fitted Pipeline, whose ``predict`` applies the chosen threshold when there is one.

    Anyone loading model.skops then gets the sensitivity the model card promises, not p >= 0.5.
    """
    if threshold is None:
        return fitted
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    return FixedThresholdClassifier(FrozenEstimator(fitted), threshold=threshold,
                                    response_method="predict_proba").fit(x, y)  # fit only records the classes


def _with_names(model: Any, classes: list[str], x: pd.DataFrame) -> Any:
    """The artifact answers in the source's class names (``classes[i]`` is code i), not in the codes it learnt."""
    from dag_factory.artifacts.named_classifier import NamedClassifier

    return NamedClassifier(model, list(classes)).fit(x)


def _predictions(cv: CVResult, test_output: np.ndarray, y_test: pd.Series, threshold: float | None,
                 classes: list[str]) -> pd.DataFrame:
    """predictions.csv: every out-of-fold prediction (at its fold's threshold) and every held-out one."""
    frames = [_prediction_frame(f.rows, f.y, f.output, t, classes, "cv", f.fold, f.repeat)
              for f, t in zip(cv.folds, cv.thresholds, strict=True)]
    frames.append(_prediction_frame(y_test.index, y_test.to_numpy(), test_output, threshold, classes, "test"))
    return pd.concat(frames, ignore_index=True)


def _prediction_frame(
    rows: pd.Index, y: np.ndarray, output: np.ndarray, threshold: float | None, classes: list[str],
    split: str, fold: int | None = None, repeat: int | None = None,
) -> pd.DataFrame:
    """One row per prediction: row id, the answers (see ``_class_columns``, ``_value_columns``), split and fold."""
    answers = _class_columns(y, output, threshold, classes) if classes else _value_columns(y, output)
    frame = pd.DataFrame({"row_id": np.asarray(rows, dtype=int), **answers, "split": split, "fold": fold,
                          "repeat": repeat})
    for k, name in enumerate(classes):
        frame[f"proba_{name}"] = output[:, k]
    frame[["fold", "repeat"]] = frame[["fold", "repeat"]].astype("Int64")
    return frame


def _class_columns(y: np.ndarray, proba: np.ndarray, threshold: float | None, classes: list[str]) -> dict[str, Any]:
    """True and predicted class (code and name), the probability shown in plots, and the threshold."""
    predicted = predicted_labels(proba, threshold)
    names = np.asarray(classes, dtype=object)
    return {"y_true": y.astype(int), "y_pred": predicted, "true_label": names[y.astype(int)],
            "predicted_label": names[predicted], "proba": proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1),
            "threshold": threshold}


def _value_columns(y: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """True and predicted value, and the residual (true - predicted) that the residual plot shows."""
    return {"y_true": y, "y_pred": predicted, "residual": y - predicted}
