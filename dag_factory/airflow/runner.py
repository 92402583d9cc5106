"""Run one experiment's DAG end to end through Airflow on this machine, no server needed.

``dag.test()`` runs a real DAG run against the metadata database (embedded SQLite in the
project's ``.airflow/`` by default). The child announces the run id before the run starts, and
the parent writes everything the run prints into ``run.log`` inside that run folder as it comes,
so a killed run keeps its log (on an object store, the log is uploaded when the parent ends).
The terminal gets one line per task (see ``progress``), or, with ``verbose``, all of it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NoReturn, Protocol, Self

from dag_factory.airflow.answers import Policy, answer_waiting_run
from dag_factory.airflow.in_process_api import serve_sdk_version_only
from dag_factory.airflow.progress import ERROR_LINE, TASK_LINE, ProgressPrinter, TaskAnnouncer, TaskEvent
from dag_factory.artifacts.layout import MODEL_METRICS, RunFiles
from dag_factory.artifacts.model_file import import_skops_first
from dag_factory.artifacts.records import ModelResult
from dag_factory.errors import DagFactoryError, RunFailed, SpecError
from dag_factory.project import Project
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.storage.files import write_text
from dag_factory.storage.location import StoragePath, is_local

#: The line the child prints before the DAG run starts, so the parent knows the run folder.
RUN_ID_LINE = "dag-factory run id: "
#: What dag.test() logs while a Human-in-the-loop task waits for an answer.
WAITING_FOR_INPUT = "Waiting for Human-in-the-loop input for tasks"
#: Lines of the child's output shown when it stops before a DAG run starts without saying why.
TAIL_LINES = 30
#: How often the run tries to record its answer before it stops the run instead of waiting for ever.
ANSWER_ATTEMPTS = 3


class ChildProcess(Protocol):
    """What the run needs of its child process: ``subprocess.Popen``'s output pipe, exit code, stop and wait."""

    stdout: IO[str] | None
    returncode: int | None

    def terminate(self) -> None: ...

    def wait(self) -> int | None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass
class RunOutcome:
    """What a finished local run left: its state, id and folder (on a disk or an object store)."""

    state: str
    run_id: str
    files: RunFiles

    @property
    def folder(self) -> StoragePath:
        return self.files.folder


def airflow_environment(project: Project) -> dict[str, str]:
    """Airflow settings for a local run: the project's dags/, its own home, no examples.

    DAGs start unpaused, whether ``dag-factory run`` or the UI's dag-processor records them first,
    so that a trigger from the UI or the REST API runs at once.
    """
    home = os.environ.get("AIRFLOW_HOME") or str(project.root / ".airflow")
    return {
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": str(project.dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "DAG_FACTORY_HOME": str(project.root),
    }


def start_child(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """A new Python running this module's ``child_main(args)``, its output (stdout and stderr) on one text pipe."""
    return subprocess.Popen([sys.executable, "-m", "dag_factory.airflow.runner", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)


def run_experiment(project: Project, experiment: str, conf: dict[str, Any] | None = None,
                   approval: Policy = "ask", verbose: bool = False,
                   start: Callable[[list[str], dict[str, str]], ChildProcess] = start_child) -> RunOutcome:
    """Run ``experiment`` in a child process and keep its whole log in the run folder.

    The terminal shows one line per task as it ends (all of Airflow's output with ``verbose``).
    A request for approval (spec ``promotion.approval: required``) is answered by ``approval``
    (see ``answers``): ``dag.test()`` would otherwise wait for it forever. ``start`` starts the child
    (the tests start it from a process that has already imported what it needs).
    """
    spec = _spec_of(project, experiment)
    results = _results_of(project, spec)
    env = {**os.environ, **airflow_environment(project)}
    with tempfile.TemporaryDirectory() as scratch:
        outcome_file = Path(scratch) / "outcome.json"
        args = [experiment, str(outcome_file), json.dumps(conf or {})]
        with RunLog(Path(scratch)) as log, start(args, env) as child:
            assert child.stdout is not None
            files: RunFiles | None = None
            run_id = ""
            progress = ProgressPrinter(sys.stdout, lambda model: _headline(files, model, spec),
                                       [] if spec is None else spec.model_names())
            answered, attempts, told = False, 0, False
            for line in child.stdout:
                if line.startswith(RUN_ID_LINE):
                    run_id = line.removeprefix(RUN_ID_LINE).strip()
                    files = RunFiles.of(results, experiment, run_id)
                    log.open(files.log)
                    if not verbose:
                        print(f"Running {experiment} through Airflow; its whole log: {files.log}", flush=True)
                    continue
                if line.startswith(TASK_LINE):
                    if not verbose:
                        progress.show(TaskEvent.parse(line))
                    continue
                if line.startswith(ERROR_LINE):
                    told = True
                    print(json.loads(line.removeprefix(ERROR_LINE)), file=sys.stderr)
                    continue
                if verbose:
                    sys.stdout.write(line)
                log.write(line)
                if WAITING_FOR_INPUT in line and run_id and not answered:
                    answered, note = answer_waiting_run(project, experiment, run_id, approval)
                    attempts += 1
                    sys.stdout.write(note)
                    log.write(note)
                    if not answered and attempts >= ANSWER_ATTEMPTS:  # dag.test() would wait for ever
                        child.terminate()
                        child.wait()
                        raise RunFailed(f"the run {run_id} of {experiment} waited for an approval that could "
                                        f"not be recorded ({note.strip()}); it was stopped, and the champion is "
                                        "untouched")
            progress.close()
        if not outcome_file.exists():
            if files is None and not told and not verbose:
                sys.stderr.write("".join(log.early[-TAIL_LINES:]))
            where = f"see {files.log}" if files else f"see {'the error' if told else 'the output'} above"
            raise DagFactoryError(f"the Airflow run of {experiment} ended (exit code {child.returncode}) before "
                                  f"it {'finished' if files else 'started a DAG run'}; {where}")
        outcome = json.loads(outcome_file.read_text())
    return RunOutcome(state=outcome["state"], run_id=outcome["run_id"],
                      files=RunFiles.of(results, experiment, outcome["run_id"]))


def _headline(files: RunFiles | None, model: str, spec: ExperimentSpec | None) -> str:
    """A trained model's CV score on the selection metric, from its metrics.json: 'CV roc_auc 0.9953 ± 0.0040'."""
    if files is None or spec is None or not (path := files.model(model) / MODEL_METRICS).exists():
        return ""
    metric = spec.selection.metric
    score = ModelResult.read(path).cv.get(metric)
    return "" if score is None else f"CV {metric} {score.mean:.4f} ± {score.std:.4f}"


class RunLog:
    """The run's ``run.log``, written line by line from the moment the run folder is known.

    Lines printed before that (the parse, the migration) are kept and written first. On a disk
    each line is flushed as it comes; an object store gets the whole log when the run ends, or
    when the parent is interrupted.
    """

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.early: list[str] = []
        self.target: StoragePath | None = None
        self.handle: IO[str] | None = None

    def open(self, target: StoragePath) -> None:
        """Start writing into ``target``: on a disk the file itself, elsewhere a local copy uploaded at the end."""
        self.target = target
        local = target if is_local(target) else self.scratch / "run.log"
        local.parent.mkdir(parents=True, exist_ok=True)
        self.handle = local.open("a", encoding="utf-8")
        for line in self.early:
            self.write(line)
        self.early = []

    def write(self, line: str) -> None:
        if self.handle is None:
            self.early.append(line)
            return
        self.handle.write(line)
        self.handle.flush()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is None:
            return
        self.handle.close()
        if self.target is not None and not is_local(self.target):
            write_text(self.target, (self.scratch / "run.log").read_text(encoding="utf-8"))


def _spec_of(project: Project, experiment: str) -> ExperimentSpec | None:
    """The experiment's spec, or None for the stand-in DAG of a broken spec."""
    try:
        return project.experiment(experiment)
    except SpecError:
        return None


def _results_of(project: Project, spec: ExperimentSpec | None) -> StoragePath:
    """The experiment's results root; the default one for a stand-in DAG of a broken spec (it has no spec)."""
    return project.results if spec is None else project.results_for(spec)


def migrate_database() -> None:
    """Create or upgrade the Airflow metadata database, unless it is already at this Airflow's schema.

    Airflow's own ``upgradedb`` costs 2-6 s even when there is nothing to do (it loads every
    migration script); one query for the schema revision tells the common case apart.
    """
    from airflow.utils.db import upgradedb

    if not _database_is_current():
        upgradedb()


def _database_is_current() -> bool:
    """Whether the metadata DB's schema revision is the head of the installed Airflow release."""
    from airflow import __version__
    from airflow.utils.db import _REVISION_HEADS_MAP, _get_current_revision
    from airflow.utils.session import create_session
    from packaging.version import Version
    from sqlalchemy.exc import SQLAlchemyError

    installed = Version(Version(__version__).base_version)
    releases = [release for release in _REVISION_HEADS_MAP if Version(release) <= installed]
    if not releases:
        return False
    head = _REVISION_HEADS_MAP[max(releases, key=Version)]
    try:
        with create_session() as session:
            return _get_current_revision(session) == head
    except SQLAlchemyError:
        return False  # no database yet, or not reachable: upgradedb says which


def live_scheduler_problem(experiment: str) -> str | None:
    """Why ``dag.test()`` must not start now: a live scheduler (``dag-factory ui``) shares this metadata DB.

    The scheduler would also queue the tasks of the run ``dag.test()`` creates (the DAG is unpaused),
    and each task would run twice, side by side, on the same run folder.
    """
    from airflow.jobs.job import most_recent_job

    scheduler = most_recent_job("SchedulerJob")
    if scheduler is None or not scheduler.is_alive():
        return None
    return (f"a scheduler is running on this project's Airflow database (on host {scheduler.hostname}: "
            f"`dag-factory ui`?), and it would run the tasks of this run a second time: trigger {experiment} "
            "in the UI (or `airflow dags trigger` with this AIRFLOW_HOME) while it runs, or stop it (Ctrl+C) "
            "and run again")


def _run_in_this_process(experiment: str, outcome_file: Path, conf: dict[str, Any]) -> int:
    """Child side: migrate the DB, parse dags/, run the DAG with dag.test() announcing each task, record the outcome."""
    import_skops_first()  # every run saves or checks a model
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    migrate_database()
    if problem := live_scheduler_problem(experiment):
        print(f"{ERROR_LINE}{json.dumps(problem)}", flush=True)
        return 2
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.get_dag(experiment)
    if dag is None:  # another file's import error (a broken spec, listed by spec_errors.py) hides no DAG
        for path, error in bag.import_errors.items():
            print(f"{ERROR_LINE}{json.dumps(f'Import error in {path}:{chr(10)}{error}')}", flush=True)
        message = f"No DAG {experiment} in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}; run `validate` to see why"
        print(f"{ERROR_LINE}{json.dumps(message)}", flush=True)
        return 2
    when = datetime.now(UTC)  # the run's logical date: its run id is known before the run starts
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=when, run_after=when)
    print(f"{RUN_ID_LINE}{run_id}", flush=True)
    announcer = TaskAnnouncer(experiment, run_id, list(dag.task_dict), sys.stdout)
    announcer.install()
    serve_sdk_version_only()
    dag_run = dag.test(run_after=when, logical_date=when, run_conf=conf)
    announcer.sweep()
    outcome_file.write_text(json.dumps({"state": str(dag_run.state), "run_id": dag_run.run_id}))
    return 0 if str(dag_run.state) == "success" else 1


def _exit_at_once(code: int) -> NoReturn:
    """End the child without Python's teardown, which takes longer than a skipped run's tasks (1.4 s here).

    Everything the run leaves is written when ``dag.test()`` returns: the DAG run's state and note
    in the metadata DB, its files, and the outcome file. Only the output buffers and log handlers
    are left to flush.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def child_main(args: list[str]) -> NoReturn:
    """The child's whole life: run the DAG (``args``: experiment, outcome file, conf as JSON), then exit at once."""
    _exit_at_once(_run_in_this_process(args[0], Path(args[1]), json.loads(args[2])))


if __name__ == "__main__":
    child_main(sys.argv[1:])
