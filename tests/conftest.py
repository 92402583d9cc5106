"""Shared fixtures: a throw-away copy of the project and a migrated Airflow metadata DB.

Airflow reads its settings when first imported, so its home is set here, before any test
module imports it. Every test works on a copy of the project in a temporary folder; the
checkout's own results/ and .airflow/ are never touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="dag-factory-tests-airflow-"))
os.environ["AIRFLOW_HOME"] = str(AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
# py4j logs "Closing down clientserver connection" from a finalizer at the worker's exit, into a stream
# pytest has closed by then: a "Logging error" traceback in the output, not a failure.
logging.getLogger("py4j").setLevel(logging.WARNING)
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # the MLflow client would report usage to the internet
# Test data files live in temporary folders, outside the test projects: a data root, as a user would set it.
os.environ["DAG_FACTORY_DATA_ROOTS"] = tempfile.gettempdir()
# Spark's JVMs in the tests (local sessions; the Connect server adds the same options): the client JIT compiler and
# a one-thread garbage collector, and few shuffle partitions for the tests' small tables. Spark's own defaults
# spend about a third more CPU on these short runs of small data; what a query returns does not change.
SPARK_TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
os.environ["PYSPARK_SUBMIT_ARGS"] = (f'--driver-java-options "{SPARK_TEST_JAVA_OPTIONS}" '
                                     "--conf spark.sql.shuffle.partitions=4 pyspark-shell")
for variable in ("DAG_FACTORY_HOME", "DAG_FACTORY_RESULTS", "DAG_FACTORY_EXPERIMENTS", "DAG_FACTORY_MODELS"):
    os.environ.pop(variable, None)

from dag_factory.project import Project  # noqa: E402  (after the Airflow settings above)
from dag_factory.airflow.runner import RunOutcome, run_experiment  # noqa: E402
from warm_runner import WarmChild  # noqa: E402


#: The files that start a real Airflow deployment or many DAG runs, longest first (pytest --durations).
#: They are handed out first (make test: one file per worker, in this order: --no-loadscope-reorder), so that
#: parallel workers finish together.
LONGEST_FIRST = ("test_scheduler.py", "test_spark_connect.py", "test_spark_engine.py", "test_e2e.py",
                 "test_object_storage.py", "test_celery.py", "test_tracking.py", "test_approval.py",
                 "test_data_sources.py", "test_reliability.py", "test_spark_airflow.py", "test_promotion.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the longest files first; the order within a file, and of every other file, stays."""
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB shared by the session's DAG runs."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env={**os.environ})
    return AIRFLOW_HOME / "airflow.db"


def copy_project(root: Path, experiments: bool = True) -> Project:
    """A copy at ``root`` of the checkout's dags/, models/ and (unless not wanted: an empty folder)
    experiments/, with its own empty results/."""
    for folder in ("dags", "models", "experiments") if experiments else ("dags", "models"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "experiments").mkdir(exist_ok=True)
    (root / "results").mkdir()
    return Project(root)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A copy of the checkout's dags/, models/ and experiments/ with its own empty results/."""
    return copy_project(tmp_path / "project")


def write_experiment(project: Project, name: str, text: str) -> Path:
    """Add (or replace) experiments/<name>.yaml in a test project."""
    path = project.experiments / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def no_comparison_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports without their comparison charts, for the SIGKILL loops: drawing them took about 70 % of a loop.

    The charts are PNG bytes drawn in memory into report.html, so every file operation under test stays.
    """
    from dag_factory.render import report

    monkeypatch.setattr(report, "comparison_plots", lambda board, models_dir: {})


def with_fewer_cv_repeats(project: Project, experiment: str = "breast_cancer", repeats: int = 2) -> None:
    """A shipped spec with fewer CV repeats: for tests of where and how tasks run, not of the CV protocol
    (the shipped spec runs whole in test_e2e)."""
    path = project.experiments / f"{experiment}.yaml"
    text = path.read_text(encoding="utf-8")
    assert "repeats: 10," in text, "the shipped spec's cv changed: update this helper"
    path.write_text(text.replace("repeats: 10,", f"repeats: {repeats},"), encoding="utf-8")


def run_dag(project: Project, experiment: str, **conf: Any) -> RunOutcome:
    """Run an experiment's DAG through Airflow (dag.test) as `dag-factory run` does, its child forked warm."""
    return run_experiment(project, experiment, conf, start=WarmChild)


def task_instances(db: Path, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Task instances of one DAG run, read from Airflow's metadata DB."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT task_id, map_index, rendered_map_index, state, try_number FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? ORDER BY task_id, map_index",
            (dag_id, run_id),
        ).fetchall()
    return [dict(r) for r in rows]


FAST_SPEC = """\
experiment: {name}
description: A small, quick experiment for tests.
data:
  source: sklearn:breast_cancer
  positive_class: malignant
cv: {{folds: 3, repeats: 1, seed: 1}}
models:
{models}
"""


def fast_spec(name: str, models: str = "  - model: logistic_regression\n  - model: random_forest\n    params: {n_estimators: 20}\n") -> str:
    """Spec text of a fast two-model breast cancer experiment called ``name``."""
    return FAST_SPEC.format(name=name, models=models)
