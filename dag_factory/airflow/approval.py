"""Human approval of a new champion: Airflow's Human-in-the-loop operator between select and promote.

``ApprovalGate`` asks only when the run's winner would replace the champion; the request waits in
Airflow's Required actions (UI, REST API) until a person answers or ``promotion.timeout_hours``
passes, when the scheduler applies the default, Reject. Its answer travels to promote as an
``Approval``. ``answer`` records an answer in the metadata DB through Airflow's own REST handler
(the same checks and the same resume), for ``dag-factory approve|reject`` and ``dag-factory run``;
run as ``python -m dag_factory.airflow.approval`` it does so in a process with the project's Airflow settings.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator

if TYPE_CHECKING:
    from dag_factory.airflow.dag import StepContext
    from dag_factory.airflow.notifier import FactoryNotifier

TASK_ID = "approve"
APPROVE, REJECT = "Approve", "Reject"


class ApprovalGate(HITLOperator):
    """Ask a person whether this run's winner becomes the champion; Reject is the default on timeout."""

    def __init__(self, *, step_context: StepContext, notifiers: list[FactoryNotifier] | None = None,
                 **kwargs: Any) -> None:
        spec = step_context.spec
        super().__init__(task_id=TASK_ID, subject=f"Promote the winner of {spec.experiment}?",
                         options=[APPROVE, REJECT], defaults=[REJECT], multiple=False,
                         response_timeout=timedelta(hours=spec.promotion.timeout_hours), notifiers=notifiers, **kwargs)
        self.step_context = step_context

    def execute(self, context: Any) -> Any:
        from dag_factory import workflow
        from dag_factory.airflow.dag import run_of
        from dag_factory.artifacts.records import Approval

        request = workflow.approval_request(run_of(self.step_context, context))
        if request is None:
            self.log.info("Nothing to approve: this run's winner does not replace the champion")
            return Approval(asked=False).model_dump(mode="json")
        self.subject, self.body = request.subject, request.body
        self.log.info("Waiting for approval: %s\n%s", request.subject, request.body)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from dag_factory.artifacts.records import Approval

        answer = super().execute_complete(context=context, event=event)
        user = answer.get("responded_by_user") or {}
        at = answer.get("responded_at")
        approval = Approval(asked=True, approved=answer["chosen_options"] == [APPROVE], by=user.get("name"),
                            at=at.isoformat(timespec="seconds") if hasattr(at, "isoformat") else at,
                            timed_out=bool(event.get("timedout")))
        self.log.info("Approval answer: %s", approval.model_dump_json())
        return approval.model_dump(mode="json")


def answer(dag_id: str, run_id: str | None, approve: bool, by: str) -> str:
    """Record Approve or Reject for the approval task of ``run_id`` (default: the newest run waiting for one).

    Goes through Airflow's REST handler for Human-in-the-loop responses (called in-process, as user ``by``),
    so the answer is checked and the waiting task resumed exactly as when answered in the UI.
    """
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        if run_id is None:
            waiting = session.scalars(select(TaskInstance.run_id).where(
                TaskInstance.dag_id == dag_id, TaskInstance.task_id == TASK_ID,
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT).order_by(TaskInstance.start_date.desc())).all()
            if not waiting:
                raise LookupError(f"no run of {dag_id} is waiting for approval")
            run_id = waiting[0]
        # Imported only when there is a request to answer: the handler's module loads Airflow's whole REST API (3 s).
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from fastapi import HTTPException

        choice = APPROVE if approve else REJECT
        try:
            update_hitl_detail(dag_id=dag_id, dag_run_id=run_id, task_id=TASK_ID,
                               update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[choice]),
                               user=SimpleAuthManagerUser(username=by, role="USER"), session=session)
        except HTTPException as err:
            raise LookupError(f"run {run_id} of {dag_id}: {err.detail}") from None
    return f"{choice}: run {run_id} of {dag_id}, answered by {by}"


def main(argv: list[str]) -> int:
    """``python -m dag_factory.airflow.approval approve|reject DAG_ID RUN_ID|- BY``: print the outcome."""
    verb, dag_id, run_id, by = argv
    try:
        print(answer(dag_id, None if run_id == "-" else run_id, verb == "approve", by))
    except LookupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
