"""The words of a notification: a subject, a few lines of text, and the same facts as JSON for a webhook.

One builder per event, from the run's own records, so that an e-mail, a chat message and the
leaderboard never tell different stories. Delivery is the Airflow layer's job (``airflow.notifier``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from dag_factory.artifacts.records import Decision, HistoryEntry, Leaderboard


@dataclass(frozen=True)
class Notice:
    """One notification, ready for any channel."""

    event: str
    experiment: str
    subject: str
    lines: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join([self.subject, *self.lines])

    def html(self) -> str:
        """The body of an e-mail: the text, escaped, in a <pre> block."""
        return f"<pre>{html.escape(self.text)}</pre>"

    def payload(self) -> dict[str, Any]:
        """The JSON body of a webhook: 'text' for chat tools, then every fact by name."""
        return {"text": self.text, "event": self.event, "experiment": self.experiment, "subject": self.subject,
                **self.details}


def new_champion_notice(experiment: str, run_id: str, decision: Decision, report: str | None) -> Notice:
    """A run promoted a new champion."""
    score = "" if decision.challenger_score is None else f" (CV {decision.metric} {decision.challenger_score:.4f})"
    lines = [f"Run: {run_id}", f"Why: {decision.reason}",
             f"Previous champion: {decision.champion or 'none'}", f"Champion files: {decision.path}"]
    if report:
        lines.append(f"Report: {report}")
    return Notice("new_champion", experiment, f"[dag-factory] {experiment}: new champion {decision.challenger}{score}",
                  lines, {"run_id": run_id, "decision": decision.model_dump(mode="json"), "report": report})


def failed_run_notice(experiment: str, run_id: str, reason: str, board: Leaderboard | None,
                      stopped: str | None) -> Notice:
    """A DAG run ended failed: why, which models failed, and what it decided about the champion."""
    lines = [f"Run: {run_id}", f"Airflow: {reason}"]
    if stopped:
        lines.append(f"Stopped: {stopped}")
    if board is not None and board.failed:
        lines.append(f"Failed models: {', '.join(board.failed)}")
    decision = board.decision if board is not None else None
    lines.append(f"Champion: {'promoted' if decision.promoted else 'kept'} ({decision.reason})" if decision
                 else "Champion: untouched (no decision)")
    return Notice("failed_run", experiment, f"[dag-factory] {experiment}: run {run_id} failed", lines,
                  {"run_id": run_id, "reason": reason, "stopped": stopped,
                   "failed_models": board.failed if board is not None else [],
                   "decision": decision.model_dump(mode="json") if decision else None})


def rollback_notice(experiment: str, entry: HistoryEntry) -> Notice:
    """Someone rolled the champion back."""
    return Notice("rollback", experiment,
                  f"[dag-factory] {experiment}: champion rolled back to {entry.model} from run {entry.run_id}",
                  [f"Why: {entry.reason}", f"CV {entry.metric}: {entry.score:.4f}", f"Version: {entry.version}"],
                  {"run_id": entry.run_id, "entry": entry.model_dump(mode="json")})


def approval_notice(experiment: str, run_id: str, subject: str, body: str) -> Notice:
    """A new champion waits for a person's approval (the request as Airflow's Required actions shows it)."""
    return Notice("approval_request", experiment, f"[dag-factory] {experiment}: approval needed: {subject}",
                  [f"Run: {run_id}", "", body, "",
                   f"Answer in Airflow (Required actions) or: dag-factory approve|reject {experiment} --run '{run_id}'"],
                  {"run_id": run_id, "request": subject})
