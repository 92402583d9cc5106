"""Pictures of the comparison itself: every model's ROC and PR curves on one chart, and a forest plot
of each model's paired gain to the leader (and of the winner to the champion) with its interval.

Drawn for report.html from the files a run already has (predictions.csv, leaderboard.json) and
returned as PNG bytes, so the report stays one self-contained page.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dag_factory.artifacts.layout import PREDICTIONS
from dag_factory.artifacts.records import Leaderboard, PairedComparison
from dag_factory.render.plots import new_figure
from dag_factory.storage.location import StoragePath

log = logging.getLogger(__name__)

COMPARISON_TITLES = {
    "roc_overlay": "ROC curves of every model (CV out-of-fold)",
    "pr_overlay": "Precision-recall curves of every model (CV out-of-fold)",
    "forest": "Paired gain to the leader (and of the winner to the champion), with intervals",
}


def comparison_plots(board: Leaderboard, models_dir: StoragePath) -> dict[str, bytes]:
    """``{kind: PNG bytes}`` of the comparison charts that can be drawn; a chart that cannot is logged and left out."""
    drawers: dict[str, Callable[[Any], None]] = {}
    if any(r.vs_leader is not None for r in board.ranked) or (board.decision and board.decision.vs_champion):
        drawers["forest"] = lambda fig: _forest(fig, board)
    if board.classes and len(board.classes) == 2:
        curves = _oof_curves(board, models_dir)
        positive = board.classes[-1]
        drawers["roc_overlay"] = lambda fig: _overlay(fig, curves, "roc", positive)
        drawers["pr_overlay"] = lambda fig: _overlay(fig, curves, "pr", positive)
    drawn = {}
    for kind in COMPARISON_TITLES:
        if kind not in drawers:
            continue
        try:
            fig = new_figure(7.0, 4.5)
            drawers[kind](fig)
            fig.suptitle(COMPARISON_TITLES[kind], fontsize=10)
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            drawn[kind] = buffer.getvalue()
        except Exception as err:  # a picture is a view of results: log it and go on
            log.warning("Comparison plot %s was not drawn: %s: %s", kind, type(err).__name__, err)
    return drawn


def _oof_curves(board: Leaderboard, models_dir: StoragePath) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(model, is-positive, score) of every ranked model's out-of-fold predictions, for the positive class."""
    import pandas as pd

    positive = (board.classes or [])[-1]
    curves = []
    for row in board.ranked:
        path = models_dir / row.name / PREDICTIONS
        if not path.exists():
            continue
        with path.open("rb") as handle:
            frame = pd.read_csv(handle)
        oof = frame[frame["split"] == "cv"]
        curves.append((row.name, oof["y_true"].to_numpy() == 1, oof[f"proba_{positive}"].to_numpy()))
    if not curves:
        raise ValueError("no model has out-of-fold predictions")
    return curves


def _overlay(fig: Any, curves: list[tuple[str, np.ndarray, np.ndarray]], kind: str, positive: str) -> None:
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    ax = fig.add_subplot()
    for i, (name, is_positive, score) in enumerate(curves):
        if kind == "roc":
            RocCurveDisplay.from_predictions(is_positive, score, name=name, ax=ax,
                                             plot_chance_level=i == len(curves) - 1)
        else:
            PrecisionRecallDisplay.from_predictions(is_positive, score, name=name, ax=ax,
                                                    plot_chance_level=i == len(curves) - 1)
    if kind == "roc":
        ax.set(xlabel="false-positive rate (1 - specificity)", ylabel=f"recall of {positive}")
    else:
        ax.set(xlabel=f"recall of {positive}", ylabel="precision")
    ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=7)


def _forest(fig: Any, board: Leaderboard) -> None:
    """One line per comparison: the mean gain as a dot, the interval as a bar; 0 and min_improvement as lines."""
    rows: list[tuple[str, PairedComparison]] = [
        (f"{r.name} - {board.leader}", r.vs_leader) for r in board.ranked if r.vs_leader is not None]
    champion = board.decision.vs_champion if board.decision else None
    if champion is not None:
        rows.append((f"{board.winner} - champion", champion))
    rows = [(label, c) for label, c in rows if math.isfinite(c.ci_low) and math.isfinite(c.ci_high)]
    if not rows:
        raise ValueError("no paired comparison to draw")
    ax = fig.add_subplot()
    for y, (label, c) in enumerate(reversed(rows)):
        ax.plot([c.ci_low, c.ci_high], [y, y], color="tab:blue", linewidth=2)
        ax.plot(c.gain, y, "o", color="black")
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)], fontsize=7)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    if champion is not None:
        ax.axvline(board.min_improvement, color="tab:red", linestyle="--", linewidth=0.8,
                   label=f"min_improvement {board.min_improvement}")
        ax.legend(loc="best", fontsize=7)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.tick_params(axis="x", labelsize=7)
    level = rows[0][1].confidence
    ax.set_xlabel(f"gain in CV {board.metric} ({level:.0%} interval; > 0: better)", fontsize=8)
