"""The question a reviewer answers before a new champion is installed (spec ``promotion.approval: required``).

Asked after selection, from the same comparison the promote step makes (``promote.would_promote``),
so that a person is asked only when the winner would replace the champion. The answer is
applied by the promote step, which decides again under the champion's lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import Leaderboard, MeanStd, RunMeta
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.steps.promote import would_promote
from dag_factory.storage.location import StoragePath


@dataclass(frozen=True)
class ApprovalRequest:
    """What the reviewer sees in Airflow's Required actions: a headline and a Markdown body."""

    subject: str
    body: str


def approval_request(spec: ExperimentSpec, results: StoragePath, files: RunFiles) -> ApprovalRequest | None:
    """The request for this run's winner, or None when there is nothing to approve."""
    board = Leaderboard.read(files.leaderboard)
    winner = board.winner_row
    if winner is None:
        return None
    comparison = would_promote(spec, results, files, RunMeta.read(files.meta), board, winner)
    if comparison is None:
        return None
    decision, champion = comparison
    metric = spec.selection.metric

    def cv(value: MeanStd | None) -> str:
        return "-" if value is None else f"{value.mean:.4f} ± {value.std:.4f}"

    rows = [f"| challenger | {winner.name} | {board.run_id} | {cv(winner.cv.get(metric))} | "
            f"{winner.test.get(metric, float('nan')):.4f} |"]
    if champion is not None:
        rows.append(f"| champion | {champion.model.name} | {champion.run_id} | {cv(champion.cv.get(metric))} | "
                    f"{champion.test.get(metric, float('nan')):.4f} |")
    body = "\n".join([
        f"**{winner.name}** would become the champion of `{spec.experiment}`"
        f"{'' if champion is None else f', replacing **{champion.model.name}**'}.",
        "",
        f"| | model | run | CV {metric} (mean ± std) | test {metric} |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Comparison: {decision.reason}.",
        f"Ranking rule: {board.ranking_rule}.",
        f"Report with every model and plot: `{files.report}` (written when the run ends).",
        "",
        f"**Approve** promotes it. **Reject**, or no answer within {spec.promotion.timeout_hours:g} h, keeps the "
        "champion; the leaderboard says which.",
    ])
    score = winner.cv[metric].mean if metric in winner.cv else float("nan")
    return ApprovalRequest(f"Promote {winner.name} (CV {metric} {score:.4f}) as champion of {spec.experiment}?", body)
