"""Train-and-evaluate step for one model: cross-validate, choose the threshold, refit, test, save.

Every model of an experiment sees the same folds (same seed, same split), so the
leaderboard compares like with like. With ``selection.threshold`` the decision threshold is
chosen on out-of-fold predictions, and the CV metrics at it are cross-fitted (each fold's
threshold comes from the other folds), so they estimate what the chosen threshold will do.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import RepeatedStratifiedKFold

from dag_factory.errors import ModelError
from dag_factory.files import sha256_file, write_json
from dag_factory.spec import CVSpec, CatalogEntry, ExperimentSpec, ModelEntry
from dag_factory.steps.importance import feature_importance
from dag_factory.steps.metrics import (
    DEFAULT_THRESHOLD,
    classification_metrics,
    confusion,
    predicted_labels,
    summarize,
    threshold_for_recall,
)
from dag_factory.steps.plots import Scores, save_model_plots
from dag_factory.steps.pipeline import build_pipeline, chosen_params, estimator_params
from dag_factory.steps.preprocess import load_split
from dag_factory.storage import StoragePath, publish, remove_tree, scratch_folder

log = logging.getLogger(__name__)

RESULT_FILE = "metrics.json"
ERROR_FILE = "error.json"
TOP_FEATURES_IN_SUMMARY = 10
#: Training rows handed to a recorder as the model's input example.
EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class Fold:
    """The out-of-fold predictions of one CV fold and how long they took."""

    repeat: int
    fold: int
    rows: pd.Index
    y: np.ndarray
    proba: np.ndarray
    fit_seconds: float
    predict_seconds: float


#: What a caller may do with a trained model before its folder is published (e.g. log it to MLflow):
#: called with the model's name, its complete local folder, its summary and a few training rows;
#: returns facts to keep in the summary. An exception fails the model like a failed fit.
Recorder = Callable[[str, Path, dict[str, Any], pd.DataFrame], dict[str, Any]]


def train_model(
    spec: ExperimentSpec, entry: ModelEntry, catalog: CatalogEntry, meta: dict[str, Any], run_dir: StoragePath,
    record: Recorder | None = None,
) -> dict[str, Any]:
    """Train one model into ``run_dir/models/<name>/`` and return its summary.

    Work happens in a local scratch folder that is published to the model's folder only when
    complete (``metrics.json`` last), so a retry never mixes files of a failed attempt with
    results. On failure an ``error.json`` is left for the selector and the exception is
    re-raised for Airflow.
    """
    final = run_dir / "models" / entry.label
    try:
        with scratch_folder(final) as scratch:
            summary, example = _train(spec, entry, catalog, meta, run_dir / "data", scratch)
            summary["model_path"] = str(final / "model.joblib")
            if record is not None:
                summary["tracking"] = record(entry.label, scratch, summary, example)
            write_json(scratch / RESULT_FILE, summary)
            publish(scratch, final, last=RESULT_FILE)
    except Exception as err:
        remove_tree(final)
        write_json(final / ERROR_FILE, {
            "name": entry.label,
            "model": entry.model,
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(),
        })
        log.error("Model %s failed: %s: %s", entry.label, type(err).__name__, err)
        raise
    return summary


def _train(
    spec: ExperimentSpec, entry: ModelEntry, catalog: CatalogEntry, meta: dict[str, Any], data_dir: StoragePath,
    out: Path,
) -> tuple[dict[str, Any], pd.DataFrame]:
    x_train, y_train, x_test, y_test = load_split(data_dir, meta["target"])
    classes = meta["classes"]
    target_recall = target_recall_of(spec, len(classes))
    pipeline = build_pipeline(
        catalog, entry, meta["numeric"], meta["categorical"],
        metric=spec.selection.metric, n_classes=len(classes), seed=spec.cv.seed,
    )
    log.info("Model %s (%s): %d CV folds x %d repeat(s) on %d training rows",
             entry.label, catalog.estimator, spec.cv.folds, spec.cv.repeats, len(x_train))

    folds, fold_thresholds, cv = evaluate_cv(pipeline, x_train, y_train, spec.cv, target_recall)
    cv["fit_seconds"] = _mean_std([f.fit_seconds for f in folds])
    cv["predict_seconds"] = _mean_std([f.predict_seconds for f in folds])
    oof_y, oof_proba = np.concatenate([f.y for f in folds]), np.concatenate([f.proba for f in folds])
    threshold = _final_threshold(oof_y, oof_proba, target_recall)
    for name in ("accuracy", "recall", "specificity", "roc_auc", "f1"):
        log.info("Model %s CV %s: %.4f +/- %.4f", entry.label, name, cv[name]["mean"], cv[name]["std"])

    start = time.perf_counter()
    fitted = clone(pipeline).fit(x_train, y_train)
    refit_seconds = time.perf_counter() - start
    test_proba = fitted.predict_proba(x_test)
    test = classification_metrics(y_test.to_numpy(), test_proba, threshold)
    log.info("Model %s held-out test: accuracy %.4f, recall %.4f, ROC-AUC %.4f (refit %.2fs)",
             entry.label, test["accuracy"], test["recall"], test["roc_auc"], refit_seconds)

    model_path = out / "model.joblib"
    chosen = threshold if target_recall is not None else None  # the default 0.5 is what predict() does anyway
    joblib.dump(_with_threshold(fitted, chosen, x_train, y_train), model_path)
    predictions = [_prediction_frame(f.rows, f.y, f.proba, t, classes, "cv", f.fold, f.repeat)
                   for f, t in zip(folds, fold_thresholds, strict=True)]
    predictions.append(_prediction_frame(y_test.index, y_test.to_numpy(), test_proba, threshold, classes, "test"))
    pd.concat(predictions, ignore_index=True).to_csv(out / "predictions.csv", index=False)
    importance = _importance(fitted, x_test, y_test, spec.cv.seed, entry.label)
    oof_pred = np.concatenate([predicted_labels(f.proba, t) for f, t in zip(folds, fold_thresholds, strict=True)])
    plots = save_model_plots(out / "plots", entry.label, classes, [
        Scores("CV out-of-fold", oof_y, oof_proba, oof_pred),
        Scores("held-out test", y_test.to_numpy(), test_proba, predicted_labels(test_proba, threshold)),
    ], threshold, importance)
    summary = {
        "name": entry.label,
        "model": entry.model,
        "estimator": catalog.estimator,
        "params": estimator_params(catalog, entry),
        "chosen_params": chosen_params(fitted),
        "cv": cv,
        "cv_protocol": {"folds": spec.cv.folds, "repeats": spec.cv.repeats, "seed": spec.cv.seed},
        "test": test,
        "test_confusion_matrix": confusion(y_test.to_numpy(), test_proba, threshold),
        "threshold": _threshold_report(folds, fold_thresholds, threshold, target_recall, cv, test, test_proba, y_test),
        "classes": classes,
        "refit_seconds": refit_seconds,
        "model_sha256": sha256_file(model_path),
        "features": list(x_train.columns),
        "fingerprint": meta["fingerprint"],
        "importance": importance,
        "top_features": dict(zip(importance["features"][:TOP_FEATURES_IN_SUMMARY],
                                 importance["values"][:TOP_FEATURES_IN_SUMMARY], strict=True)),
        "importance_kind": importance["kind"],
        "plots": plots,
    }
    return summary, x_train.head(EXAMPLE_ROWS)


def _importance(fitted: Any, x_test: pd.DataFrame, y_test: pd.Series, seed: int, label: str) -> dict[str, Any]:
    """Feature importance for the report; a model that has none is still a trained model."""
    try:
        return feature_importance(fitted, x_test, y_test, seed)
    except Exception as err:  # importance explains a model, it does not qualify it
        log.warning("Model %s: no feature importance (%s: %s)", label, type(err).__name__, err)
        return {"kind": f"unavailable ({type(err).__name__})", "features": [], "values": []}


def target_recall_of(spec: ExperimentSpec, n_classes: int) -> float | None:
    """The spec's target sensitivity, refused for a multiclass target where one threshold has no meaning."""
    if spec.selection.threshold is None:
        return None
    if n_classes != 2:
        raise ModelError(
            f"experiment {spec.experiment}: selection.threshold applies to binary targets only, and this target "
            f"has {n_classes} classes; remove selection.threshold from the spec"
        )
    return spec.selection.threshold.target_recall


def evaluate_cv(
    pipeline: Any, x: pd.DataFrame, y: pd.Series, cv: CVSpec, target_recall: float | None
) -> tuple[list[Fold], list[float | None], dict[str, dict[str, float]]]:
    """Cross-validate an unfitted pipeline: its folds, each fold's threshold, and the metrics' mean and std.

    Every model, and a champion re-scored at promotion, is measured by this one rule.
    """
    folds = _cross_validate(pipeline, x, y, cv)
    thresholds = _fold_thresholds(folds, target_recall)
    return folds, thresholds, summarize([classification_metrics(f.y, f.proba, t)
                                         for f, t in zip(folds, thresholds, strict=True)])


def _with_threshold(fitted: Any, threshold: float | None, x: pd.DataFrame, y: pd.Series) -> Any:
    """The artifact to save: the fitted Pipeline, whose ``predict`` applies the chosen threshold when there is one.

    Anyone loading model.joblib then gets the sensitivity the model card promises, not p >= 0.5.
    """
    if threshold is None:
        return fitted
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    return FixedThresholdClassifier(FrozenEstimator(fitted), threshold=threshold,
                                    response_method="predict_proba").fit(x, y)  # fit only records the classes


def _cross_validate(pipeline: Any, x: pd.DataFrame, y: pd.Series, cv: CVSpec) -> list[Fold]:
    """Fit and predict every fold of the repeated stratified k-fold on the training split."""
    splitter = RepeatedStratifiedKFold(n_splits=cv.folds, n_repeats=cv.repeats, random_state=cv.seed)
    folds = []
    for i, (train_idx, valid_idx) in enumerate(splitter.split(x, y)):
        model = clone(pipeline)
        start = time.perf_counter()
        model.fit(x.iloc[train_idx], y.iloc[train_idx])
        fitted_at = time.perf_counter()
        proba = model.predict_proba(x.iloc[valid_idx])
        folds.append(Fold(repeat=i // cv.folds, fold=i % cv.folds, rows=y.index[valid_idx],
                          y=y.iloc[valid_idx].to_numpy(), proba=proba, fit_seconds=fitted_at - start,
                          predict_seconds=time.perf_counter() - fitted_at))
    return folds


def _fold_thresholds(folds: list[Fold], target_recall: float | None) -> list[float | None]:
    """Each fold's threshold, chosen on the other folds of its repeat (cross-fitted), or the default.

    A threshold chosen on the very predictions it is scored on would overstate its recall; choosing
    it without the fold's labels keeps the CV estimate honest.
    """
    if target_recall is None:
        return [_default_threshold(f.proba) for f in folds]
    thresholds = []
    for fold in folds:
        others = [o for o in folds if o.repeat == fold.repeat and o.fold != fold.fold]
        y = np.concatenate([o.y for o in others])
        score = np.concatenate([o.proba[:, 1] for o in others])
        thresholds.append(threshold_for_recall(y, score, target_recall))
    return thresholds


def _final_threshold(y: np.ndarray, proba: np.ndarray, target_recall: float | None) -> float | None:
    """The threshold the artifact applies: chosen on all out-of-fold predictions, else the default."""
    if target_recall is None:
        return _default_threshold(proba)
    return threshold_for_recall(y, proba[:, 1], target_recall)


def _default_threshold(proba: np.ndarray) -> float | None:
    """0.5 for a binary target; None for multiclass, where the most probable class wins."""
    return DEFAULT_THRESHOLD if proba.shape[1] == 2 else None


def _threshold_report(
    folds: list[Fold], fold_thresholds: list[float | None], threshold: float | None, target_recall: float | None,
    cv: dict[str, dict[str, float]], test: dict[str, float], test_proba: np.ndarray, y_test: pd.Series,
) -> dict[str, Any]:
    """What the decision threshold is, how it was chosen, and the specificity it costs against 0.5."""
    if threshold is None:
        return {"value": None, "target_recall": None, "rule": "multiclass: the most probable class"}
    if target_recall is None:
        return {"value": threshold, "target_recall": None, "rule": f"default: positive when p >= {threshold}"}
    default_cv = summarize([classification_metrics(f.y, f.proba) for f in folds])
    default_test = classification_metrics(y_test.to_numpy(), test_proba)
    return {
        "value": threshold,
        "target_recall": target_recall,
        "rule": f"highest threshold whose out-of-fold recall is >= {target_recall}",
        "fold_values": _mean_std([t for t in fold_thresholds if t is not None]),
        "cv_recall": cv["recall"],
        "cv_specificity": cv["specificity"],
        "test_recall": test["recall"],
        "test_specificity": test["specificity"],
        "at_default": {"threshold": DEFAULT_THRESHOLD, "cv_recall": default_cv["recall"],
                       "cv_specificity": default_cv["specificity"], "test_recall": default_test["recall"],
                       "test_specificity": default_test["specificity"]},
        "specificity_cost": default_cv["specificity"]["mean"] - cv["specificity"]["mean"],
    }


def _prediction_frame(
    rows: pd.Index, y: np.ndarray, proba: np.ndarray, threshold: float | None, classes: list[str],
    split: str, fold: int | None = None, repeat: int | None = None,
) -> pd.DataFrame:
    """One row per prediction: row id, true and predicted class (code and name), probabilities, fold."""
    predicted = predicted_labels(proba, threshold)
    names = np.asarray(classes, dtype=object)
    frame = pd.DataFrame({
        "row_id": np.asarray(rows, dtype=int),
        "y_true": y.astype(int),
        "y_pred": predicted,
        "true_label": names[y.astype(int)],
        "predicted_label": names[predicted],
        "proba": proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1),
        "threshold": threshold,
        "split": split,
        "fold": fold,
        "repeat": repeat,
    })
    for k, name in enumerate(classes):
        frame[f"proba_{name}"] = proba[:, k]
    frame[["fold", "repeat"]] = frame[["fold", "repeat"]].astype("Int64")
    return frame


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}
