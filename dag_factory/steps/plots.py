"""PNG plots of one model: ROC, precision-recall, confusion matrices, calibration, feature importance.

matplotlib is imported inside the functions and draws on an Agg canvas without pyplot, so
importing this module is free, no global backend state is touched, and it runs headless.
A plot that cannot be drawn is logged and left out; it never fails the model's training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PLOT_KINDS = ("roc", "pr", "confusion", "calibration", "importance")
PLOT_TITLES = {
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "confusion": "Confusion matrices",
    "calibration": "Calibration curve",
    "importance": "Feature importance",
}
TOP_BARS = 15


@dataclass(frozen=True)
class Scores:
    """One set of predictions to draw: true class codes, probabilities and predicted codes."""

    label: str
    y: np.ndarray
    proba: np.ndarray
    y_pred: np.ndarray


def save_model_plots(
    folder: Path, model: str, classes: list[str], scores: list[Scores], threshold: float | None,
    importance: dict[str, Any] | None,
) -> dict[str, str]:
    """Draw every plot of one model into ``folder``; returns ``{kind: path relative to the model folder}``."""
    folder.mkdir(parents=True, exist_ok=True)
    drawers: dict[str, Callable[[Any], None]] = {
        "roc": lambda fig: _roc(fig, classes, scores, threshold),
        "pr": lambda fig: _pr(fig, classes, scores, threshold),
        "confusion": lambda fig: _confusion(fig, classes, scores),
        "calibration": lambda fig: _calibration(fig, classes, scores),
        "importance": lambda fig: _importance(fig, importance, classes),
    }
    written = {}
    for kind, draw in drawers.items():
        try:
            fig = _figure(9.0 if kind == "confusion" else 5.0, 4.0)
            draw(fig)
            fig.suptitle(f"{model}: {PLOT_TITLES[kind]}", fontsize=10)
            _save(fig, folder / f"{kind}.png")
            written[kind] = f"{folder.name}/{kind}.png"
        except Exception as err:  # a plot is a view of results, not a result: log it and go on
            log.warning("Plot %s of model %s was not drawn: %s: %s", kind, model, type(err).__name__, err)
    return written


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


def _save(fig: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, format="png")


def _curves(classes: list[str], scores: list[Scores]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, is-positive, score) per curve: each set for the positive class (binary), else one-vs-rest per class."""
    if len(classes) == 2:
        return [(s.label, s.y == 1, s.proba[:, 1]) for s in scores]
    first = scores[0]
    return [(f"{name} vs rest ({first.label})", first.y == k, first.proba[:, k]) for k, name in enumerate(classes)]


def _operating_point(scores: Scores, threshold: float | None) -> tuple[float, float, float] | None:
    """(false-positive rate, recall, precision) of the out-of-fold predictions at the threshold (binary)."""
    if threshold is None or scores.proba.shape[1] != 2:
        return None
    flagged = scores.proba[:, 1] >= threshold
    positive = scores.y == 1
    recall = (flagged & positive).sum() / max(positive.sum(), 1)
    fpr = (flagged & ~positive).sum() / max((~positive).sum(), 1)
    precision = (flagged & positive).sum() / max(flagged.sum(), 1)
    return float(fpr), float(recall), float(precision)


def _roc(fig: Any, classes: list[str], scores: list[Scores], threshold: float | None) -> None:
    from sklearn.metrics import roc_auc_score, roc_curve

    ax = fig.add_subplot()
    for label, positive, score in _curves(classes, scores):
        fpr, tpr, _ = roc_curve(positive, score)
        ax.plot(fpr, tpr, label=f"{label} (AUC {roc_auc_score(positive, score):.3f})")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    point = _operating_point(scores[0], threshold)
    if point:
        ax.plot(point[0], point[1], "o", color="black", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="false-positive rate (1 - specificity)", ylabel=f"recall of {classes[-1]}" if len(classes) == 2
           else "true-positive rate", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.legend(loc="lower right", fontsize=7)


def _pr(fig: Any, classes: list[str], scores: list[Scores], threshold: float | None) -> None:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    ax = fig.add_subplot()
    for label, positive, score in _curves(classes, scores):
        precision, recall, _ = precision_recall_curve(positive, score)
        ax.step(recall, precision, where="post", label=f"{label} (AP {average_precision_score(positive, score):.3f})")
    point = _operating_point(scores[0], threshold)
    if point:
        ax.plot(point[1], point[2], "o", color="black", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.legend(loc="lower left", fontsize=7)


def _confusion(fig: Any, classes: list[str], scores: list[Scores]) -> None:
    from sklearn.metrics import confusion_matrix

    axes = fig.subplots(1, len(scores))
    for ax, s in zip(np.atleast_1d(axes), scores, strict=True):
        matrix = confusion_matrix(s.y, s.y_pred, labels=list(range(len(classes))))
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if count > matrix.max() / 2 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set(xlabel="predicted", ylabel="true", title=s.label)


def _calibration(fig: Any, classes: list[str], scores: list[Scores]) -> None:
    from sklearn.calibration import calibration_curve

    ax = fig.add_subplot()
    for label, positive, score in _curves(classes, scores):
        observed, predicted = calibration_curve(positive, score, n_bins=10, strategy="uniform")
        ax.plot(predicted, observed, marker="o", markersize=3, label=label)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    ax.set(xlabel="predicted probability", ylabel="observed share positive", xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    ax.legend(loc="upper left", fontsize=7)


def _importance(fig: Any, importance: dict[str, Any] | None, classes: list[str]) -> None:
    if not importance or not importance["features"]:
        raise ValueError("the model reports no feature importance")
    names = importance["features"][:TOP_BARS][::-1]
    values = np.asarray(importance["values"][:TOP_BARS][::-1])
    ax = fig.add_subplot()
    ax.barh(range(len(names)), values, color=np.where(values >= 0, "tab:red", "tab:blue"))
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.axvline(0, color="grey", linewidth=0.8)
    signed = importance["kind"] == "coefficient" and len(classes) == 2
    ax.set(xlabel=f"coefficient (> 0 favours {classes[1]})" if signed else importance["kind"])
