"""Run one experiment's DAG end to end through Airflow on this machine, no server needed.

``dag.test()`` runs a real DAG run against the metadata database (embedded SQLite in the
project's ``.airflow/`` by default). The child announces the run id before the run starts, and
the parent tees everything the run prints into ``run.log`` inside that run folder as it comes,
so a killed run keeps its log (on an object store, the log is uploaded when the parent ends).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from dag_factory.airflow.answers import Policy, answer_waiting_run
from dag_factory.artifacts.layout import RunFiles
from dag_factory.errors import RunFailed, SpecError
from dag_factory.project import Project
from dag_factory.storage.files import write_text
from dag_factory.storage.location import StoragePath, is_local

#: The line the child prints before the DAG run starts, so the parent knows the run folder.
RUN_ID_LINE = "dag-factory run id: "
#: What dag.test() logs while a Human-in-the-loop task waits for an answer.
WAITING_FOR_INPUT = "Waiting for Human-in-the-loop input for tasks"
#: How often the run tries to record its answer before it stops the run instead of waiting for ever.
ANSWER_ATTEMPTS = 3


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
    """Airflow settings for a local run: the project's dags/, its own home, no examples."""
    home = os.environ.get("AIRFLOW_HOME") or str(project.root / ".airflow")
    return {
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": str(project.dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "DAG_FACTORY_HOME": str(project.root),
    }


def run_experiment(project: Project, experiment: str, conf: dict[str, Any] | None = None,
                   approval: Policy = "ask") -> RunOutcome:
    """Run ``experiment`` in a child process and keep its whole log in the run folder.

    A request for approval (spec ``promotion.approval: required``) is answered by ``approval``
    (see ``answers``): ``dag.test()`` would otherwise wait for it forever.
    """
    results = _results_of(project, experiment)
    env = {**os.environ, **airflow_environment(project)}
    with tempfile.TemporaryDirectory() as scratch:
        outcome_file = Path(scratch) / "outcome.json"
        command = [sys.executable, "-m", "dag_factory.airflow.runner", experiment, str(outcome_file),
                   json.dumps(conf or {})]
        with RunLog(Path(scratch)) as log, subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as child:
            assert child.stdout is not None
            run_id, answered, attempts = None, False, 0
            for line in child.stdout:
                if line.startswith(RUN_ID_LINE):
                    run_id = line.removeprefix(RUN_ID_LINE).strip()
                    log.open(RunFiles.of(results, experiment, run_id).log)
                    continue
                sys.stdout.write(line)
                log.write(line)
                if WAITING_FOR_INPUT in line and run_id is not None and not answered:
                    answered, note = answer_waiting_run(project, experiment, run_id, approval)
                    attempts += 1
                    sys.stdout.write(note)
                    log.write(note)
                    if not answered and attempts >= ANSWER_ATTEMPTS:  # dag.test() would wait for ever
                        child.terminate()
                        child.wait()
                        raise RunFailed(f"the run {run_id} of {experiment} waited for an approval that could not be "
                                        f"recorded ({note.strip()}); it was stopped, and the champion is untouched")
        if not outcome_file.exists():
            raise RuntimeError(f"the Airflow run of {experiment} ended (exit code {child.returncode}) before it "
                               f"started a DAG run; see the output above")
        outcome = json.loads(outcome_file.read_text())
    return RunOutcome(state=outcome["state"], run_id=outcome["run_id"],
                      files=RunFiles.of(results, experiment, outcome["run_id"]))


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


def _results_of(project: Project, experiment: str) -> StoragePath:
    """The experiment's results root; the default one for a stand-in DAG of a broken spec (it has no spec)."""
    try:
        return project.results_for(project.experiment(experiment))
    except SpecError:
        return project.results


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


def _run_in_this_process(experiment: str, outcome_file: Path, conf: dict[str, Any]) -> int:
    """Child side: migrate the DB, parse dags/, run the DAG with dag.test(), record the outcome."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    migrate_database()
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.get_dag(experiment)
    if dag is None:  # another file's import error (a broken spec, listed by spec_errors.py) hides no DAG
        for path, error in bag.import_errors.items():
            print(f"Import error in {path}:\n{error}", file=sys.stderr)
        print(f"No DAG {experiment} in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}; run `validate` to see why",
              file=sys.stderr)
        return 2
    when = datetime.now(UTC)  # the run's logical date: its run id is known before the run starts
    print(f"{RUN_ID_LINE}{DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=when, run_after=when)}",
          flush=True)
    dag_run = dag.test(run_after=when, logical_date=when, run_conf=conf)
    outcome_file.write_text(json.dumps({"state": str(dag_run.state), "run_id": dag_run.run_id}))
    return 0 if str(dag_run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(_run_in_this_process(sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])))
