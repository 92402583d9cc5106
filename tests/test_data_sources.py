"""Data sources end to end through real Airflow: loader, headerless CSV, HTTP with a failing first try, multiclass.

One module-scoped set of DAG runs (cv 3 folds, two cheap models each) serves the comparisons;
the last test goes on with the CSV experiment: unchanged data skips, bad data fails before
training with the champion intact, changed data retrains.
"""

from __future__ import annotations

import pytest

from conftest import copy_project, fast_spec, run_dag, task_instances, write_experiment
from dag_factory.storage.files import read_json, sha256_file
from dag_factory.spec.schema import CLASSIFICATION_METRICS as METRICS
from data_helpers import champion_identity, serve, wdbc_spec, write_wdbc

pytestmark = pytest.mark.airflow

BREAST_CANCER = ("bc_loader", "bc_csv", "bc_http")
RETRY_FAST = "  download: {retries: 2, backoff_seconds: 0.01}\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, airflow_db):
    """One DAG run each of breast cancer from the loader, a wdbc.data file, that file over HTTP, and wine."""
    project = copy_project(tmp_path_factory.mktemp("sources") / "project", experiments=False)
    root = project.root
    wdbc = write_wdbc(root / "data" / "wdbc.data")
    write_experiment(project, "bc_loader", fast_spec("bc_loader"))
    write_experiment(project, "bc_csv", wdbc_spec("bc_csv", str(wdbc)))
    write_experiment(project, "wine", fast_spec("wine").replace("sklearn:breast_cancer", "sklearn:wine")
                     .replace("  positive_class: malignant\n", ""))
    outcomes = {name: run_dag(project, name) for name in ("bc_loader", "bc_csv", "wine")}
    with pytest.MonkeyPatch.context() as env, serve(wdbc.parent, failures=1) as server:
        env.setenv("NO_PROXY", "127.0.0.1")  # a proxy from the environment must not see loopback traffic
        write_experiment(project, "bc_http", wdbc_spec(
            "bc_http", server.url("wdbc.data"), extra="  download: {timeout_seconds: 10, retries: 2, backoff_seconds: 0.2}\n"))
        outcomes["bc_http"] = run_dag(project, "bc_http")
        with serve(wdbc.parent, failures=99) as down:
            write_experiment(project, "bc_http_down", wdbc_spec("bc_http_down", down.url("wdbc.data"), extra=RETRY_FAST))
            outcomes["bc_http_down"] = run_dag(project, "bc_http_down")
    return project, outcomes, server, down


def leaderboard(board: dict) -> list[tuple]:
    """What must agree between two runs on the same data: order, names, CV and test metrics (rounded)."""
    return [(row["name"], [round(row["cv"][m]["mean"], 6) for m in METRICS],
             [round(row["cv"][m]["std"], 6) for m in METRICS],
             [round(row["test"][m], 6) for m in ("accuracy", "recall", "roc_auc")])
            for row in board["leaderboard"]]


def test_breast_cancer_from_loader_csv_and_http_reach_the_same_leaderboard(runs):
    project, outcomes, _, _ = runs
    boards = {name: read_json(outcomes[name].folder / "leaderboard.json") for name in BREAST_CANCER}
    assert {name: outcomes[name].state for name in BREAST_CANCER} == dict.fromkeys(BREAST_CANCER, "success")
    reference = leaderboard(boards["bc_loader"])
    assert [row[0] for row in reference] and len(reference) == 2
    assert leaderboard(boards["bc_csv"]) == reference
    assert leaderboard(boards["bc_http"]) == reference
    metas = {name: read_json(outcomes[name].folder / "data" / "meta.json") for name in BREAST_CANCER}
    assert {(m["rows"], m["train_rows"], m["test_rows"], len(m["numeric"])) for m in metas.values()} == {(569, 455, 114, 30)}
    assert metas["bc_loader"]["classes"] == ["benign", "malignant"]
    assert metas["bc_csv"]["classes"] == metas["bc_http"]["classes"] == ["B", "M"]
    assert "id" not in metas["bc_csv"]["numeric"]  # data.drop removed the id column before training


def test_csv_run_profiles_the_raw_file(runs):
    project, outcomes, _, _ = runs
    summary = read_json(outcomes["bc_csv"].folder / "profile.json")
    assert (summary["rows"], summary["columns"]) == (569, 32)
    assert summary["class_balance"] == {"B": {"count": 357, "share": 0.6274}, "M": {"count": 212, "share": 0.3726}}
    assert summary["top_correlations"][0]["column"] == "concave_points_worst"
    assert summary["top_correlations"][0]["correlation"] > 0.75  # larger means more often malignant
    assert "id" not in [c["column"] for c in summary["top_correlations"]]
    assert "| radius_mean | float64 | 0 |" in (outcomes["bc_csv"].folder / "profile.md").read_text()


def test_http_source_is_retried_after_a_failing_first_request_and_cached_in_the_run_folder(runs):
    project, outcomes, server, _ = runs
    assert server.log == [("/wdbc.data", 503), ("/wdbc.data", 200)]
    log = (outcomes["bc_http"].folder / "run.log").read_text()
    assert "failed on attempt 1 of 3 (HTTP 503 Service Unavailable)" in log  # Airflow retried the load_data task
    cached = outcomes["bc_http"].folder / "data" / "source" / "wdbc.data"
    assert sha256_file(cached) == sha256_file(project.root / "data" / "wdbc.data")


def test_url_failing_after_retries_fails_with_the_last_http_status_before_training(runs, airflow_db):
    project, outcomes, _, down = runs
    failed = outcomes["bc_http_down"]
    url = down.url("wdbc.data")
    assert failed.state == "failed"
    assert down.log == [("/wdbc.data", 503)] * 3  # the first try and Airflow's 2 retries
    message = f"data.source: downloading {url} failed after 3 attempt(s) (HTTP 503 Service Unavailable)"
    assert read_json(failed.folder / "data" / "error.json")["error"].startswith(message)
    tries = {r["task_id"]: (r["state"], r["try_number"]) for r in task_instances(airflow_db, "bc_http_down", failed.run_id)}
    assert tries["load_data"] == ("failed", 3)
    assert not (failed.folder / "models").exists() and not (project.results / "best" / "bc_http_down").exists()


def test_wine_multiclass_loader_trains_with_macro_metrics(runs, airflow_db):
    project, outcomes, _, _ = runs
    assert outcomes["wine"].state == "success"
    meta = read_json(outcomes["wine"].folder / "data" / "meta.json")
    assert meta["classes"] == ["class_0", "class_1", "class_2"] and meta["positive_class"] is None
    board = read_json(outcomes["wine"].folder / "leaderboard.json")
    for row in board["leaderboard"]:
        assert row["status"] == "ok"
        assert 0.9 <= row["cv"]["roc_auc"]["mean"] <= 1.0  # one-vs-rest, macro-averaged
        assert 0.0 < row["cv"]["recall"]["mean"] <= 1.0
    assert board["decision"]["promoted"] is True
    states = {(r["task_id"], r["rendered_map_index"]): r["state"]
              for r in task_instances(airflow_db, "wine", outcomes["wine"].run_id)}
    assert states[("train", "logistic_regression")] == states[("train", "random_forest")] == "success"


def test_csv_source_skips_unchanged_data_stops_bad_data_and_retrains_on_changed_data(runs, airflow_db):
    project, outcomes, _, _ = runs
    wdbc = project.root / "data" / "wdbc.data"
    champion = champion_identity(project.results, "bc_csv")
    assert champion[0] == outcomes["bc_csv"].run_id

    unchanged = run_dag(project, "bc_csv")
    states = _states(airflow_db, unchanged.run_id)
    assert unchanged.state == "success"
    assert {states[t] for t in ("preprocess", "train", "select", "promote", "report")} == {"skipped"}
    assert "data and spec unchanged since the champion was trained" in (unchanged.folder / "run.log").read_text()
    assert not (unchanged.folder / "models").exists()

    good = wdbc.read_text()
    wdbc.write_text(good.replace(",17.99,", ",17.99x,", 1))  # the first row's radius_mean
    broken = run_dag(project, "bc_csv")
    states = _states(airflow_db, broken.run_id)
    assert broken.state == "failed"
    assert states["load_data"] == states["profile"] == "success" and states["preprocess"] == "failed"
    assert states["train"] != "success" and states["promote"] != "success"
    message = ('data: column "radius_mean" should be numeric but has 1 non-numeric value(s), e.g. \'17.99x\'; '
               "fix the data")
    assert message in (broken.folder / "run.log").read_text()
    assert read_json(broken.folder / "data" / "error.json")["error"].startswith(message)
    assert not (broken.folder / "models").exists()
    assert champion_identity(project.results, "bc_csv") == champion

    wdbc.write_text("".join(good.splitlines(keepends=True)[:-10]))  # ten fewer tumours: new data
    changed = run_dag(project, "bc_csv")
    states = _states(airflow_db, changed.run_id)
    assert changed.state == "success"
    assert states["preprocess"] == states["train"] == states["select"] == "success"
    board = read_json(changed.folder / "leaderboard.json")
    assert [row["status"] for row in board["leaderboard"]] == ["ok", "ok"]
    assert read_json(changed.folder / "data" / "meta.json")["rows"] == 559


def _states(db, run_id: str) -> dict[str, str]:
    """Task id -> state of one bc_csv run (all train instances share one state here)."""
    rows = task_instances(db, "bc_csv", run_id)
    states: dict[str, set[str]] = {}
    for row in rows:
        states.setdefault(row["task_id"], set()).add(row["state"])
    return {task: next(iter(s)) if len(s) == 1 else "mixed" for task, s in states.items()}
