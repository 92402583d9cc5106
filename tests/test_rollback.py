"""Rollback and the champion history on a disk: the real promote step makes two champions, no Airflow.

A rollback restores the earlier champion through the same atomic installation as a promotion:
a SIGKILL at any file operation leaves the old champion or the restored one, whole.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from conftest import fast_spec, write_experiment
from dag_factory.artifacts.champion_store import current_card
from dag_factory.artifacts.layout import HISTORY, MODEL_FILE, best_dir, versions_dir
from dag_factory.cli import main
from dag_factory.errors import UntrustedModel
from dag_factory.steps.rollback import RollbackRefused, champion_history, rollback
from dag_factory.storage.files import manifest_problems
from evaluation_support import private_copy
from listeners import free_port, http_listener, wait_for
from test_promotion import EXPERIMENT, STRONG, die_at_call, in_child, promote_run, run_dir, trained  # noqa: F401


@pytest.fixture
def two_champions(trained, tmp_path) -> Path:  # noqa: F811  (the fixture imported above)
    """results/ where the weak run was the champion, then the strong run replaced it."""
    results = private_copy(trained, tmp_path / "results")
    assert promote_run(results, STRONG, run_dir(results, "strong"))["promoted"]
    return results


def history(results: Path) -> list[dict]:
    return [json.loads(line) for line in (best_dir(results, EXPERIMENT) / HISTORY).read_text().splitlines()]


def test_rollback_restores_the_previous_champion_and_records_it(two_champions):
    results = two_champions
    strong_version = best_dir(results, EXPERIMENT).resolve().name
    entry = rollback(results, EXPERIMENT, reason="complaints from the clinic")

    assert current_card(results, EXPERIMENT).run_id == "weak"  # checksums and model verified on the way
    assert manifest_problems(best_dir(results, EXPERIMENT)) == []
    lines = history(results)
    assert [(h["run_id"], h["action"]) for h in lines] == [("weak", "promoted"), ("strong", "promoted"),
                                                            ("weak", "rolled_back")]
    assert lines[-1]["restored_from"] == lines[0]["version"] and entry.version == lines[-1]["version"]
    assert f"rolled back from {strong_version}" in lines[-1]["reason"] and "clinic" in lines[-1]["reason"]
    assert (versions_dir(results, EXPERIMENT) / strong_version / MODEL_FILE).is_file()  # still there for --to

    listed = champion_history(results, EXPERIMENT)
    assert listed.current == entry.version and len(listed.entries) == 3
    rollback(results, EXPERIMENT, to="2")  # the strong champion again, by its number in the history
    assert current_card(results, EXPERIMENT).run_id == "strong"
    assert [h["action"] for h in history(results)] == ["promoted", "promoted", "rolled_back", "rolled_back"]


@pytest.mark.parametrize(("to", "sentence"), [
    ("9", "entries 1 to 2"), ("../../etc", "is not a version name"), ("nope", "is not in"),
    ("current", "already the champion"),
])
def test_a_rollback_that_cannot_be_done_is_refused_and_changes_nothing(two_champions, to, sentence):
    results = two_champions
    before = best_dir(results, EXPERIMENT).resolve()
    to = before.name if to == "current" else to
    with pytest.raises(RollbackRefused, match=sentence):
        rollback(results, EXPERIMENT, to=to)
    assert best_dir(results, EXPERIMENT).resolve() == before and len(history(results)) == 2


def test_a_changed_earlier_champion_is_not_restored(two_champions):
    results = two_champions
    weak = versions_dir(results, EXPERIMENT) / history(results)[0]["version"]
    (weak / MODEL_FILE).write_bytes(b"rewritten")
    before = best_dir(results, EXPERIMENT).resolve()
    with pytest.raises(UntrustedModel, match="changed after promotion"):
        rollback(results, EXPERIMENT)
    assert best_dir(results, EXPERIMENT).resolve() == before
    assert current_card(results, EXPERIMENT).run_id == "strong"


def test_with_one_champion_there_is_nothing_to_roll_back_to(trained, tmp_path):  # noqa: F811
    with pytest.raises(RollbackRefused, match="one champion only"):
        rollback(private_copy(trained, tmp_path / "results"), EXPERIMENT)


def test_sigkill_at_every_file_operation_of_a_rollback_leaves_a_whole_champion(two_champions, tmp_path):
    outcomes = []
    for n in range(1, 200):
        results = private_copy(two_champions, tmp_path / f"killed-at-{n}")
        status = in_child(lambda n=n: (die_at_call(n), rollback(results, EXPERIMENT)))
        card = current_card(results, EXPERIMENT)  # verified: every file matches SHA256SUMS
        assert manifest_problems(best_dir(results, EXPERIMENT)) == []
        expected = {"strong": ["promoted", "promoted"], "weak": ["promoted", "promoted", "rolled_back"]}
        assert [h["action"] for h in history(results)] == expected[card.run_id]
        if status == 0:
            assert card.run_id == "weak"
            break
        assert status == -signal.SIGKILL
        outcomes.append(card.run_id)
        if card.run_id == "strong":
            rollback(results, EXPERIMENT)  # a rollback after the kill finishes the job
        assert current_card(results, EXPERIMENT).run_id == "weak"
        assert not list(versions_dir(results, EXPERIMENT).glob(".*.partial"))  # the kill's leftovers swept
    assert len(outcomes) >= 5 and outcomes.count("strong") >= 5, outcomes
    print(f"SIGKILL at {len(outcomes)} file operations of a rollback; champion whole every time: {outcomes}")


def test_the_history_and_rollback_commands_and_the_rollback_notification(two_champions, project, capsys,
                                                                          monkeypatch):
    write_experiment(project, EXPERIMENT, fast_spec(EXPERIMENT) + "notify: {webhooks: [hook, dead_hook]}\n")
    (project.root / "results").rmdir()
    private_copy(two_champions, project.root / "results")
    argv = ["--project", str(project.root)]

    assert main([*argv, "history", EXPERIMENT]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:4] == ["#", "now", "since", "how"]
    assert listing[2].startswith("1 ") and " weak " in listing[2]
    assert listing[3].startswith("2  *") and " strong " in listing[3]

    with http_listener() as (url, posts):
        monkeypatch.setenv("AIRFLOW_CONN_HOOK", json.dumps({"conn_type": "http", "host": url}))
        monkeypatch.setenv("AIRFLOW_CONN_DEAD_HOOK",
                           json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{free_port()}/hook"}))
        assert main([*argv, "rollback", EXPERIMENT, "--reason", "drift"]) == 0
        wait_for(posts, 1)
    out, err = capsys.readouterr()
    assert out.startswith(f"ROLLED BACK: {EXPERIMENT} champion is now stump")
    assert "warning: notification not delivered: webhook dead_hook: URLError" in err
    sent = posts[0]["json"]
    assert sent["event"] == "rollback" and sent["entry"]["restored_from"] == history(
        project.root / "results")[0]["version"] and "drift" in sent["text"]

    assert main([*argv, "rollback", EXPERIMENT, "--to", "7"]) == 2
    assert "error: --to 7: the history of promo has entries 1 to 3" in capsys.readouterr().err
