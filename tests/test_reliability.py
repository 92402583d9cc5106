"""Model faults through real Airflow runs: each failing model fails alone, loudly, and loses nothing.

One DAG run trains seven models, five of them faulty: a scikit-learn estimator with an invalid
solver (Airflow's parse does not import scikit-learn, so the train task refuses it before fitting,
without a retry), a numerical error (retried once, as its entry asks), a model past the train
task's timeout, a misspelt hyperparameter, and a model whose first attempt fails (its retry
succeeds). A second run in which every model fails must keep the first run's champion. Faulty
estimators live in a small module on the path, allowed through DAG_FACTORY_ALLOWED_MODULES as a
user would. The exit codes of `dag-factory run` are read off both runs, and a third run is killed
while it trains.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, copy_project, fast_spec, run_dag, task_instances, write_experiment
from dag_factory.storage.files import manifest_problems, read_json
from dag_factory.artifacts.layout import best_dir

pytestmark = pytest.mark.airflow

FAULTY_MODULE = '''
"""Estimators that fail on purpose, for the fault-injection tests."""
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class _Wrapped(ClassifierMixin, BaseEstimator):
    def _fit(self, X, y):
        self.model_ = LogisticRegression(max_iter=2000).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)


class NumericalErrorClassifier(_Wrapped):
    def fit(self, X, y):
        with np.errstate(all="raise"):
            np.log(np.zeros(1))  # what a diverging fit meets: log of zero
        return self._fit(X, y)


class SlowClassifier(_Wrapped):
    def fit(self, X, y):
        time.sleep(120)
        return self._fit(X, y)


class FailsOnceClassifier(_Wrapped):
    def __init__(self, marker=""):
        self.marker = marker

    def fit(self, X, y):
        if not Path(self.marker).exists():
            Path(self.marker).touch()
            raise RuntimeError("transient failure on the first attempt")
        return self._fit(X, y)
'''

CATALOG = {
    "bad_solver": "estimator: sklearn.linear_model.LogisticRegression\nneeds_scaling: true\n"
                  "params: {solver: not_a_solver}\n",
    "numeric": "estimator: faulty_models.NumericalErrorClassifier\n",
    "slow": "estimator: faulty_models.SlowClassifier\n",
    "flaky": "estimator: faulty_models.FailsOnceClassifier\nneeds_scaling: true\nparams: {marker: MARKER}\n",
}

MODELS = """\
  - model: logistic_regression
  - model: random_forest
    params: {n_estimators: 20}
  - model: bad_solver
    retries: 1
  - model: numeric
    retries: 1
  - model: slow
  - model: logistic_regression
    name: typo
    params: {Cc: 1.0}
    retries: 2
  - model: flaky
    retries: 1
"""
ALL_FAIL = "  - model: bad_solver\n  - model: numeric\n"
FAULTY = ["bad_solver", "numeric", "slow", "typo"]
ERRORS = {
    "bad_solver": "ModelConfigError: model \"bad_solver\": params.solver: The 'solver' parameter of LogisticRegression "
                  "must be",
    "numeric": "FloatingPointError: divide by zero encountered in log",
    "slow": "model slow exceeded its time limit of 15s (timeout_minutes in the spec)",
    "typo": 'model "typo": params.Cc is not a parameter of LogisticRegression (did you mean "C"?)',
}


def spec_text(models: str) -> str:
    """The faults experiment: no retries unless a model sets them, no delay between tries, 15 s per model."""
    return fast_spec("faults", models) + "retries: 0\nretry_delay_seconds: 0\ntimeout_minutes: 0.25\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, airflow_db):
    """Run 1: seven models, four failing for good. Run 2: every model fails."""
    project = copy_project(tmp_path_factory.mktemp("faults") / "project")
    root = project.root
    (root / "lib").mkdir()
    (root / "lib" / "faulty_models.py").write_text(FAULTY_MODULE)
    for name, text in CATALOG.items():
        (project.models / f"{name}.yaml").write_text(text.replace("MARKER", str(root / "flaky.marker")))
    write_experiment(project, "broken", "experiment: broken\nmodels: [\n")  # must hide nothing
    write_experiment(project, "faults", spec_text(MODELS))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", str(root / "lib"))
        env.setenv("DAG_FACTORY_ALLOWED_MODULES", "faulty_models")
        first = run_dag(project, "faults")
        champion_files = {p.name: p.read_bytes() for p in best_dir(project.results, "faults").iterdir()}
        write_experiment(project, "faults", spec_text(ALL_FAIL))
        second = run_dag(project, "faults", force=True)
    return project, first, second, champion_files


def trains(db: Path, run_id: str) -> dict[str, dict]:
    """The mapped train task instances of a run, by model name."""
    return {r["rendered_map_index"]: r for r in task_instances(db, "faults", run_id) if r["task_id"] == "train"}


def states(db: Path, run_id: str) -> dict[str, str]:
    return {r["task_id"]: r["state"] for r in task_instances(db, "faults", run_id) if r["task_id"] != "train"}


def test_the_run_fails_visibly_but_select_and_promote_run_over_the_survivors(runs, airflow_db):
    project, first, _, _ = runs
    assert first.state == "failed"  # not a silent green
    assert states(airflow_db, first.run_id) == {"load_data": "success", "profile": "success", "preprocess": "success",
                                                "select": "success", "promote": "success", "report": "failed"}
    assert "4 of 7 model(s) failed: bad_solver, numeric, slow, typo" in (first.folder / "run.log").read_text()
    board = read_json(first.folder / "leaderboard.json")
    assert board["winner"] in ("logistic_regression", "random_forest", "flaky")
    assert board["decision"]["promoted"] is True


@pytest.mark.parametrize("model", FAULTY)
def test_a_failing_model_fails_only_its_task_and_is_listed_with_its_error(runs, airflow_db, model):
    project, first, _, _ = runs
    tis = trains(airflow_db, first.run_id)
    assert tis[model]["state"] == "failed"
    assert {n for n, ti in tis.items() if ti["state"] == "success"} == {"logistic_regression", "random_forest", "flaky"}
    row = next(r for r in read_json(first.folder / "leaderboard.json")["leaderboard"] if r["name"] == model)
    assert row["status"] == "failed" and ERRORS[model] in row["error"]
    folder = first.folder / "models" / model
    assert sorted(p.name for p in folder.iterdir()) == ["error.json"]
    for survivor in ("logistic_regression", "random_forest", "flaky"):  # the others' results are all there
        assert {"model.skops", "metrics.json"} <= {p.name for p in (first.folder / "models" / survivor).iterdir()}


def test_each_model_gets_its_own_retries_and_a_wrong_param_name_is_not_retried(runs, airflow_db):
    project, first, _, _ = runs
    tries = {n: ti["try_number"] for n, ti in trains(airflow_db, first.run_id).items()}
    assert tries == {"logistic_regression": 1, "random_forest": 1, "bad_solver": 1, "numeric": 2, "slow": 1,
                     "typo": 1, "flaky": 2}
    log = (first.folder / "run.log").read_text()
    assert "not retried: fix the spec or models/logistic_regression.yaml" in log
    assert "not retried: fix the spec or models/bad_solver.yaml" in log


def test_a_retried_model_keeps_no_trace_of_its_failed_attempt(runs):
    project, first, _, _ = runs
    folder = first.folder / "models"
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []  # no scratch folders
    flaky = sorted(p.name for p in (folder / "flaky").iterdir())
    assert "error.json" not in flaky and "metrics.json" in flaky
    row = next(r for r in read_json(first.folder / "leaderboard.json")["leaderboard"] if r["name"] == "flaky")
    assert row["status"] == "ok" and "error" not in row


def test_when_every_model_fails_nothing_is_promoted_and_the_champion_is_intact(runs, airflow_db):
    project, first, second, champion_files = runs
    assert second.state == "failed"
    assert states(airflow_db, second.run_id) == {"load_data": "success", "profile": "success",
                                                 "preprocess": "success", "select": "failed",
                                                 "promote": "upstream_failed", "report": "failed"}
    log = (second.folder / "run.log").read_text()
    assert re.search(r"nothing was promoted: every model failed: bad_solver: ModelConfigError: .*; "
                     r"numeric: FloatingPointError: divide by zero encountered in log", log)
    best = best_dir(project.results, "faults")
    assert {p.name: p.read_bytes() for p in best.iterdir()} == champion_files
    assert manifest_problems(best) == []
    assert read_json(best / "model_card.json")["run_id"] == first.run_id


def test_a_broken_spec_beside_it_hid_nothing(runs):
    project, first, _, _ = runs
    assert (project.experiments / "broken.yaml").exists()  # it sat in experiments/ during both runs
    assert "Import error" not in (first.folder / "run.log").read_text()
    assert (first.folder / "leaderboard.json").exists()  # the faults DAG was parsed and ran all the same


def test_stale_files_of_a_killed_attempt_are_never_taken_for_results(runs):
    """A SIGKILLed attempt leaves a scratch folder and an old error.json; the next attempt replaces both."""
    from dag_factory.spec.loader import load_catalog, load_experiment
    from dag_factory.storage.files import sha256_file
    from dag_factory.workflow import Run, train

    project, first, _, _ = runs
    catalog, _ = load_catalog(REPO / "models")
    spec = load_experiment(REPO / "experiments" / "breast_cancer.yaml", catalog)
    spec = spec.model_copy(update={"experiment": "faults", "cv": spec.cv.model_copy(update={"folds": 3, "repeats": 1})})
    models = first.folder / "models"
    (models / ".logistic_regression.partial").mkdir()
    (models / ".logistic_regression.partial" / "model.skops").write_text("half a model")
    (models / "logistic_regression" / "error.json").write_text('{"error": "stale"}')
    train(Run.of(spec, catalog, project.root, project.results, first.run_id), "logistic_regression")

    folder = models / "logistic_regression"
    assert not (models / ".logistic_regression.partial").exists()
    assert not (folder / "error.json").exists()
    assert read_json(folder / "metrics.json")["model_sha256"] == sha256_file(folder / "model.skops")


def test_no_default_password_and_login_stays_on():
    from dag_factory.airflow.standalone import server_environment, password_file
    from dag_factory.project import Project

    env = server_environment(Project(REPO), 8080, home="/tmp/airflow-home")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"  # login on
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(password_file("/tmp/airflow-home"))
    assert not [k for k in env if "PASSWORD" in k and not k.endswith("PASSWORDS_FILE")]
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in files if "passwords.json" in f]
    pattern = re.compile(r"(?i)all_admins\W+true|_AIRFLOW_WWW_USER_PASSWORD|AIRFLOW__\w*PASSWORD\b\W+\w|"
                         r"users\s+create\b.*--password")
    offenders = [f for f in files if not f.startswith("tests/") and (REPO / f).is_file()
                 and pattern.search((REPO / f).read_text(errors="ignore"))]
    assert offenders == []


def test_the_exit_code_says_whether_the_run_decided(runs):
    """`dag-factory run` exits 3 when some models failed but the run decided, 1 when nothing could be decided."""
    from dag_factory.steps.outcome import EXIT_DECIDED_WITH_FAILED_MODELS, EXIT_UNDECIDED, ending
    from evaluation_support import spec_from_text

    project, first, second, _ = runs
    decided = ending(spec_from_text(spec_text(MODELS)), first.files, first.state)
    assert decided.code == EXIT_DECIDED_WITH_FAILED_MODELS
    assert decided.line.startswith("DECIDED WITH FAILED MODELS: promoted (no champion yet); 4 of 7 model(s) failed: "
                                   "bad_solver, numeric, slow, typo")
    undecided = ending(spec_from_text(spec_text(ALL_FAIL)), second.files, second.state)
    assert undecided.code == EXIT_UNDECIDED
    assert undecided.line.startswith("NOT DECIDED: nothing was promoted: every model failed: bad_solver: ")


def _kill_every_process_of(root: int) -> None:
    """SIGKILL ``root`` and all its descendants, and wait until the kernel has torn them down.

    Airflow's supervisor puts each task process in a process group of its own, so killing the
    command's group alone would leave the training task running (and holding its folder's lock).
    """
    tree: set[int] = set()
    while new := (_descendants(root) | {root}) - tree:  # stopped first, so that few fork a child we miss
        _signal(new, signal.SIGSTOP)
        tree |= new
    _signal(tree, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while alive := [pid for pid in tree if _state(pid) not in (None, "Z", "X")]:
        assert time.monotonic() < deadline, f"processes of the killed run still alive: {alive}"
        time.sleep(0.1)


def _wait_until_unlocked(folder: Path, timeout: float = 60) -> None:
    """Wait until no process holds the lock a model's builder takes on its scratch folder."""
    import fcntl

    deadline = time.monotonic() + timeout
    handle = os.open(folder, os.O_RDONLY)
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return  # closing the handle releases it
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{folder} is still locked {timeout} s after the run was killed"
                time.sleep(0.2)
    finally:
        os.close(handle)


def _signal(pids: set[int], signal_number: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal_number)
        except ProcessLookupError:
            pass


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def test_a_killed_run_keeps_its_log_and_the_next_run_removes_what_it_left(runs):
    """`dag-factory run` killed (SIGKILL, every process) while a model trains: run.log is in the run folder."""
    from dag_factory.spec.loader import load_catalog, load_experiment
    from dag_factory.workflow import Run, load

    project, _, _, _ = runs
    path = write_experiment(project, "faults", spec_text("  - model: slow\n"))
    env = {**os.environ, "PYTHONPATH": str(project.root / "lib"), "DAG_FACTORY_ALLOWED_MODULES": "faulty_models"}
    command = [sys.executable, "-m", "dag_factory", "--project", str(project.root), "run", "faults", "--force"]
    child = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not (partial := next(project.results.glob("runs/faults/*/models/.slow.partial"), None)):
            assert child.poll() is None and time.monotonic() < deadline, "the run never started training"
            time.sleep(0.2)
    finally:
        _kill_every_process_of(child.pid)
        child.wait()
    folder = partial.parents[1]
    log = (folder / "run.log").read_text()
    assert "Loaded 569 rows" in log and "starting task_id=train" in log  # killed while the train task ran

    _wait_until_unlocked(partial)  # the next run comes later: the kernel has released what the killed run held
    an_hour_later = time.time() - 3600  # and a just-started scratch folder is left alone
    os.utime(partial, (an_hour_later, an_hour_later))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAG_FACTORY_ALLOWED_MODULES", "faulty_models")
        catalog = load_catalog(project.models)[0]
        spec = load_experiment(path, catalog, project_root=project.root)
        load(Run.of(spec, catalog, project.root, project.results, "the_next_run"))
    assert not partial.exists()
