"""The results root behind one path type, without Airflow: folders, URLs, connections, an in-memory store.

fsspec's ``memory://`` store has no renames and no links, like an object store, so every step
running on it shows that no step needs a local disk for its results.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid

from dag_factory.storage.files import manifest_problems, read_json
from dag_factory.project import Project
from dag_factory.artifacts.champion_store import PointerStore, current_card
from dag_factory.artifacts.layout import HISTORY
from dag_factory.steps import promote as promotion
from dag_factory.storage.location import open_location
from evaluation_support import quick_spec, run_steps
from test_promotion import EXPERIMENT, STRONG, WEAK, champion, promote_run, train_run


def memory_root() -> object:
    from upath import UPath

    return UPath(f"memory://store-{uuid.uuid4().hex[:10]}/results")


def test_a_results_root_is_a_folder_or_a_url(tmp_path, monkeypatch):
    assert open_location("results", base=tmp_path) == tmp_path / "results"
    assert open_location(f"file://{tmp_path}/elsewhere") == tmp_path / "elsewhere"
    s3 = open_location("s3://team-bucket/ml")
    assert s3.protocol == "s3" and str(s3 / "runs") == "s3://team-bucket/ml/runs"
    monkeypatch.setenv("DAG_FACTORY_RESULTS", "memory://shared/ml")
    assert str(Project(tmp_path).results) == "memory://shared/ml"


def test_an_airflow_connection_becomes_the_stores_credentials(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TEAM_STORE", json.dumps({
        "conn_type": "aws", "login": "key-id", "password": "secret-key",
        "extra": {"endpoint_url": "http://127.0.0.1:9000", "region_name": "eu-west-1"}}))
    options = open_location("s3://team-bucket/ml", conn_id="team_store").storage_options
    assert options["key"] == "key-id" and options["secret"] == "secret-key"
    assert options["endpoint_url"] == "http://127.0.0.1:9000"
    assert options["client_kwargs"] == {"region_name": "eu-west-1"}


def test_every_step_runs_on_an_object_store_and_writes_nothing_to_the_local_disk(tmp_path, monkeypatch):
    work, scratch = tmp_path / "work", tmp_path / "tmp"
    work.mkdir(), scratch.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # this test's own: other tests may run at the same time
    results = memory_root()
    spec = quick_spec("anywhere", "  - model: logistic_regression\n  - model: random_forest\n"
                                  "    params: {n_estimators: 20}\n")
    folder = run_steps(spec, results, "run_1")

    board = read_json(folder / "leaderboard.json")
    assert board["decision"]["promoted"] and {r["status"] for r in board["leaderboard"]} == {"ok"}
    for name in ("profile.json", "report.html", "data/train.parquet", "models/random_forest/plots/roc.png"):
        assert (folder / name).is_file(), name
    pointer = json.loads(PointerStore(results, "anywhere").pointer.read_text())
    version = results / "best" / ".versions" / "anywhere" / pointer["version"]
    assert str(version) == board["decision"]["path"] and manifest_problems(version) == []
    assert current_card(results, "anywhere").run_id == "run_1"
    assert list(work.iterdir()) == []  # nothing in the working folder
    assert list(scratch.iterdir()) == []  # scratch folders removed


def test_a_champion_replaced_during_a_promotion_makes_it_decide_again(monkeypatch, caplog):
    results = memory_root()
    weak, strong = train_run(results, WEAK, "weak"), train_run(results, STRONG, "strong")
    real_card, meanwhile = promotion.model_card, {}

    def card_while_another_run_promotes(*args):
        if not meanwhile:  # another run takes the empty slot after this one read it
            meanwhile["weak"] = None
            meanwhile["weak"] = promote_run(results, WEAK, weak)
        return real_card(*args)

    monkeypatch.setattr(promotion, "model_card", card_while_another_run_promotes)
    with caplog.at_level(logging.WARNING, logger="dag_factory.steps.promote"):
        decision = promote_run(results, STRONG, strong)
    assert meanwhile["weak"]["promoted"] and decision["promoted"]
    assert "changed during this promotion (attempt 1 of 5); deciding again" in caplog.text
    assert decision["champion"] == "stump (run weak)"  # the second decision was against the new champion
    card = champion(results)
    assert card["run_id"] == "strong"
    history = (results / "best" / ".versions" / EXPERIMENT / json.loads(
        PointerStore(results, EXPERIMENT).pointer.read_text())["version"] / HISTORY).read_text()
    assert [json.loads(line)["run_id"] for line in history.splitlines()] == ["weak", "strong"]


def test_a_connection_on_a_scheme_airflow_serves_goes_through_object_storage_path(tmp_path):
    from airflow.sdk import ObjectStoragePath

    results = open_location(f"file://{tmp_path}/results", conn_id="team_files")  # Airflow serves file:// itself
    assert isinstance(results, ObjectStoragePath) and results.conn_id == "team_files"
    folder = run_steps(quick_spec("through_airflow", "  - model: logistic_regression\n"), results, "r1")
    assert read_json(folder / "leaderboard.json")["decision"]["promoted"]
    assert current_card(results, "through_airflow").run_id == "r1"
    assert (tmp_path / "results" / "best" / "through_airflow" / "champion.json").is_file()  # no links: a pointer


def test_the_next_run_removes_what_a_killed_run_left_but_not_what_a_live_one_is_building(tmp_path):
    """A killed train task leaves models/.<model>.partial; the next run's load step sweeps it, unless it is in use."""
    import fcntl
    import os
    import time

    from dag_factory.workflow import load
    from evaluation_support import run_of

    spec = quick_spec("swept", "  - model: logistic_regression\n")
    models = tmp_path / "results" / "runs" / "swept"
    killed, live, young = (models / run / "models" / ".svm.partial" for run in ("killed", "live", "young"))
    for folder in (killed, live, young):
        folder.mkdir(parents=True)
        (folder / "model.skops").write_text("half a model")
    an_hour_ago = time.time() - 3600
    for folder in (killed, live):
        os.utime(folder, (an_hour_ago, an_hour_ago))
    builder = os.open(live, os.O_RDONLY)  # a live train task holds its scratch folder's lock, as building() does
    fcntl.flock(builder, fcntl.LOCK_EX)
    try:
        load(run_of(spec, tmp_path / "results", "next"))
    finally:
        os.close(builder)
    assert not killed.exists()
    assert live.exists() and young.exists()  # one is being built, the other may not hold its lock yet
