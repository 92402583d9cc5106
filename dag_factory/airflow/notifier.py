"""Notifications through Airflow's notifier mechanism: e-mail by the SMTP provider, JSON webhooks.

``FactoryNotifier`` is a ``BaseNotifier``: the DAG's ``on_failure_callback`` (a failed run),
the promote task's ``on_success_callback`` (a new champion) and the approval task (a request) call it. ``deliver`` is also what
``dag-factory rollback`` calls. Every channel is tried on its own; one that cannot be reached is
logged and skipped, so a notification never fails or holds up a run. Secrets come from Airflow
connections, resolved when a notification is sent (nothing is read at parse time).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from dag_factory.spec.schema import NotifyEvent, NotifySpec

if TYPE_CHECKING:
    from dag_factory.project import Project
    from dag_factory.render.notice import Notice
    from dag_factory.spec.schema import ExperimentSpec

log = logging.getLogger(__name__)


class FactoryNotifier(BaseNotifier):
    """Tell the spec's recipients about ``event`` of a DAG run of ``spec``."""

    def __init__(self, event: NotifyEvent, spec: ExperimentSpec, project: Project) -> None:
        super().__init__()
        self.event, self.spec, self.project = event, spec, project

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render (no template fields). Airflow 3.3 hands a DAG callback under ``dag.test()`` a
        SerializedDAG, which has no template environment, so the base class would fail before ``notify``."""

    def notify(self, context: Any) -> None:
        assert self.spec.notify is not None
        try:
            if self.event == "approval_request":  # called by the approval task itself, with its request
                from dag_factory.render.notice import approval_notice

                task = context["task"]
                notice = approval_notice(self.spec.experiment, str(context["run_id"]), task.subject, task.body or "")
            else:
                notice = self.notice(str(context["run_id"]), str(context.get("reason") or "the run failed"))
        except Exception as err:  # noqa: BLE001  a notification never fails the run
            log.warning("No %s notification for %s: its records could not be read (%s: %s)",
                        self.event, self.spec.experiment, type(err).__name__, err)
            return
        if notice is not None:
            deliver(notice, self.spec.notify)

    def notice(self, run_id: str, reason: str) -> Notice | None:
        """The notice of this event for run ``run_id``, from the run's records; None when there is nothing to say."""
        from dag_factory.artifacts.layout import RunFiles
        from dag_factory.artifacts.records import Leaderboard, StopReason
        from dag_factory.render.notice import failed_run_notice, new_champion_notice

        files = RunFiles.of(self.project.results_for(self.spec), self.spec.experiment, run_id)
        board = Leaderboard.read(files.leaderboard) if files.leaderboard.exists() else None
        if self.event == "new_champion":
            decision = board.decision if board is not None else None
            if decision is None or not decision.promoted or decision.repeated:
                return None  # the champion was kept: nothing new
            return new_champion_notice(self.spec.experiment, run_id, decision, str(files.report))
        stopped = StopReason.read(files.stop_reason).error if files.stop_reason.exists() else None
        return failed_run_notice(self.spec.experiment, run_id, reason, board, stopped)


def deliver(notice: Notice, settings: NotifySpec) -> list[str]:
    """Send ``notice`` by every channel of ``settings`` that wants its event; returns what could not be delivered."""
    if notice.event not in settings.events:
        return []
    failures = []
    channels = [(f"e-mail via connection {settings.email.conn_id}", lambda: _send_email(notice, settings))] \
        if settings.email is not None else []
    channels += [(f"webhook {conn_id}", lambda conn_id=conn_id: _post_webhook(notice, conn_id, settings.timeout_seconds))
                 for conn_id in settings.webhooks]
    for name, send in channels:
        try:
            send()
            log.info("Sent %s notification for %s by %s", notice.event, notice.experiment, name)
        except Exception as err:  # noqa: BLE001  logged, never raised: the run goes on
            failures.append(f"{name}: {type(err).__name__}: {err}")
            log.warning("Could not send the %s notification for %s by %s: %s: %s", notice.event,
                        notice.experiment, name, type(err).__name__, err)
    return failures


def _send_email(notice: Notice, settings: NotifySpec) -> None:
    """One e-mail through the SMTP provider's hook (server, login and sender from the connection)."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    assert settings.email is not None
    with SmtpHook(smtp_conn_id=settings.email.conn_id) as hook:
        hook.send_email_smtp(to=settings.email.to, subject=notice.subject, html_content=notice.html(),
                             from_email=hook.from_email or "dag-factory@localhost")


def _post_webhook(notice: Notice, conn_id: str, timeout: float) -> None:
    """One JSON POST to the URL in the connection's host; its password, if any, as a bearer token."""
    from airflow.sdk import BaseHook

    connection = BaseHook.get_connection(conn_id)
    url = connection.host or ""
    if "://" not in url:
        raise ValueError(f"connection {conn_id} has no URL in its host (e.g. https://hooks.example.com/...)")
    headers = {"Content-Type": "application/json"}
    if connection.password:
        headers["Authorization"] = f"Bearer {connection.password}"
    request = urllib.request.Request(url, data=json.dumps(notice.payload()).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310  the URL is the admin's
        response.read()
