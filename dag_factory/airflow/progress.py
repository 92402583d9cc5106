"""What `dag-factory run` shows while the DAG runs: one line per finished task and how far training is.

The child that runs ``dag.test()`` announces each task instance as it starts and as it ends, on a
line of its own (``TASK_LINE`` and JSON). The parent turns those into lines a person reads and
keeps all the rest of Airflow's output in the run's ``run.log``. Airflow 3.3's ``dag.test()``
has no callback per task, so the child wraps the function it runs each task with
(``airflow.sdk.definitions.dag._run_task``), and reads from the metadata DB the instances that
finished without running (skipped or failed upstream).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TextIO

#: The line a child prints for a task event; the JSON of a TaskEvent follows.
TASK_LINE = "dag-factory task: "
#: The line a child prints for an error that stops it before or outside the DAG run; a JSON string follows.
ERROR_LINE = "dag-factory error: "
#: The state of an event announced when a task instance starts.
STARTED = "running"


@dataclass(frozen=True)
class TaskEvent:
    """A task instance that started or reached a state: its name in the grid, try, time taken and error."""

    task: str
    state: str
    label: str = ""  # the model of a mapped train instance (its map index until Airflow renders the name)
    mapped: int = 0  # how many instances the task is mapped to; 0 when not mapped
    try_number: int = 1
    seconds: float | None = None
    detail: str = ""  # what a person needs under the line: the error of a failed try, the question of an approval

    def line(self) -> str:
        return f"{TASK_LINE}{json.dumps(asdict(self))}\n"

    @classmethod
    def parse(cls, line: str) -> TaskEvent:
        return cls(**json.loads(line.removeprefix(TASK_LINE)))

    @property
    def name(self) -> str:
        return f"{self.task}[{self.label}]" if self.mapped else self.task


class ProgressPrinter:
    """Parent side: one line per finished task instance; on a terminal, an updating line while one runs.

    ``headline(label)`` gives a trained model's headline metric (from the run folder), or ''. ``models``
    names the train instances by map index: Airflow names only those that ran.
    """

    def __init__(self, out: TextIO, headline: Callable[[str], str], models: Sequence[str]) -> None:
        self.out, self.headline, self.models = out, headline, list(models)
        self.tty = out.isatty()
        self.finished: dict[str, set[str]] = {}  # mapped task -> labels of its finished instances
        self.pending = False  # an updating line is on the screen

    def show(self, event: TaskEvent) -> None:
        if event.task == "train" and event.label.isdigit() and int(event.label) < len(self.models):
            event = replace(event, label=self.models[int(event.label)])
        if event.state == STARTED:
            if self.tty:
                self._write(f"{event.name}: running...{self._progress(event)}", end="")
            return
        if event.mapped and event.state not in ("up_for_retry", "up_for_reschedule"):
            self.finished.setdefault(event.task, set()).add(event.label)
        seconds = "" if event.seconds is None else f"{event.seconds:6.1f} s"
        detail = self.headline(event.label) if event.mapped and event.state == "success" else ""
        retry = f" (try {event.try_number})" if event.try_number > 1 or event.state == "up_for_retry" else ""
        line = f"{event.name:<32} {event.state + retry:<22} {seconds:>8}  {detail}".rstrip() + self._progress(event)
        self._write(line)
        if event.detail:
            self._write("    " + event.detail.replace("\n", "\n    "))

    def close(self) -> None:
        """End an updating line left on the screen (the run stopped while a task ran)."""
        if self.pending:
            self._write("")

    def _progress(self, event: TaskEvent) -> str:
        if not event.mapped:
            return ""
        done = len(self.finished.get(event.task, ()))
        what = "models" if event.task == "train" else "instances"
        return f"   [{done}/{event.mapped} {what} done]"

    def _write(self, text: str, end: str = "\n") -> None:
        clear = "\r\033[K" if self.pending else ""
        self.out.write(f"{clear}{text}{end}")
        self.out.flush()
        self.pending = end == ""


class TaskAnnouncer:
    """Child side: prints a TaskEvent for every task instance of one DAG run as it starts and ends."""

    def __init__(self, dag_id: str, run_id: str, order: Sequence[str], out: TextIO) -> None:
        self.dag_id, self.run_id, self.order, self.out = dag_id, run_id, list(order), out
        self.announced: set[tuple[str, int]] = set()

    def install(self) -> None:
        """Wrap the function ``dag.test()`` runs each task instance with."""
        from airflow.sdk.definitions import dag as sdk_dag

        run_task = sdk_dag._run_task

        def announced_run_task(*, ti: Any, task: Any, run_triggerer: bool = False) -> Any:
            self.sweep()  # instances the run finished without running them, in the order they finished
            self._emit(self._event(ti, STARTED))
            started = time.monotonic()
            result = None
            try:
                result = run_task(ti=ti, task=task, run_triggerer=run_triggerer)
                return result
            finally:
                ti.refresh_from_db()
                self._emit(self._event(ti, str(ti.state), time.monotonic() - started,
                                       _detail(ti, getattr(result, "error", None))))
                self.announced.add((ti.task_id, ti.map_index))

        sdk_dag._run_task = announced_run_task

    def sweep(self) -> None:
        """Announce the finished instances not announced yet: skipped or failed upstream without running."""
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import State
        from sqlalchemy import select

        with create_session() as session:
            rows = session.scalars(select(TaskInstance).where(
                TaskInstance.dag_id == self.dag_id, TaskInstance.run_id == self.run_id,
                TaskInstance.state.in_(list(State.finished)))).all()
            new = sorted((ti for ti in rows if (ti.task_id, ti.map_index) not in self.announced),
                         key=lambda ti: (self._rank(ti.task_id), ti.map_index))
            for ti in new:
                self._emit(self._event(ti, str(ti.state), session=session))
                self.announced.add((ti.task_id, ti.map_index))

    def _rank(self, task_id: str) -> int:
        return self.order.index(task_id) if task_id in self.order else len(self.order)

    def _event(self, ti: Any, state: str, seconds: float | None = None, detail: str = "",
               session: Any = None) -> TaskEvent:
        mapped = 0 if ti.map_index < 0 else self._instances(ti.task_id, session)
        label = ti.rendered_map_index or str(ti.map_index) if mapped else ""
        return TaskEvent(task=ti.task_id, state=state, label=label, mapped=mapped, try_number=max(ti.try_number, 1),
                         seconds=None if seconds is None else round(seconds, 1), detail=detail)

    def _instances(self, task_id: str, session: Any = None) -> int:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from sqlalchemy import func, select

        query = select(func.count()).select_from(TaskInstance).where(
            TaskInstance.dag_id == self.dag_id, TaskInstance.run_id == self.run_id, TaskInstance.task_id == task_id)
        if session is not None:
            return int(session.scalar(query))
        with create_session() as own:
            return int(own.scalar(query))

    def _emit(self, event: TaskEvent) -> None:
        self.out.write(event.line())
        self.out.flush()


def _detail(ti: Any, error: BaseException | None) -> str:
    """The error of a failed or retried try, or the question a task awaiting a person's answer asks."""
    if str(ti.state) == "awaiting_input":
        from airflow.models.hitl import HITLDetail
        from airflow.utils.session import create_session

        with create_session() as session:
            request = session.get(HITLDetail, ti.id)
            return "" if request is None else f"Waiting for approval: {request.subject}\n{request.body or ''}".strip()
    if error is None or str(ti.state) in ("success", "skipped"):
        return ""
    return f"{type(error).__name__}: {error}"
