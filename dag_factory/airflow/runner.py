"""Run one experiment's DAG end to end through Airflow on this machine, no server needed.

``dag.test()`` runs a real DAG run against the metadata database (embedded SQLite in the
project's ``.airflow/`` by default). The parent process tees everything the run prints into
``run.log`` inside the run folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dag_factory.artifacts.layout import RunFiles
from dag_factory.errors import SpecError
from dag_factory.project import Project
from dag_factory.storage.files import write_text
from dag_factory.storage.location import StoragePath


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


def run_experiment(project: Project, experiment: str, conf: dict[str, Any] | None = None) -> RunOutcome:
    """Run ``experiment`` in a child process and keep its whole log in the run folder."""
    results = _results_of(project, experiment)
    env = {**os.environ, **airflow_environment(project)}
    with tempfile.TemporaryDirectory() as scratch:
        outcome_file = Path(scratch) / "outcome.json"
        log_file = Path(scratch) / "run.log"
        command = [sys.executable, "-m", "dag_factory.airflow.runner", experiment, str(outcome_file),
                   json.dumps(conf or {})]
        with log_file.open("w", encoding="utf-8") as log, subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                sys.stdout.write(line)
                log.write(line)
        if not outcome_file.exists():
            raise RuntimeError(f"the Airflow run of {experiment} ended (exit code {child.returncode}) before it "
                               f"started a DAG run; see the output above")
        outcome = json.loads(outcome_file.read_text())
        files = RunFiles.of(results, experiment, outcome["run_id"])
        write_text(files.log, log_file.read_text(encoding="utf-8"))
    return RunOutcome(state=outcome["state"], run_id=outcome["run_id"], files=files)


def _results_of(project: Project, experiment: str) -> StoragePath:
    """The experiment's results root; the default one for a stand-in DAG of a broken spec (it has no spec)."""
    try:
        return project.results_for(project.experiment(experiment))
    except SpecError:
        return project.results


def migrate_database() -> None:
    """Create or upgrade the Airflow metadata database (a no-op when it is current)."""
    from airflow.utils.db import upgradedb

    upgradedb()


def _run_in_this_process(experiment: str, outcome_file: Path, conf: dict[str, Any]) -> int:
    """Child side: migrate the DB, parse dags/, run the DAG with dag.test(), record the outcome."""
    from airflow.dag_processing.dagbag import DagBag

    migrate_database()
    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"Import error in {path}:\n{error}", file=sys.stderr)
        return 2
    dag = bag.get_dag(experiment)
    if dag is None:
        print(f"No DAG {experiment} in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}; run `validate` to see why",
              file=sys.stderr)
        return 2
    dag_run = dag.test(run_conf=conf)
    outcome_file.write_text(json.dumps({"state": str(dag_run.state), "run_id": dag_run.run_id}))
    return 0 if str(dag_run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(_run_in_this_process(sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])))
