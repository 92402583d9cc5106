"""Approval of a new champion (spec ``promotion.approval: required``).

The promote step's rule is tested with the real steps and no Airflow; two DAG runs through
Airflow (``dag.test()``, as `dag-factory run` makes them) check the Human-in-the-loop task:
approved by ``--approve``, and rejected by default when there is no terminal to ask. On a real
scheduler (test_scheduler.py), one request is approved by `dag-factory approve`, one rejected
through the REST API, and one times out (the scheduler applies the default, Reject).
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from conftest import fast_spec, task_instances, write_experiment
from dag_factory.cli import main
from dag_factory.airflow.runner import run_experiment
from dag_factory.artifacts.champion_store import current_card
from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import Approval, Leaderboard, RunMeta
from dag_factory.render.report import add_champion_pages
from dag_factory.steps import promote as promotion
from dag_factory.steps.approval import approval_request
from dag_factory.steps.outcome import EXIT_DECIDED, ending
from evaluation_support import private_copy
from listeners import http_listener, wait_for
from warm_runner import WarmChild
from test_promotion import EXPERIMENT, STRONG, run_dir, trained  # noqa: F401  (trained: a fixture)

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
    assert request is not None and request.subject.startswith("Promote logistic_regression (CV roc_auc 0.9")
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
        project, airflow_db, policy, capsys, monkeypatch):
    name = f"gated_{policy}"
    notify = "notify: {webhooks: [hook], events: [approval_request]}\n"
    write_experiment(project, name, fast_spec(name, "  - model: logistic_regression\n") + APPROVAL + notify)
    with http_listener() as (url, posts):
        monkeypatch.setenv("AIRFLOW_CONN_HOOK", json.dumps({"conn_type": "http", "host": url}))
        outcome = run_experiment(project, name, {}, approval=policy, start=WarmChild)
        wait_for(posts, 1)
    out = capsys.readouterr().out
    request = posts[0]["json"]  # the approval_request notification, sent by the approve task
    assert request["event"] == "approval_request" and request["run_id"] == outcome.run_id
    assert "| challenger | logistic_regression |" in request["text"] and f"dag-factory approve|reject {name}" in \
        request["text"]

    states = {t["task_id"]: t["state"] for t in task_instances(airflow_db, name, outcome.run_id)}
    assert states["approve"] == "success" and states["promote"] == "success"
    row = hitl_row(airflow_db, name, outcome.run_id)
    assert row["subject"].startswith("Promote logistic_regression (CV roc_auc 0.9") and "Reject" in row["defaults"]
    decision = Leaderboard.read(outcome.files.leaderboard).decision
    assert ending(project.experiment(name), outcome.files, outcome.state).code == EXIT_DECIDED
    if policy == "approve":
        assert '"Approve"' in row["chosen_options"] and "APPROVAL: Approve: run" in out and "(--approve)" in out
        assert decision.promoted and "approved by" in decision.reason and "(dag-factory run)" in decision.reason
        assert current_card(project.results, name).run_id == outcome.run_id
    else:
        assert '"Reject"' in row["chosen_options"] and "no terminal to ask and no --approve" in out
        assert out.index("| challenger | logistic_regression |") < out.index("APPROVAL: Reject")  # the request first
        assert not decision.promoted and "not promoted: rejected by" in decision.reason
        assert decision.approval.asked and not decision.approval.approved
        assert current_card(project.results, name) is None


def test_the_history_command_lists_winners_that_were_not_approved(results, project, capsys):
    timed_out = Approval(asked=True, timed_out=True, at="2026-01-02T10:00:00+00:00")
    write_experiment(project, EXPERIMENT, fast_spec(EXPERIMENT))
    (project.root / "results").rmdir()
    private_copy(results, project.root / "results")
    files = RunFiles(run_dir(project.root / "results", "strong"))
    promotion.promote(GATED, project.root / "results", files, RunMeta.read(files.meta), approval=timed_out)

    assert main(["--project", str(project.root), "history", EXPERIMENT]) == 0
    out = capsys.readouterr().out
    assert " stump " in out  # the champion, still the weak run
    refused = out.split("Not promoted for want of an approval:\n")[1].splitlines()
    assert refused[0].split() == ["run", "model", "cv", "score", "approval", "answered", "at"]
    assert refused[2].split()[:2] == ["strong", "logistic_regression"] and "timed out" in refused[2]


@pytest.mark.airflow
def test_approve_when_no_run_waits_says_so_and_exits_2(project, airflow_db, capsys):
    write_experiment(project, "gated_idle", fast_spec("gated_idle", "  - model: logistic_regression\n") + APPROVAL)
    assert main(["--project", str(project.root), "approve", "gated_idle"]) == 2
    assert capsys.readouterr().err.strip() == "error: no run of gated_idle is waiting for approval"
    assert main(["--project", str(project.root), "reject", "gated_idle", "--run", "manual__nope"]) == 2
    assert "run manual__nope of gated_idle: The Task Instance with dag_id: `gated_idle`" in capsys.readouterr().err


@pytest.mark.airflow
def test_on_a_terminal_dag_factory_run_asks_and_a_yes_promotes(project, airflow_db):
    import os
    import pty
    import select
    import subprocess
    import sys

    write_experiment(project, "gated_tty", fast_spec("gated_tty", "  - model: logistic_regression\n") + APPROVAL)
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "dag_factory", "--project", str(project.root), "run", "gated_tty"]
    cli = subprocess.Popen(command, stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    os.close(terminal)
    output, answered, deadline = b"", False, time.monotonic() + 400
    try:
        while time.monotonic() < deadline:  # the prompt ends without a newline: read what comes, as it comes
            ready, _, _ = select.select([cli.stdout], [], [], 1)
            chunk = os.read(cli.stdout.fileno(), 65536) if ready else b""
            if ready and not chunk:
                break  # the command ended
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(controller, b"y\n")
                answered = True
        assert cli.wait(timeout=30) == 0, output.decode()[-3000:]
    finally:
        if cli.poll() is None:
            cli.kill()
        os.close(controller)
    text = output.decode()
    assert answered and "(answered at the prompt)" in text and "APPROVAL: Approve: run" in text
    assert "DECIDED: promoted (no champion yet; approved by" in text
