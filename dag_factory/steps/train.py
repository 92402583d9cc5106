"""Train-and-evaluate step for one model: cross-validate, refit, test, save.

Every model of an experiment sees the same folds (same seed, same split), so the
leaderboard compares like with like.
"""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import RepeatedStratifiedKFold

from dag_factory.files import sha256_file, write_json
from dag_factory.spec import CatalogEntry, ExperimentSpec, ModelEntry
from dag_factory.steps.metrics import classification_metrics, confusion, predicted_labels, summarize
from dag_factory.steps.pipeline import build_pipeline, chosen_params, estimator_params
from dag_factory.steps.preprocess import load_split

log = logging.getLogger(__name__)

RESULT_FILE = "metrics.json"
ERROR_FILE = "error.json"


def train_model(
    spec: ExperimentSpec, entry: ModelEntry, catalog: CatalogEntry, meta: dict[str, Any], models_dir: Path
) -> dict[str, Any]:
    """Train one model into ``models_dir/<name>/`` and return its summary.

    Work happens in a scratch folder that replaces the model's folder only when complete,
    so a retry never mixes files of a failed attempt with results. On failure an
    ``error.json`` is left for the selector and the exception is re-raised for Airflow.
    """
    final = models_dir / entry.label
    scratch = models_dir / f".{entry.label}.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        summary = _train(spec, entry, catalog, meta, scratch)
    except Exception as err:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        write_json(final / ERROR_FILE, {
            "name": entry.label,
            "model": entry.model,
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(),
        })
        log.error("Model %s failed: %s: %s", entry.label, type(err).__name__, err)
        raise
    shutil.rmtree(final, ignore_errors=True)
    scratch.rename(final)
    summary["model_path"] = str(final / "model.joblib")
    write_json(final / RESULT_FILE, summary)  # written last: its presence means the model is complete
    return summary


def _train(
    spec: ExperimentSpec, entry: ModelEntry, catalog: CatalogEntry, meta: dict[str, Any], out: Path
) -> dict[str, Any]:
    x_train, y_train, x_test, y_test = load_split(meta)
    n_classes = len(meta["classes"])
    pipeline = build_pipeline(
        catalog, entry, meta["numeric"], meta["categorical"],
        metric=spec.selection.metric, n_classes=n_classes, seed=spec.cv.seed,
    )
    log.info("Model %s (%s): %d CV folds x %d repeat(s) on %d training rows",
             entry.label, catalog.estimator, spec.cv.folds, spec.cv.repeats, len(x_train))

    per_fold, cv_rows, fit_times, predict_times = _cross_validate(pipeline, x_train, y_train, spec, n_classes)
    cv = summarize(per_fold)
    cv["fit_seconds"] = _mean_std(fit_times)
    cv["predict_seconds"] = _mean_std(predict_times)
    for name in ("accuracy", "recall", "specificity", "roc_auc", "f1"):
        log.info("Model %s CV %s: %.4f +/- %.4f", entry.label, name, cv[name]["mean"], cv[name]["std"])

    start = time.perf_counter()
    fitted = clone(pipeline).fit(x_train, y_train)
    refit_seconds = time.perf_counter() - start
    test_proba = fitted.predict_proba(x_test)
    test = classification_metrics(y_test.to_numpy(), test_proba)
    log.info("Model %s held-out test: accuracy %.4f, recall %.4f, ROC-AUC %.4f (refit %.2fs)",
             entry.label, test["accuracy"], test["recall"], test["roc_auc"], refit_seconds)

    model_path = out / "model.joblib"
    joblib.dump(fitted, model_path)
    test_rows = _prediction_rows(y_test, test_proba, split="test", fold=None, repeat=None)
    pd.DataFrame(cv_rows + test_rows).to_csv(out / "predictions.csv", index=False)
    summary = {
        "name": entry.label,
        "model": entry.model,
        "estimator": catalog.estimator,
        "params": estimator_params(catalog, entry),
        "chosen_params": chosen_params(fitted),
        "cv": cv,
        "cv_protocol": {"folds": spec.cv.folds, "repeats": spec.cv.repeats, "seed": spec.cv.seed},
        "test": test,
        "test_confusion_matrix": confusion(y_test.to_numpy(), test_proba),
        "classes": meta["classes"],
        "refit_seconds": refit_seconds,
        "model_sha256": sha256_file(model_path),
        "features": list(x_train.columns),
        "fingerprint": meta["fingerprint"],
    }
    return summary


def _cross_validate(
    pipeline: Any, x: pd.DataFrame, y: pd.Series, spec: ExperimentSpec, n_classes: int
) -> tuple[list[dict[str, float]], list[dict[str, Any]], list[float], list[float]]:
    """Per-fold metrics, out-of-fold prediction rows and timings."""
    folds = RepeatedStratifiedKFold(n_splits=spec.cv.folds, n_repeats=spec.cv.repeats, random_state=spec.cv.seed)
    per_fold: list[dict[str, float]] = []
    rows: list[dict[str, Any]] = []
    fit_times: list[float] = []
    predict_times: list[float] = []
    for i, (train_idx, valid_idx) in enumerate(folds.split(x, y)):
        model = clone(pipeline)
        start = time.perf_counter()
        model.fit(x.iloc[train_idx], y.iloc[train_idx])
        fit_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        proba = model.predict_proba(x.iloc[valid_idx])
        predict_times.append(time.perf_counter() - start)
        y_valid = y.iloc[valid_idx]
        per_fold.append(classification_metrics(y_valid.to_numpy(), proba))
        rows += _prediction_rows(y_valid, proba, split="cv", fold=i % spec.cv.folds, repeat=i // spec.cv.folds)
    return per_fold, rows, fit_times, predict_times


def _prediction_rows(
    y: pd.Series, proba: np.ndarray, split: str, fold: int | None, repeat: int | None
) -> list[dict[str, Any]]:
    """One row per prediction: row id, true and predicted class code, positive-class probability."""
    predicted = predicted_labels(proba)
    positive = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
    return [
        {"row_id": int(r), "y_true": int(t), "y_pred": int(p), "proba": float(s),
         "split": split, "fold": fold, "repeat": repeat}
        for r, t, p, s in zip(y.index, y.to_numpy(), predicted, positive, strict=True)
    ]


def _mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}
