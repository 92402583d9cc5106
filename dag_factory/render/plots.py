"""PNG plots of one model, drawn by scikit-learn's Display classes: ROC, precision-recall, confusion, calibration
for a classifier; predicted against actual and residuals for a regressor; feature importance for both.

Each figure is a matplotlib ``Figure`` on an Agg canvas (no pyplot figure manager, headless),
handed to the Displays as their axes. A plot that cannot be drawn is logged and left out; it
never fails the model's training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dag_factory.artifacts.layout import PREDICTIONS
from dag_factory.artifacts.records import Importance, ModelResult

log = logging.getLogger(__name__)

#: The plots of each task's models, in the report's order.
PLOT_KINDS = {"classification": ("roc", "pr", "confusion", "calibration", "importance"),
              "regression": ("predicted", "residuals", "importance")}
PLOT_TITLES = {
    "roc": "ROC curve",
    "pr": "Precision-recall curve",
    "confusion": "Confusion matrices",
    "calibration": "Calibration curve",
    "predicted": "Predicted against actual",
    "residuals": "Residuals against predicted",
    "importance": "Feature importance",
}
#: Plots of two panels side by side (out-of-fold and held-out), drawn wider.
WIDE_PLOTS = ("confusion", "predicted", "residuals")
#: Points drawn per panel of a regression plot (a random subsample of larger sets, as scikit-learn's Display does).
MAX_POINTS = 1000
TOP_BARS = 15


@dataclass(frozen=True)
class Scores:
    """One set of predictions to draw: true class codes, probabilities and predicted codes."""

    label: str
    y: np.ndarray
    proba: np.ndarray
    y_pred: np.ndarray


def draw_model_plots(model_dir: Path, result: ModelResult) -> dict[str, str]:
    """Draw every plot of a trained model from its predictions.csv into ``model_dir/plots``.

    Returns ``{kind: path relative to the model folder}``; the out-of-fold and the held-out
    predictions are drawn side by side.
    """
    import pandas as pd

    predictions = pd.read_csv(model_dir / PREDICTIONS)
    parts = (("CV out-of-fold", predictions[predictions["split"] == "cv"]),
             ("held-out test", predictions[predictions["split"] == "test"]))
    if not result.classes:
        values = [(label, part["y_true"].to_numpy(), part["y_pred"].to_numpy()) for label, part in parts]
        return save_regression_plots(model_dir / "plots", result.name, values, result.importance)
    columns = [f"proba_{name}" for name in result.classes]
    scores = [Scores(label, part["y_true"].to_numpy(), part[columns].to_numpy(), part["y_pred"].to_numpy())
              for label, part in parts]
    return save_model_plots(model_dir / "plots", result.name, result.classes, scores, result.threshold.value,
                            result.importance)


def save_model_plots(
    folder: Path, model: str, classes: list[str], scores: list[Scores], threshold: float | None,
    importance: Importance | None,
) -> dict[str, str]:
    """Draw every plot of one model into ``folder``; returns ``{kind: path relative to the model folder}``."""
    return _save(folder, model, {
        "roc": lambda fig: _roc(fig, classes, scores, threshold),
        "pr": lambda fig: _pr(fig, classes, scores, threshold),
        "confusion": lambda fig: _confusion(fig, classes, scores),
        "calibration": lambda fig: _calibration(fig, classes, scores),
        "importance": lambda fig: _importance(fig, importance, classes),
    })


def save_regression_plots(folder: Path, model: str, values: list[tuple[str, np.ndarray, np.ndarray]],
                          importance: Importance | None) -> dict[str, str]:
    """Draw a regressor's plots into ``folder`` from (label, true, predicted) sets; ``{kind: relative path}``."""
    return _save(folder, model, {
        "predicted": lambda fig: _prediction_error(fig, values, "actual_vs_predicted"),
        "residuals": lambda fig: _prediction_error(fig, values, "residual_vs_predicted"),
        "importance": lambda fig: _importance(fig, importance, []),
    })


def _save(folder: Path, model: str, drawers: dict[str, Callable[[Any], None]]) -> dict[str, str]:
    """Draw each plot into ``folder/<kind>.png``; one that fails is logged and left out."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, draw in drawers.items():
        try:
            fig = new_figure(9.0 if kind in WIDE_PLOTS else 5.0, 4.0)
            draw(fig)
            fig.suptitle(f"{model}: {PLOT_TITLES[kind]}", fontsize=10)
            fig.savefig(folder / f"{kind}.png", format="png")
            written[kind] = f"{folder.name}/{kind}.png"
        except Exception as err:  # a plot is a view of results, not a result: log it and go on
            log.warning("Plot %s of model %s was not drawn: %s: %s", kind, model, type(err).__name__, err)
    return written


def new_figure(width: float, height: float) -> Any:
    """A headless matplotlib Figure (Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


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
    from sklearn.metrics import confusion_matrix

    (tn, fp), (fn, tp) = confusion_matrix(scores.y, scores.proba[:, 1] >= threshold, labels=[0, 1])
    return fp / max(fp + tn, 1), tp / max(tp + fn, 1), tp / max(tp + fp, 1)


def _roc(fig: Any, classes: list[str], scores: list[Scores], threshold: float | None) -> None:
    from sklearn.metrics import RocCurveDisplay

    ax = fig.add_subplot()
    curves = _curves(classes, scores)
    for i, (label, positive, score) in enumerate(curves):
        RocCurveDisplay.from_predictions(positive, score, name=label, ax=ax, plot_chance_level=i == len(curves) - 1)
    point = _operating_point(scores[0], threshold)
    if point:
        ax.plot(point[0], point[1], "o", color="black", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="false-positive rate (1 - specificity)",
           ylabel=f"recall of {classes[-1]}" if len(classes) == 2 else "true-positive rate")
    ax.legend(loc="lower right", fontsize=7)


def _pr(fig: Any, classes: list[str], scores: list[Scores], threshold: float | None) -> None:
    from sklearn.metrics import PrecisionRecallDisplay

    ax = fig.add_subplot()
    for label, positive, score in _curves(classes, scores):
        PrecisionRecallDisplay.from_predictions(positive, score, name=label, ax=ax)
    point = _operating_point(scores[0], threshold)
    if point:
        ax.plot(point[1], point[2], "o", color="black", label=f"threshold {threshold:.3f}")
    ax.set(xlabel="recall", ylabel="precision")
    ax.legend(loc="lower left", fontsize=7)


def _confusion(fig: Any, classes: list[str], scores: list[Scores]) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    axes = np.atleast_1d(fig.subplots(1, len(scores)))
    for ax, s in zip(axes, scores, strict=True):
        ConfusionMatrixDisplay.from_predictions(s.y, s.y_pred, labels=list(range(len(classes))),
                                                display_labels=classes, ax=ax, colorbar=False, cmap="Blues",
                                                xticks_rotation=30)
        ax.set(xlabel="predicted", ylabel="true", title=s.label)


def _calibration(fig: Any, classes: list[str], scores: list[Scores]) -> None:
    from sklearn.calibration import CalibrationDisplay

    ax = fig.add_subplot()
    curves = _curves(classes, scores)
    for i, (label, positive, score) in enumerate(curves):
        CalibrationDisplay.from_predictions(positive, score, n_bins=10, strategy="quantile", name=label, ax=ax,
                                            ref_line=i == 0, markersize=3)
    ax.set(xlabel="predicted probability", ylabel="observed share positive")
    ax.legend(loc="upper left", fontsize=7)


def _prediction_error(fig: Any, values: list[tuple[str, np.ndarray, np.ndarray]], kind: str) -> None:
    """Predicted against actual (the diagonal is perfect), or residuals against predicted (0 is perfect), per set."""
    from sklearn.metrics import PredictionErrorDisplay

    axes = np.atleast_1d(fig.subplots(1, len(values)))
    for ax, (label, y, predicted) in zip(axes, values, strict=True):
        PredictionErrorDisplay.from_predictions(y, predicted, kind=kind, subsample=MAX_POINTS, random_state=0, ax=ax,
                                                scatter_kwargs={"alpha": 0.4, "s": 8})
        ax.set_title(label, fontsize=9)


def _importance(fig: Any, importance: Importance | None, classes: list[str]) -> None:
    if not importance or not importance.features:
        raise ValueError("the model reports no feature importance")
    names = importance.features[:TOP_BARS][::-1]
    values = np.asarray(importance.values[:TOP_BARS][::-1])
    ax = fig.add_subplot()
    ax.barh(range(len(names)), values, color=np.where(values >= 0, "tab:red", "tab:blue"))
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.axvline(0, color="grey", linewidth=0.8)
    if importance.kind == "coefficient" and len(classes) in (0, 2):
        ax.set(xlabel=f"coefficient (> 0 favours {classes[1]})" if classes else "coefficient (> 0 raises the value)")
    else:
        ax.set(xlabel=importance.kind)
