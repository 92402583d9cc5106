"""Results on object storage: an S3 results root served by moto on 127.0.0.1, read back through the S3 API.

The breast_cancer DAG runs through Airflow with ``results.root: s3://...``, credentials from the
standard AWS environment or from an Airflow connection. Promotion on S3 is checked like on a
disk: SIGKILL before every write request leaves one whole champion, and two racing promotions
keep the better model (the pointer switch is a conditional PUT).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import time
import uuid
from typing import Any

import pandas as pd
import pytest
import skops.io

from conftest import fast_spec, run_dag, task_instances, write_experiment
from dag_factory.cli import main
from dag_factory.storage.files import read_json
from dag_factory.artifacts.layout import RunFiles, safe_run_id
from dag_factory.artifacts.model_file import TRUSTED_TYPES
from evaluation_support import run_of
from dag_factory.steps import promote as promotion
from dag_factory.artifacts.champion_store import PointerStore
from servers import AWS_ISOLATION, S3_CREDENTIALS, s3_client, s3_server
from test_promotion import EXPERIMENT, STRONG, WEAK, in_child, in_children, promote_run, train_run

MODELS = ["logistic_regression", "random_forest"]  # fast_spec's pair: storage, not the model mix, is tested here
def run_folder(results, run_id: str):
    """A run folder of the promotion experiment under ``results``."""
    return RunFiles.of(results, EXPERIMENT, run_id).folder


#: S3 requests that change the store; the SIGKILL test stops a promotion before each in turn.
WRITES = ("put_object", "create_multipart_upload", "upload_part", "complete_multipart_upload", "copy_object",
          "delete_object", "delete_objects")


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """The S3 server's URL; the standard AWS environment points at it for the whole module."""
    import s3fs

    with s3_server(tmp_path_factory.mktemp("moto")) as url, pytest.MonkeyPatch.context() as env:
        for name, value in {**S3_CREDENTIALS, **AWS_ISOLATION, "AWS_ENDPOINT_URL": url}.items():
            env.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()
        yield url
        s3fs.S3FileSystem.clear_instance_cache()


def new_bucket(endpoint: str) -> str:
    name = f"results-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def fetch(endpoint: str, bucket: str, key: str) -> bytes:
    """One object's bytes, through the S3 API."""
    return s3_client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read()


def keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def whole_champion(endpoint: str, bucket: str, root: str, experiment: str) -> dict[str, Any]:
    """Follow the pointer object; check every file of that version against its SHA256SUMS; return the card."""
    pointer = json.loads(fetch(endpoint, bucket, f"{root}/best/{experiment}/champion.json"))
    version = f"{root}/best/.versions/{experiment}/{pointer['version']}"
    manifest = fetch(endpoint, bucket, f"{version}/SHA256SUMS").decode().splitlines()
    recorded = {line.split("  ")[1]: line.split("  ")[0] for line in manifest}
    stored = {k.rsplit("/", 1)[1] for k in keys(endpoint, bucket, version + "/")} - {"SHA256SUMS"}
    assert set(recorded) == stored
    for name, digest in recorded.items():
        assert hashlib.sha256(fetch(endpoint, bucket, f"{version}/{name}")).hexdigest() == digest, name
    return json.loads(fetch(endpoint, bucket, f"{version}/model_card.json"))


@pytest.mark.airflow
def test_breast_cancer_runs_through_airflow_with_an_s3_results_root(project, endpoint, airflow_db, capsys):
    bucket = new_bucket(endpoint)
    write_experiment(project, "breast_cancer", fast_spec("breast_cancer") + f"results:\n  root: s3://{bucket}/team/ml\n")

    started = time.perf_counter()
    outcome = run_dag(project, "breast_cancer")
    seconds = time.perf_counter() - started
    assert outcome.state == "success"
    assert str(outcome.folder) == f"s3://{bucket}/team/ml/runs/breast_cancer/{safe_run_id(outcome.run_id)}"

    run = f"team/ml/runs/breast_cancer/{safe_run_id(outcome.run_id)}"
    board = json.loads(fetch(endpoint, bucket, f"{run}/leaderboard.json"))
    assert sorted(r["name"] for r in board["leaderboard"]) == sorted(MODELS)
    assert {r["status"] for r in board["leaderboard"]} == {"ok"}
    assert board["decision"]["promoted"] and board["decision"]["reason"] == "no champion yet"
    stored = keys(endpoint, bucket, run + "/")
    for name in ("run.log", "profile.json", "report.html", "data/train.parquet", "data/meta.json",
                 *[f"models/{m}/{f}" for m in MODELS for f in ("model.skops", "metrics.json", "plots/roc.png")]):
        assert f"{run}/{name}" in stored, name
    assert not [k for k in stored if ".partial" in k]

    card = whole_champion(endpoint, bucket, "team/ml", "breast_cancer")
    assert card["run_id"] == outcome.run_id and card["model"]["name"] == board["winner"]
    assert board["decision"]["path"].startswith(f"s3://{bucket}/team/ml/best/.versions/breast_cancer/")
    version = board["decision"]["path"].removeprefix(f"s3://{bucket}/")
    model = skops.io.loads(fetch(endpoint, bucket, f"{version}/model.skops"), trusted=list(TRUSTED_TYPES))
    test = pd.read_parquet(io.BytesIO(fetch(endpoint, bucket, f"{run}/data/test.parquet")))
    assert (model.predict(test.drop(columns=["target"])) == model.classes_[test["target"]]).mean() >= 0.93
    assert list(project.results.iterdir()) == []  # nothing went to the local results folder

    assert main(["--project", str(project.root), "leaderboard", "breast_cancer"]) == 0
    assert f"s3://{bucket}/team/ml/runs/breast_cancer/" in capsys.readouterr().out

    again = run_dag(project, "breast_cancer")  # the champion's fingerprints are read back from S3
    states = {r["task_id"]: r["state"] for r in task_instances(airflow_db, "breast_cancer", again.run_id)}
    assert states["preprocess"] == "skipped" and states["train"] == "skipped"
    with capsys.disabled():
        print(f"\nbreast_cancer with an S3 results root (moto on loopback): `dag-factory run` took {seconds:.1f} s")


@pytest.mark.airflow
def test_an_airflow_connection_carries_the_s3_credentials(project, endpoint, airflow_db, monkeypatch):
    for name in (*S3_CREDENTIALS, "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)  # only the connection knows where the store is and how to log in
    monkeypatch.setenv("AIRFLOW_CONN_RESULTS_STORE", json.dumps({
        "conn_type": "aws", "login": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "password": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}))
    bucket = new_bucket(endpoint)
    write_experiment(project, "quick", fast_spec("quick", "  - model: logistic_regression\n")
                     + f"results:\n  root: s3://{bucket}/runs-by-conn\n  conn_id: results_store\n")
    outcome = run_dag(project, "quick")
    assert outcome.state == "success"
    assert whole_champion(endpoint, bucket, "runs-by-conn", "quick")["run_id"] == outcome.run_id


@pytest.fixture(scope="module")
def s3_trained(endpoint):
    """An S3 results root with a weak run promoted as champion and a strong run not yet promoted."""
    from upath import UPath

    results = UPath(f"s3://{new_bucket(endpoint)}/promo")
    promote_run(results, WEAK, train_run(results, WEAK, "weak"))
    train_run(results, STRONG, "strong")
    return str(results)


def fresh(url: str):
    """The results root as a path object that sees the store as it is now (a killed child may have changed it).

    A forked child gets an S3 connection of its own (fsspec makes new instances after a fork); this process
    keeps its connection and drops its cached listings.
    """
    from upath import UPath

    root = UPath(url)
    root.fs.invalidate_cache()
    return root


def kill_before_s3_write(n: int) -> None:
    """Make this process SIGKILL itself before its n-th S3 request that changes the store."""
    import s3fs
    from fsspec.asyn import sync_wrapper

    real, count = s3fs.S3FileSystem._call_s3, [0]

    async def call(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if method in WRITES:
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
        return await real(self, method, *args, **kwargs)

    s3fs.S3FileSystem._call_s3 = call
    s3fs.S3FileSystem.call_s3 = sync_wrapper(call)  # what file objects call


def test_sigkill_before_every_s3_write_of_a_promotion_leaves_a_whole_champion(s3_trained, endpoint,
                                                                              no_comparison_charts):
    results = fresh(s3_trained)
    pointer = PointerStore(results, EXPERIMENT).pointer
    pristine = {pointer: pointer.read_bytes(),
                run_folder(results, "strong") / "leaderboard.json":
                    (run_folder(results, "strong") / "leaderboard.json").read_bytes()}
    bucket, root = s3_trained.removeprefix("s3://").split("/", 1)
    outcomes = []
    for n in range(1, 100):
        for path, data in pristine.items():
            path.write_bytes(data)

        def die_at_write(n: int = n) -> None:
            kill_before_s3_write(n)
            child = fresh(s3_trained)
            promote_run(child, STRONG, run_folder(child, "strong"))

        status = in_child(die_at_write)
        if status == 0:
            break  # the promotion made fewer than n writes: every one was interrupted once
        assert status == -signal.SIGKILL
        outcomes.append(whole_champion(endpoint, bucket, root, EXPERIMENT)["run_id"])
        results = fresh(s3_trained)
        assert promote_run(results, STRONG, run_folder(results, "strong"))["promoted"]  # a retry recovers
        assert whole_champion(endpoint, bucket, root, EXPERIMENT)["run_id"] == "strong"
    assert len(outcomes) >= 10 and outcomes.count("weak") >= 10, outcomes
    print(f"SIGKILL before {len(outcomes)} S3 writes; champion whole every time")


def test_two_racing_promotions_on_s3_keep_the_better_model(s3_trained, endpoint, monkeypatch):
    results = fresh(s3_trained)
    PointerStore(results, EXPERIMENT).pointer.unlink()  # no champion: both runs see the same empty slot
    real_card = promotion.model_card

    def slow_card(*args: Any) -> dict[str, Any]:  # both decide before either switches the pointer
        time.sleep(1.0)
        return real_card(*args)

    monkeypatch.setattr(promotion, "model_card", slow_card)
    start = time.time() + 1.0

    def promote_at_start(spec, run_id: str) -> None:
        time.sleep(max(0.0, start - time.time()))
        child = fresh(s3_trained)
        promote_run(child, spec, run_folder(child, run_id))

    assert in_children(lambda: promote_at_start(STRONG, "strong"), lambda: promote_at_start(WEAK, "weak")) == [0, 0]

    results = fresh(s3_trained)
    bucket, root = s3_trained.removeprefix("s3://").split("/", 1)
    assert whole_champion(endpoint, bucket, root, EXPERIMENT)["run_id"] == "strong"
    decisions = {r: read_json(run_folder(results, r) / "leaderboard.json")["decision"] for r in ("strong", "weak")}
    assert decisions["strong"]["promoted"]
    version = decisions["strong"]["path"].removeprefix(f"s3://{bucket}/")
    history = [json.loads(line)["run_id"] for line in fetch(endpoint, bucket, f"{version}/history.jsonl").splitlines()]
    assert history in (["strong"], ["weak", "strong"])  # weak first then replaced, or refused: never lost
    if history == ["strong"]:
        assert "does not beat the champion" in decisions["weak"]["reason"]


def test_a_results_root_in_a_bucket_that_does_not_exist_is_refused_before_any_work(endpoint):
    from upath import UPath

    from dag_factory.errors import SpecError
    from dag_factory.workflow import load

    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SpecError, match=rf"(?s)results.root: .*the bucket s3://{missing} .* does not exist .*create the "
                                        "bucket, or fix results.root"):
        load(run_of(WEAK, UPath(f"s3://{missing}/ml"), "r"))
    assert missing not in {b["Name"] for b in s3_client(endpoint).list_buckets()["Buckets"]}  # none was made


def test_rollback_on_s3_switches_the_pointer_to_a_whole_copy_and_a_sigkill_leaves_one_whole_champion(
        endpoint, monkeypatch):
    from upath import UPath

    from dag_factory.steps.rollback import rollback

    bucket = new_bucket(endpoint)
    url = f"s3://{bucket}/promo"
    results = UPath(url)
    promote_run(results, WEAK, train_run(results, WEAK, "weak"))
    assert promote_run(results, STRONG, train_run(results, STRONG, "strong"))["promoted"]
    assert whole_champion(endpoint, bucket, "promo", EXPERIMENT)["run_id"] == "strong"
    pointer = PointerStore(results, EXPERIMENT).pointer
    pristine = pointer.read_bytes()

    outcomes = []
    for n in range(1, 100):
        pointer = PointerStore(fresh(url), EXPERIMENT).pointer
        pointer.write_bytes(pristine)  # the strong champion again, whatever the last attempt did
        status = in_child(lambda n=n: (kill_before_s3_write(n), rollback(fresh(url), EXPERIMENT)))
        if status == 0:
            break  # the rollback made fewer than n writes: each one was interrupted once
        assert status == -signal.SIGKILL
        outcomes.append(whole_champion(endpoint, bucket, "promo", EXPERIMENT)["run_id"])
    assert len(outcomes) >= 5 and outcomes.count("strong") >= 5, outcomes
    print(f"SIGKILL before {len(outcomes)} S3 writes of a rollback; champion whole every time: {outcomes}")

    entry = json.loads(fetch(endpoint, bucket, f"promo/best/{EXPERIMENT}/champion.json"))
    assert whole_champion(endpoint, bucket, "promo", EXPERIMENT)["run_id"] == "weak"
    history = fetch(endpoint, bucket, f"promo/best/.versions/{EXPERIMENT}/{entry['version']}/history.jsonl").splitlines()
    assert [(json.loads(h)["run_id"], json.loads(h)["action"]) for h in history] == [
        ("weak", "promoted"), ("strong", "promoted"), ("weak", "rolled_back")]

    # A promotion that switches the pointer while a rollback copies: the rollback changes nothing.
    import dag_factory.steps.rollback as rolling

    copy = rolling._copy_verified

    def copy_while_promoted(source, staging) -> None:
        copy(source, staging)
        PointerStore(fresh(url), EXPERIMENT).pointer.write_bytes(pristine)

    monkeypatch.setattr(rolling, "_copy_verified", copy_while_promoted)
    with pytest.raises(rolling.RollbackRefused, match="a promotion replaced the champion of promo during the rollback"):
        rolling.rollback(fresh(url), EXPERIMENT)
    assert PointerStore(fresh(url), EXPERIMENT).pointer.read_bytes() == pristine
