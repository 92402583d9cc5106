"""Publishing to Google Drive against a loopback stand-in of its API (tests/drive_stand_in.py).

The real Google Drive is never reached: the stand-in serves the OAuth token endpoint and the
Drive v3 calls the publisher makes, checks the service account's signed JWT and every bearer
token, and answers chosen requests with 503 or 429. Runs go through the workflow's steps
without Airflow; the credentials come from an Airflow connection (an AIRFLOW_CONN_ variable).
"""

from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import REPO, fast_spec
from dag_factory.artifacts.layout import MANIFEST, RunFiles, best_dir
from dag_factory.artifacts.records import Decision, Leaderboard
from dag_factory.errors import PublishError, PublishRefused, SpecError, is_permanent
from dag_factory.spec.schema import PublishSpec
from dag_factory.steps.share import share_in_drive
from dag_factory.storage.drive import DRIVE_SCOPE, DriveClient
from dag_factory.workflow import Run, promote
from data_helpers import champion_identity, load_spec, run_steps, shipped_catalog
from drive_stand_in import drive_stand_in

CONN = "drive_publisher"
ONE_MODEL = "  - model: logistic_regression\n"  # publishing, not the model mix, is tested here


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def drive(key, monkeypatch):
    """The stand-in, and an Airflow connection holding a service account key whose token_uri is the stand-in's."""
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with drive_stand_in(public.decode()) as server:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        account = {"type": "service_account", "project_id": "test", "private_key_id": "k1", "private_key": pem,
                   "client_email": "publisher@test.iam.gserviceaccount.com", "client_id": "1",
                   "token_uri": f"{server.url}/token"}
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({
            "conn_type": "google_cloud_platform",
            "extra": {"keyfile_dict": json.dumps(account), "api_url": server.url}}))
        yield server


def publishing_spec(tmp_path, folder: str, name: str = "shared"):
    return load_spec(tmp_path, fast_spec(name, ONE_MODEL) + f"publish:\n  drive_folder: {folder}\n  conn_id: {CONN}\n"
                                                  "  retries: 2\n  backoff_seconds: 0\n")


def test_a_new_champion_and_the_leaderboard_land_in_drive_and_a_503_and_a_429_are_retried(tmp_path, drive):
    drive.fail = {"multipart": [503], "list": [429]}
    spec = publishing_spec(tmp_path, drive.root)
    folder = run_steps(spec, tmp_path / "results", "run1")

    version = (best_dir(tmp_path / "results", "shared")).resolve()
    expected = {"shared/runs/run1/leaderboard.json": (folder / "leaderboard.json").read_bytes()}
    expected |= {f"shared/champions/{version.name}/{p.relative_to(version).as_posix()}": p.read_bytes()
                 for p in version.rglob("*") if p.is_file()}
    assert drive.tree() == expected
    champion_files = [p for p in drive.uploads() if p.startswith("shared/champions/") and p.count("/") == 3]
    assert champion_files[-1].endswith(f"/{MANIFEST}")  # the checksums last: a reader that finds them finds all
    assert ("POST", "multipart", 503) in drive.log and ("GET", "list", 429) in drive.log  # answered, then retried
    assert drive.fail == {"multipart": [], "list": []}
    assert [c["scope"] for c in drive.claims] == [DRIVE_SCOPE]  # one token, from the connection's key
    assert drive.claims[0]["iss"] == "publisher@test.iam.gserviceaccount.com"
    assert not [entry for entry in drive.log if entry[2] == 401]


def test_a_run_that_keeps_the_champion_publishes_only_its_leaderboard(tmp_path, drive):
    spec = publishing_spec(tmp_path, drive.root)
    run_steps(spec, tmp_path / "results", "run1")
    before = drive.tree()
    run_steps(spec, tmp_path / "results", "run2")  # same data and spec: no credible gain, champion kept
    added = set(drive.tree()) - set(before)
    assert added == {"shared/runs/run2/leaderboard.json"}


def test_drive_down_fails_the_step_for_airflow_to_retry_and_the_retry_uploads_only_what_is_missing(tmp_path, drive):
    spec = publishing_spec(tmp_path, drive.root)
    drive.fail = {"multipart": [503, 503, 503]}  # every attempt of the first upload (retries: 2)
    with pytest.raises(PublishError, match=r"^Google Drive: uploading leaderboard\.json failed after 3 attempt\(s\) "
                                           r"\(HTTP 503 stand-in says no\); Airflow retries the task$") as failed:
        run_steps(spec, tmp_path / "results", "run1")
    assert not is_permanent(failed.value)
    champion = champion_identity(tmp_path / "results", "shared")  # promoted before the upload, and untouched
    run = Run.of(spec, shipped_catalog(), REPO, tmp_path / "results", "run1")
    uploaded = drive.uploads()
    promote(run)  # what Airflow's retry of the promote task does
    assert champion_identity(tmp_path / "results", "shared") == champion
    after = drive.uploads()
    assert after[:len(uploaded)] == uploaded and len(after) == len(set(after))  # nothing uploaded twice
    assert "shared/runs/run1/leaderboard.json" in after and any(p.endswith(MANIFEST) for p in after)


def test_a_large_file_goes_through_a_resumable_upload_whose_failed_put_is_sent_again(tmp_path, drive):
    folder = run_steps(load_spec(tmp_path, fast_spec("shared", ONE_MODEL)), tmp_path / "results", "run1")
    spec = publishing_spec(tmp_path, drive.root)
    client = DriveClient.from_connection(spec.publish)
    client.multipart_limit = 1024  # the model file is larger: a resumable upload
    drive.fail = {"resumable_put": [502]}
    share_in_drive(spec, tmp_path / "results", RunFiles(folder), Leaderboard.read(folder / "leaderboard.json").decision,
                   client)
    version = best_dir(tmp_path / "results", "shared").resolve()
    model = version / "model.skops"
    assert model.stat().st_size > 1024
    assert drive.tree()[f"shared/champions/{version.name}/model.skops"] == model.read_bytes()
    assert ("PUT", "resumable_put", 502) in drive.log and ("PUT", "resumable_put", 200) in drive.log
    assert ("POST", "multipart", 200) in drive.log  # the small files still go in one request


def test_a_folder_not_shared_with_the_account_is_refused_at_once_with_the_fix(tmp_path, drive):
    spec = publishing_spec(tmp_path, "not_shared_0123456789")
    with pytest.raises(PublishRefused, match=r"Google Drive refused listing folder not_shared_0123456789 \(HTTP 404 "
                                             r"File not found: not_shared_0123456789\.\); check publish\.drive_folder "
                                             r"and that the folder is shared with the service account as Editor"):
        share_in_drive(spec, tmp_path / "results", _files(tmp_path), Decision(promoted=False, reason="kept"))
    assert is_permanent(PublishRefused("x"))
    assert [entry for entry in drive.log if entry[1] == "list"] == [("GET", "list", 404)]  # not retried


def test_a_key_the_token_endpoint_refuses_fails_at_once(tmp_path, drive, monkeypatch):
    connection = json.loads(os.environ[f"AIRFLOW_CONN_{CONN.upper()}"])
    account = json.loads(connection["extra"]["keyfile_dict"])
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # not the key the stand-in knows
    account["private_key"] = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()).decode()
    connection["extra"]["keyfile_dict"] = json.dumps(account)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(connection))
    spec = publishing_spec(tmp_path, drive.root)
    with pytest.raises(PublishRefused, match=r"Google refused the service account's key while listing folder "
                                             r"root_folder_0123456789 \(invalid_grant: Signature verification failed"):
        share_in_drive(spec, tmp_path / "results", _files(tmp_path), Decision(promoted=False, reason="kept"))
    assert [entry for entry in drive.log if entry[1] == "token"] == [("POST", "token", 400)]  # not retried
    assert not [entry for entry in drive.log if entry[1] != "token"]  # and nothing reached Drive


def test_a_connection_without_a_key_names_the_connection_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY_DRIVE", json.dumps({"conn_type": "google_cloud_platform"}))
    spec = PublishSpec(drive_folder="folder_0123456789", conn_id="empty_drive")
    with pytest.raises(PublishRefused, match=r"publish.conn_id: connection 'empty_drive' holds no service account "
                                             r"key; set its extra keyfile_dict to the key's JSON"):
        DriveClient.from_connection(spec)


def test_the_spec_takes_a_folder_id_and_a_connection_never_a_key(tmp_path):
    with pytest.raises(SpecError) as refused:
        load_spec(tmp_path, fast_spec("shared") + "publish:\n  drive_folder: my/folder\n  keyfile_dict: '{}'\n")
    problems = "\n".join(refused.value.problems)
    assert "publish.drive_folder (line 13): String should match pattern" in problems
    assert 'publish.keyfile_dict (line 14): unknown key "keyfile_dict"' in problems


def _files(tmp_path) -> RunFiles:
    files = RunFiles.of(tmp_path / "results", "shared", "run1")
    files.folder.mkdir(parents=True)
    files.leaderboard.write_text("{}")
    return files
