"""A run's HTML report: the leaderboard, the decision and every model's plots side by side.

One self-contained file (inline CSS, PNGs embedded as base64, no script, nothing fetched), so
it opens the same from the run folder, the champion's folder, an e-mail or an artifact store.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from dag_factory.artifacts.layout import CARD_MD, REPORT, champion_plot_name
from dag_factory.artifacts.records import Decision, Leaderboard, ModelCard
from dag_factory.render.card import card_markdown, describe_gates
from dag_factory.render.comparison import COMPARISON_TITLES, comparison_plots
from dag_factory.render.plots import PLOT_KINDS, PLOT_TITLES
from dag_factory.render.templates import render
from dag_factory.spec.schema import TASK_METRICS
from dag_factory.storage.files import write_text
from dag_factory.storage.location import StoragePath, copy_file


@dataclass(frozen=True)
class Figure:
    name: str
    rank: int
    path: str
    data: str | None  # base64 PNG, None when the file is missing


def write_report(board: Leaderboard, run_dir: StoragePath) -> StoragePath:
    """Render ``board`` (a run's leaderboard) into ``run_dir/report.html``."""
    return write_text(run_dir / REPORT, render_report(board, run_dir / "models"))


def add_champion_pages(staging: Path, board: Leaderboard, trained: StoragePath, card: ModelCard) -> None:
    """Put the report and the winner's plots (from its folder ``trained``) into a champion version being assembled.

    The promotion decision is not in the run's leaderboard yet, so the card's reason stands in.
    """
    decided = board.model_copy(update={"decision": Decision(promoted=True, reason=card.reason)})
    write_text(staging / REPORT, render_report(decided, trained.parent))
    write_text(staging / CARD_MD, card_markdown(card))
    winner = board.winner_row
    for kind, relative in (winner.plots if winner else {}).items():
        copy_file(trained / relative, staging / champion_plot_name(kind))


def render_report(board: Leaderboard, models_dir: StoragePath) -> str:
    """The report as one HTML page; the plots are read from each model's folder in ``models_dir``."""
    metric = board.metric
    plot_rows = []
    for kind in PLOT_KINDS[board.task]:
        figures = [_figure(row.name, row.rank, models_dir / row.name / row.plots[kind])
                   for row in board.ranked if kind in row.plots]
        if figures:
            plot_rows.append((kind, PLOT_TITLES[kind], figures))
    comparison = [(COMPARISON_TITLES[kind], base64.b64encode(png).decode("ascii"))
                  for kind, png in comparison_plots(board, models_dir).items()]
    return render("report.html.j2", board=board, facts=_facts(board), plot_rows=plot_rows, comparison=comparison,
                  metrics=(metric, *[m for m in TASK_METRICS[board.task] if m != metric]))


def _facts(board: Leaderboard) -> str:
    protocol = board.cv_protocol
    classes = board.classes or []
    positive = f"; positive class {classes[-1]}" if len(classes) == 2 else ""
    folds = "stratified" if board.task == "classification" else "shuffled"
    return (f"Run {board.run_id}. Ranked on CV {board.metric} (mean of {folds} {protocol.folds}-fold x "
            f"{protocol.repeats} on the training split{positive}). Rule: {board.ranking_rule}. "
            f"Gates: {describe_gates(board.require)}. The held-out test split is reported, never used to choose."
            + (f" {board.sample.sentence()}" if board.sample else ""))


def _figure(name: str, rank: int, path: StoragePath) -> Figure:
    data = base64.b64encode(path.read_bytes()).decode("ascii") if path.exists() else None
    return Figure(name=name, rank=rank, path=str(path), data=data)
