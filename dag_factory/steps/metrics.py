"""Classification and regression metrics, computed the same way for every model, fold and split.

Regression: RMSE, MAE and MAPE (lower is better; MAPE is NaN on a set whose target holds a zero,
where it has no meaning) and R² (higher is better).

Binary targets are encoded 1 = the spec's positive class (see ``preprocess.encode_target``),
so recall is sensitivity for that class and specificity is recall of the other one.
Multiclass targets get macro averages and one-vs-rest ROC-AUC.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm

from dag_factory.artifacts.records import MeanStd
from dag_factory.spec.schema import LOWER_IS_BETTER, TaskKind

DEFAULT_THRESHOLD = 0.5


def predicted_labels(proba: np.ndarray, threshold: float | None = DEFAULT_THRESHOLD) -> np.ndarray:
    """Class codes from probabilities: positive when p >= threshold (binary; None means 0.5), else the argmax."""
    if proba.shape[1] == 2:
        return (proba[:, 1] >= (DEFAULT_THRESHOLD if threshold is None else threshold)).astype(int)
    return proba.argmax(axis=1)


def threshold_for_recall(y_true: np.ndarray, score: np.ndarray, target: float) -> float:
    """The highest threshold at which at least ``target`` of the positives (code 1) score p >= threshold.

    The highest such threshold flags the fewest negatives, so it keeps the most specificity the
    target sensitivity allows.
    """
    positives = np.sort(np.asarray(score)[np.asarray(y_true) == 1])[::-1]
    if positives.size == 0:
        raise ValueError("cannot choose a threshold for a target recall without any positive example")
    needed = min(max(int(np.ceil(target * positives.size - 1e-9)), 1), positives.size)
    return float(positives[needed - 1])


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, threshold: float | None = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """All metrics of one set of predictions; ``proba`` has one column per class code."""
    y_true = np.asarray(y_true)
    n_classes = proba.shape[1]
    labels = list(range(n_classes))
    y_pred = predicted_labels(proba, threshold)
    average = "binary" if n_classes == 2 else "macro"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined precision on a degenerate fold is reported as 0
        result = {
            "accuracy": skm.accuracy_score(y_true, y_pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
            "precision": skm.precision_score(y_true, y_pred, average=average, labels=labels if n_classes > 2 else None, zero_division=0),
            "recall": skm.recall_score(y_true, y_pred, average=average, labels=labels if n_classes > 2 else None, zero_division=0),
            "specificity": _specificity(y_true, y_pred, labels),
            "f1": skm.f1_score(y_true, y_pred, average=average, labels=labels if n_classes > 2 else None, zero_division=0),
            "roc_auc": _roc_auc(y_true, proba),
            "pr_auc": _pr_auc(y_true, proba),
            "mcc": skm.matthews_corrcoef(y_true, y_pred),
            "log_loss": skm.log_loss(y_true, proba, labels=labels),
            "brier": _brier(y_true, proba),
        }
    return {k: float(v) for k, v in result.items()}


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R² and MAPE (a share, not a percentage; NaN when a true value is 0) of one set of predictions."""
    y_true, predicted = np.asarray(y_true, dtype=float), np.asarray(predicted, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # R² of a constant fold is undefined: NaN, not a warning per fold
        r2 = skm.r2_score(y_true, predicted) if np.ptp(y_true) > 0 else float("nan")
    return {
        "rmse": float(skm.root_mean_squared_error(y_true, predicted)),
        "mae": float(skm.mean_absolute_error(y_true, predicted)),
        "r2": float(r2),
        "mape": float(np.mean(np.abs((y_true - predicted) / y_true))) if np.all(y_true != 0) else float("nan"),
    }


def task_metrics(task: TaskKind, y_true: np.ndarray, output: np.ndarray,
                 threshold: float | None = DEFAULT_THRESHOLD) -> dict[str, float]:
    """The metrics of ``task`` for one set of predictions: probabilities (classification) or values (regression)."""
    if task == "regression":
        return regression_metrics(y_true, output)
    return classification_metrics(y_true, output, threshold)


def confusion(y_true: np.ndarray, proba: np.ndarray, threshold: float | None = DEFAULT_THRESHOLD) -> list[list[int]]:
    """Confusion matrix (rows = true class code, columns = predicted) as plain lists."""
    labels = list(range(proba.shape[1]))
    return skm.confusion_matrix(y_true, predicted_labels(proba, threshold), labels=labels).tolist()


def summarize(per_fold: list[dict[str, float]]) -> dict[str, MeanStd]:
    """Mean and standard deviation of each metric over folds."""
    return {k: mean_std([f[k] for f in per_fold]) for k in per_fold[0]}


def mean_std(values: list[float]) -> MeanStd:
    """Mean and sample standard deviation (ddof=1) of per-fold values; 0 for a single value.

    Folds are a sample of the splits the data allows, so the spread is estimated with n-1.
    """
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return MeanStd(mean=float(np.mean(values)), std=std)


def _specificity(y_true: np.ndarray, y_pred: np.ndarray, labels: list[int]) -> float:
    """True-negative rate of the positive class (binary) or its macro average over classes."""
    per_class = skm.multilabel_confusion_matrix(y_true, y_pred, labels=labels)  # [[tn, fp], [fn, tp]] per class
    tn, fp = per_class[:, 0, 0], per_class[:, 0, 1]
    rates = np.divide(tn, tn + fp, out=np.zeros(len(labels)), where=(tn + fp) > 0)
    return float(rates[1] if len(labels) == 2 else rates.mean())


def _roc_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return skm.roc_auc_score(y_true, proba[:, 1])
    return skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=list(range(proba.shape[1])))


def _pr_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return skm.average_precision_score(y_true, proba[:, 1])
    return skm.average_precision_score(y_true, proba, average="macro")


def _brier(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Brier score of the positive class (binary) or the multiclass Brier score (squared error summed over classes)."""
    if proba.shape[1] == 2:
        return skm.brier_score_loss(y_true, proba[:, 1])
    return skm.brier_score_loss(y_true, proba, labels=list(range(proba.shape[1])))


def metric_is_better(metric: str, a: float, b: float, margin: float = 0.0) -> bool:
    """Whether score ``a`` beats ``b`` on ``metric`` (direction-aware): strictly, and by at least ``margin``.

    An equal score never wins, so retraining on unchanged data does not churn the champion;
    the tolerance keeps a gain of exactly ``margin`` from losing to float rounding.
    """
    gain = b - a if metric in LOWER_IS_BETTER else a - b
    return bool(gain > 0 and gain >= margin - 1e-12)
