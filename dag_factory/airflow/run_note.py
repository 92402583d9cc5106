"""Why a run trained nothing, in its DAG run's note: the grid shows it, whoever ran the DAG.

A task cannot write its DAG run's note in Airflow 3 (the Task SDK has no call for it). The step
that skips the run leaves the reason in an XCom, and this listener copies it into the note when
the run succeeds, in the process that decides the run's state: the scheduler, or ``dag.test()``
for ``dag-factory run``. It is registered by the ``dag_factory`` plugin (see ``plugin``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.listeners import hookimpl

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from sqlalchemy.orm import Session

#: The XCom key of the reason a run was skipped.
SKIP_REASON_KEY = "skip_reason"


@hookimpl
def on_dag_run_success(dag_run: DagRun, msg: str) -> None:
    """Note the skip reason of a run that trained nothing.

    The scheduler passes a run bound to the session that records its success (the note is committed
    with it); ``dag.test()`` passes a detached one, noted in a session of its own.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy.orm import object_session

    if (session := object_session(dag_run)) is not None:
        _note_skip_reason(session, dag_run)
        return
    with create_session() as session:
        if (attached := session.get(DagRun, dag_run.id)) is not None:
            _note_skip_reason(session, attached)


def _note_skip_reason(session: Session, dag_run: DagRun) -> None:
    """Copy the run's skip reason XCom, if it has one, into its note (a note someone wrote stays)."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    reason = session.scalar(select(XComModel.value).where(XComModel.dag_run_id == dag_run.id,
                                                          XComModel.key == SKIP_REASON_KEY).limit(1))
    if isinstance(reason, str) and reason and not dag_run.note:
        dag_run.note = reason
