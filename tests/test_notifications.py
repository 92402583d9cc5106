"""Notifications: real SMTP and HTTP servers on 127.0.0.1 receive them; a dead endpoint fails nothing.

The delivery tests call the notifier's ``deliver`` directly (no DAG run); one DAG run through
Airflow checks that the DAG's callbacks send a new champion and a failed run, with a dead
webhook among the channels.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from conftest import fast_spec, run_dag, write_experiment
from dag_factory.airflow.notifier import deliver
from dag_factory.artifacts.records import Decision
from dag_factory.errors import SpecError
from dag_factory.render.notice import new_champion_notice
from dag_factory.spec.schema import NotifySpec
from dag_factory.steps.outcome import EXIT_DECIDED_WITH_FAILED_MODELS, ending
from listeners import free_port, http_listener, smtp_listener, wait_for

DECISION = Decision(promoted=True, reason="no champion yet", metric="roc_auc", challenger="logistic_regression",
                    challenger_score=0.9958, path="/results/best/.versions/demo/v1")


def smtp_connection(port: int) -> str:
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                       "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "factory@example.com",
                                 "timeout": 5, "retry_limit": 0}})


def http_connection(url: str, token: str | None = None) -> str:
    return json.dumps({"conn_type": "http", "host": url, **({"password": token} if token else {})})


def test_a_notice_reaches_the_smtp_server_and_the_webhook_and_a_dead_one_is_only_logged(monkeypatch, caplog):
    notice = new_champion_notice("demo", "manual__1", DECISION, "/results/runs/demo/manual__1/report.html")
    with smtp_listener() as (port, mails), http_listener() as (url, posts):
        monkeypatch.setenv("AIRFLOW_CONN_MAIL", smtp_connection(port))
        monkeypatch.setenv("AIRFLOW_CONN_HOOK", http_connection(url, token="s3cret"))
        monkeypatch.setenv("AIRFLOW_CONN_DEAD_HOOK", http_connection(f"http://127.0.0.1:{free_port()}/hook"))
        settings = NotifySpec(email={"to": ["ml@example.com"], "conn_id": "mail"}, webhooks=["dead_hook", "hook"],
                              timeout_seconds=5)
        failures = deliver(notice, settings)
        wait_for(mails, 1)
        wait_for(posts, 1)

    assert len(failures) == 1 and failures[0].startswith("webhook dead_hook: URLError"), failures
    assert "Could not send the new_champion notification for demo by webhook dead_hook" in caplog.text
    mail = mails[0]
    assert mail["Subject"] == "[dag-factory] demo: new champion logistic_regression (CV roc_auc 0.9958)"
    assert mail["From"] == "factory@example.com" and mail["X-Envelope-To"] == "ml@example.com"
    body = next(part for part in mail.walk() if part.get_content_type() == "text/html").get_payload(decode=True)
    assert b"Why: no champion yet" in body and b"report.html" in body
    post = posts[0]
    assert post["path"] == "/hook" and post["headers"]["Authorization"] == "Bearer s3cret"
    assert post["json"]["event"] == "new_champion" and post["json"]["text"].startswith(mail["Subject"])
    assert post["json"]["decision"]["challenger"] == "logistic_regression"


def test_an_smtp_server_that_is_down_is_logged_and_an_unwanted_event_is_not_sent(monkeypatch):
    notice = new_champion_notice("demo", "manual__1", DECISION, None)
    monkeypatch.setenv("AIRFLOW_CONN_MAIL", smtp_connection(free_port()))
    settings = NotifySpec(email={"to": ["ml@example.com"], "conn_id": "mail"})
    failures = deliver(notice, settings)
    assert len(failures) == 1 and failures[0].startswith("e-mail via connection mail: ConnectionRefusedError")
    assert deliver(notice, settings.model_copy(update={"events": ["failed_run"]})) == []


@pytest.mark.parametrize(("notify", "sentence"), [
    ({"events": ["failed_run"]}, "notify names no channel"),
    ({"email": {"to": ["not an address"]}}, "should match pattern"),
    ({"webhooks": ["x"], "events": ["new_champions"]}, "'new_champion', 'rollback' or 'approval_request'"),
])
def test_a_bad_notify_section_is_refused(notify, sentence):
    with pytest.raises(ValidationError, match=sentence):
        NotifySpec.model_validate(notify)


NOTIFY = """\
notify:
  email: {to: [ml-team@example.com], conn_id: mail}
  webhooks: [dead_hook, hook]
  timeout_seconds: 5
"""


@pytest.mark.airflow
def test_a_dag_run_notifies_its_new_champion_and_its_failure_and_a_dead_webhook_fails_nothing(
        project, airflow_db, monkeypatch):
    (project.models / "bad_solver.yaml").write_text(
        "estimator: sklearn.linear_model.LogisticRegression\nneeds_scaling: true\nparams: {solver: not_a_solver}\n")
    write_experiment(project, "noisy", fast_spec("noisy", "  - model: logistic_regression\n  - model: bad_solver\n"
                                                          "    retries: 0\n") + NOTIFY)
    with smtp_listener() as (port, mails), http_listener() as (url, posts):
        monkeypatch.setenv("AIRFLOW_CONN_MAIL", smtp_connection(port))
        monkeypatch.setenv("AIRFLOW_CONN_HOOK", http_connection(url))
        monkeypatch.setenv("AIRFLOW_CONN_DEAD_HOOK", http_connection(f"http://127.0.0.1:{free_port()}/hook"))
        outcome = run_dag(project, "noisy")
        wait_for(mails, 2)
        wait_for(posts, 2)

    from dag_factory.artifacts.records import Leaderboard

    spec = project.experiment("noisy")
    assert outcome.state == "failed"
    assert ending(spec, outcome.files, outcome.state).code == EXIT_DECIDED_WITH_FAILED_MODELS  # the dead hook changed nothing
    assert Leaderboard.read(outcome.files.leaderboard).decision.promoted
    subjects = sorted(m["Subject"] for m in mails)
    assert subjects[0].startswith("[dag-factory] noisy: new champion logistic_regression (CV roc_auc ")
    assert subjects[1] == f"[dag-factory] noisy: run {outcome.run_id} failed"
    events = {p["json"]["event"]: p["json"] for p in posts}
    assert events["failed_run"]["failed_models"] == ["bad_solver"]
    assert events["new_champion"]["run_id"] == outcome.run_id
    log = outcome.files.log.read_text()
    assert "Could not send the new_champion notification for noisy by webhook dead_hook" in log


def test_a_project_wide_notify_yaml_is_the_default_of_every_spec_without_its_own(project):
    write_experiment(project, "quiet", fast_spec("quiet"))
    write_experiment(project, "own", fast_spec("own") + "notify: {webhooks: [own_hook]}\n")
    (project.root / "notify.yaml").write_text("webhooks: [team_hook]\nevents: [failed_run]\n")
    assert project.experiment("quiet").notify.webhooks == ["team_hook"]
    assert project.experiment("quiet").notify.events == ["failed_run"]
    assert project.experiment("own").notify.webhooks == ["own_hook"]

    (project.root / "notify.yaml").write_text("webhooks: [team_hook]\nevent: [failed_run]\n")
    with pytest.raises(SpecError) as refused:
        project.experiment("quiet")
    assert refused.value.path.endswith("notify.yaml")
    assert 'line 2' in str(refused.value) and 'unknown key "event" (did you mean "events"?)' in str(refused.value)
