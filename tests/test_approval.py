"""Approval of a new champion (spec ``promotion.approval: required``).

The promote step's rule is tested with the real steps and no Airflow; two DAG runs through
Airflow (``dag.test()``, as `dag-factory run` makes them) check the Human-in-the-loop task:
approved by ``--approve``, and rejected by default when there is no terminal to ask.
"""

from __future__ import annotations

import sqlite3

import pytest

from conftest import fast_spec, task_instances, write_experiment
from dag_factory.airflow.runner import run_experiment
from dag_factory.artifacts.champion_store import current_card
from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import Approval, Leaderboard, RunMeta
from dag_factory.render.report import add_champion_pages
from dag_factory.steps import promote as promotion
from dag_factory.steps.approval import approval_request
from dag_factory.steps.outcome import EXIT_DECIDED, ending
from evaluation_support import private_copy
from test_promotion import EXPERIMENT, STRONG, WEAK, run_dir, trained  # noqa: F401

GATED = STRONG.model_copy(update={"promotion": STRONG.promotion.model_copy(update={"approval": "required",
                                                                                   "timeout_hours": 2})})


@pytest.fixture
def results(trained, tmp_path):  # noqa: F811
    """The weak run is the champion; the strong run would beat it."""
    return private_copy(trained, tmp_path / "results")


def promote_with(results, approval: Approval | None) -> dict:
    files = RunFiles(run_dir(results, "strong"))
    return promotion.promote(GATED, results, files, RunMeta.read(files.meta), add_pages=add_champion_pages,
                             approval=approval).model_dump()


@pytest.mark.parametrize(("approval", "sentence"), [
    (None, "not promoted: no approval was asked"),
    (Approval(asked=True, by="alice", at="2026-01-01T10:00:00+00:00"),
     "not promoted: rejected by alice at 2026-01-01T10:00:00+00:00; champion kept"),
    (Approval(asked=True, timed_out=True), "not promoted: no answer within 2h, so the request timed out"),
])
def test_without_an_approve_the_champion_is_kept_and_the_leaderboard_says_why(results, approval, sentence):
    decision = promote_with(results, approval)
    assert not decision["promoted"] and sentence in decision["reason"]
    assert "stump" in decision["reason"] or "beats" in decision["reason"]  # the comparison is kept in the sentence
    assert Leaderboard.read(RunFiles(run_dir(results, "strong")).leaderboard).decision.reason == decision["reason"]
    assert current_card(results, EXPERIMENT).run_id == "weak"


def test_an_approved_winner_is_promoted_and_the_card_names_the_reviewer(results):
    decision = promote_with(results, Approval(asked=True, approved=True, by="alice", at="2026-01-01T10:00:00+00:00"))
    assert decision["promoted"] and decision["reason"].endswith("approved by alice")
    card = current_card(results, EXPERIMENT)
    assert card.run_id == "strong" and card.reason.endswith("approved by alice")


def test_the_request_shows_challenger_and_champion_and_is_not_made_when_nothing_would_change(results):
    request = approval_request(GATED, results, RunFiles(run_dir(results, "strong")))
    assert request is not None and request.subject.startswith(f"Promote logistic_regression (CV roc_auc 0.9")
    assert "| challenger | logistic_regression | strong |" in request.body
    assert "| champion | stump | weak |" in request.body and "report.html" in request.body
    assert "no answer within 2 h, keeps the champion" in request.body
    assert approval_request(GATED, results, RunFiles(run_dir(results, "weak"))) is None  # already the champion


APPROVAL = "promotion: {approval: required, timeout_hours: 1}\n"


def hitl_row(db, dag_id: str, run_id: str) -> dict:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return dict(conn.execute(
            "SELECT h.subject, h.chosen_options, h.defaults, h.responded_by FROM hitl_detail h "
            "JOIN task_instance t ON t.id = h.ti_id WHERE t.dag_id = ? AND t.run_id = ?", (dag_id, run_id)).fetchone())


@pytest.mark.airflow
@pytest.mark.parametrize("policy", ["approve", "ask"])
def test_dag_factory_run_answers_the_request_approve_by_flag_and_reject_without_a_terminal(
        project, airflow_db, policy, capsys):
    name = f"gated_{policy}"
    write_experiment(project, name, fast_spec(name, "  - model: logistic_regression\n") + APPROVAL)
    outcome = run_experiment(project, name, {}, approval=policy)
    out = capsys.readouterr().out

    states = {t["task_id"]: t["state"] for t in task_instances(airflow_db, name, outcome.run_id)}
    assert states["approve"] == "success" and states["promote"] == "success"
    row = hitl_row(airflow_db, name, outcome.run_id)
    assert row["subject"].startswith(f"Promote logistic_regression (CV roc_auc 0.9") and "Reject" in row["defaults"]
    decision = Leaderboard.read(outcome.files.leaderboard).decision
    assert ending(project.experiment(name), outcome.files, outcome.state).code == EXIT_DECIDED
    if policy == "approve":
        assert '"Approve"' in row["chosen_options"] and "APPROVAL: Approve: run" in out and "(--approve)" in out
        assert decision.promoted and "approved by" in decision.reason and "(dag-factory run)" in decision.reason
        assert current_card(project.results, name).run_id == outcome.run_id
    else:
        assert '"Reject"' in row["chosen_options"] and "no terminal to ask and no --approve" in out
        assert not decision.promoted and "not promoted: rejected by" in decision.reason
        assert decision.approval.asked and not decision.approval.approved
        assert current_card(project.results, name) is None
