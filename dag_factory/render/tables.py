"""The one table renderer: aligned text for terminals and logs, Markdown for .md pages.

Every table a person reads (the leaderboard in the CLI and the task log, the profile's column
statistics, the model card's metrics) goes through ``table``, so they all look alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from dag_factory.spec.schema import HEADLINE_METRICS

if TYPE_CHECKING:  # the DAG docs render tables at parse time; the record models are not needed there
    from dag_factory.artifacts.records import HistoryEntry, Leaderboard, MeanStd


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], style: Literal["text", "markdown"] = "text",
          right: Sequence[int] = ()) -> str:
    """``rows`` under ``header``: aligned columns with a dashed rule (text), or a pipe table (markdown).

    ``right`` lists the columns to align right in Markdown (numbers).
    """
    cells = [[str(c) for c in header], *[["" if c is None else str(c) for c in row] for row in rows]]
    if style == "markdown":
        rule = ["---:" if i in right else "---" for i in range(len(header))]
        return "\n".join("| " + " | ".join(r) + " |" for r in [cells[0], rule, *cells[1:]])
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def mean_std(value: MeanStd) -> str:
    """'0.9958 ± 0.0047'."""
    return f"{value.mean:.4f} ± {value.std:.4f}"


def leaderboard_table(board: Leaderboard) -> str:
    """The leaderboard as an aligned text table (CV mean ± std, paired gain to the leader), with the decision.

    With ``selection.threshold`` the threshold-dependent columns are at each model's chosen threshold.
    The chance baseline comes last; the winner is marked with ``*``.
    """
    metric = board.metric
    shown = (metric, *[c for c in HEADLINE_METRICS[board.task] if c != metric])
    thresholds = bool(board.threshold)
    header = ["#", "model", *[f"cv {m}" for m in shown], "gain vs leader [CI]", f"test {metric}",
              *(["threshold"] * thresholds), "fit s", "status"]
    rows = []
    for row in board.leaderboard:
        if row.status != "ok":
            rows.append(["-", row.name, *[""] * (len(header) - 3), (f"{row.status}: {row.error}" if row.error else row.status)[:60]])
            continue
        status = row.verdict or "ranked"
        status = f"{status}; ineligible: {'; '.join(row.ineligible_reasons)}" if not row.eligible else status
        threshold = [f"{row.threshold.value:.4f}"] if thresholds else []
        rank = f"{row.rank}*" if row.name == board.winner else str(row.rank)
        rows.append([rank, row.name, *[mean_std(row.cv[m]) for m in shown],
                     row.vs_leader.interval() if row.vs_leader else "", f"{row.test[metric]:.4f}",
                     *threshold, f"{row.cv['fit_seconds'].mean:.2f}", status])
    if board.baseline is not None:
        rows.append(["-", board.baseline.name, *[mean_std(board.baseline.cv[m]) for m in shown], "", "",
                     *([""] * thresholds), f"{board.baseline.cv['fit_seconds'].mean:.2f}",
                     f"chance baseline ({board.baseline.label}); never promoted"])
    lines = [table(header, rows)]
    if board.sample:
        lines += ["", board.sample.sentence()]
    if board.comparison_rule:
        lines += ["", f"Gains: {board.comparison_rule}."]
    if board.winner_reason:
        lines += [f"WINNER (*): {board.winner_reason}"]
    if board.decision:
        lines += ["", ("PROMOTED: " if board.decision.promoted else "NOT PROMOTED: ") + board.decision.reason]
    return "\n".join(lines)


def history_table(entries: Sequence[HistoryEntry], current: str | None) -> str:
    """Every champion of an experiment, oldest first, numbered as ``dag-factory rollback --to N`` takes them."""
    rows = [[str(i), "*" if e.version == current else "", e.promoted_at,
             "rolled back" if e.action == "rolled_back" else "promoted", e.model, e.run_id,
             f"{e.metric} {e.score:.4f}", e.version, e.reason] for i, e in enumerate(entries, 1)]
    return table(["#", "now", "since", "how", "model", "run", "cv score", "version", "why"], rows)


def refusals_table(boards: Sequence[Leaderboard]) -> str:
    """Runs whose winner would have been promoted but was not approved: who or what refused it, and when."""
    rows = []
    for board in boards:
        decision = board.decision
        assert decision is not None and decision.approval is not None
        answer = decision.approval
        how = "timed out" if answer.timed_out else f"rejected by {answer.by}" if answer.asked else "not asked"
        score = "" if decision.challenger_score is None else f"{decision.metric} {decision.challenger_score:.4f}"
        rows.append([board.run_id, decision.challenger, score, how, answer.at or ""])
    return table(["run", "model", "cv score", "approval", "answered at"], rows)
