"""Promotion faults: SIGKILL at every file operation, racing runs, tampered artifacts, retries.

Two real runs are trained once (steps only, no Airflow): a weak one-tree stump and a logistic
regression. The stump is the champion; then the logistic regression is promoted while each
fault is injected. Whatever happens, results/best/<experiment> must be one whole champion.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dag_factory.artifacts.champion_store import current_card
from dag_factory.artifacts.layout import HISTORY, RunFiles, best_dir
from dag_factory.artifacts.records import RunMeta
from dag_factory.errors import ModelError, RunFailed
from dag_factory.render.report import add_champion_pages
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.steps import promote as promotion
from dag_factory.storage.files import MANIFEST, manifest_problems, read_json
from dag_factory.workflow import report
from evaluation_support import private_copy, run_of, run_steps

EXPERIMENT = "promo"
#: Every file-system call promote makes; the SIGKILL test stops the process before each in turn.
FS_CALLS = [(os, "replace"), (os, "rename"), (os, "symlink"), (os, "mkdir"), (os, "fsync"), (os, "unlink"),
            (os, "chmod"), (shutil, "copy2"), (shutil, "rmtree")]


def spec_of(model: dict[str, Any]) -> ExperimentSpec:
    """A one-model breast cancer experiment with 5 CV folds x 2 repeats.

    Enough folds for the logistic regression's paired gain over the stump to be credible (with
    3 folds x 1 its interval, +0.094 [-0.028, +0.215], still reaches 0, and the stump would stay).
    """
    return ExperimentSpec.model_validate({
        "experiment": EXPERIMENT, "data": {"source": "sklearn:breast_cancer", "positive_class": "malignant"},
        "cv": {"folds": 5, "repeats": 2, "seed": 1}, "models": [model]})


WEAK = spec_of({"model": "random_forest", "name": "stump", "params": {"n_estimators": 1, "max_depth": 1}})
STRONG = spec_of({"model": "logistic_regression"})


def train_run(results: Path, spec: ExperimentSpec, run_id: str) -> Path:
    """Load, split, train and rank one run with the real steps; returns its run folder."""
    return run_steps(spec, results, run_id, until="select")


def promote_run(results: Path, spec: ExperimentSpec, folder: Path) -> dict[str, Any]:
    """Promote a trained run's winner, as the promote task does; returns the decision."""
    files = RunFiles(folder)
    decision = promotion.promote(spec, results, files, RunMeta.read(files.meta), add_pages=add_champion_pages)
    return decision.model_dump()


def champion(results: Path) -> dict[str, Any]:
    """The current champion's model card (its checksums verified)."""
    return current_card(results, EXPERIMENT).model_dump()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """results/ with a weak run promoted as champion and a strong run not yet promoted."""
    results = tmp_path_factory.mktemp("promotion") / "results"
    promote_run(results, WEAK, train_run(results, WEAK, "weak"))
    train_run(results, STRONG, "strong")
    return results


@pytest.fixture
def results(trained, tmp_path) -> Path:
    """A private copy of the trained results (the champion link copied as a link)."""
    return private_copy(trained, tmp_path / "results")


def run_dir(results: Path, run_id: str) -> Path:
    return results / "runs" / EXPERIMENT / run_id


def assert_one_whole_champion(results: Path) -> dict[str, Any]:
    """The champion is complete: every file matches SHA256SUMS, the model matches its card."""
    folder = best_dir(results, EXPERIMENT)
    assert folder.is_symlink()
    assert manifest_problems(folder) == []
    card = champion(results)  # verifies the checksums again, as loading does
    history = [json.loads(line) for line in (folder / HISTORY).read_text().splitlines()]
    expected = {"weak": ["weak"], "strong": ["weak", "strong"]}[card["run_id"]]
    assert [h["run_id"] for h in history] == expected
    assert read_json(folder / "metrics.json")["name"] == card["model"]["name"]
    return card


def in_child(body: Callable[[], Any]) -> int:
    """Run ``body`` in a forked child; its exit status (negative: killed by that signal)."""
    return in_children(body)[0]


def in_children(*bodies: Callable[[], Any]) -> list[int]:
    """Run each body in a forked child of its own, all at once; their exit statuses (negative: killed by that signal)."""
    pids = []
    for body in bodies:
        pid = os.fork()
        if pid == 0:  # the child never returns to pytest
            code = 1
            try:
                body()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    return [-os.WTERMSIG(s) if os.WIFSIGNALED(s) else os.WEXITSTATUS(s) for s in statuses]


def die_at_call(n: int) -> None:
    """Make the n-th file-system call of this process SIGKILL it, before the call runs."""
    calls = [0]
    for module, name in FS_CALLS:
        real = getattr(module, name)

        def wrapped(*args: Any, _real: Callable[..., Any] = real, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(*args, **kwargs)

        setattr(module, name, wrapped)


def test_sigkill_at_every_file_operation_leaves_the_old_or_the_new_champion(results, tmp_path, no_comparison_charts):
    pristine = tmp_path / "pristine"
    shutil.copytree(results, pristine, symlinks=True)
    outcomes: list[str] = []
    for n in range(1, 200):
        shutil.rmtree(results)
        shutil.copytree(pristine, results, symlinks=True)
        status = in_child(lambda: (die_at_call(n), promote_run(results, STRONG, run_dir(results, "strong"))))
        if status == 0:
            break  # promote finished before making an n-th call: every point was tried
        assert status == -signal.SIGKILL
        outcomes.append(assert_one_whole_champion(results)["run_id"])
        if read_json(run_dir(results, "strong") / "leaderboard.json")["decision"] is None:
            with pytest.raises(RunFailed, match="the promotion of logistic_regression did not happen or did not finish"):
                report(run_of(STRONG, results, "strong"))  # the run shows the kill, never a silent green
        assert promote_run(results, STRONG, run_dir(results, "strong"))["promoted"]  # a retry recovers
        assert assert_one_whole_champion(results)["run_id"] == "strong"
        leftovers = list(best_dir(results, EXPERIMENT).parent.glob(f".{EXPERIMENT}.link-*"))
        leftovers += list((results / "best" / ".versions" / EXPERIMENT).glob(".*.partial"))
        assert leftovers == []
    assert len(outcomes) >= 15, outcomes  # killed at that many distinct points
    assert outcomes.count("weak") >= 10 and "strong" in outcomes  # before and after the switch were both hit
    print(f"SIGKILL injected at {len(outcomes)} points; champion whole every time")


def test_two_racing_promotions_keep_the_better_model(results, monkeypatch):
    shutil.rmtree(results / "best")  # no champion: both runs see the same empty slot
    real_card = promotion.model_card

    def slow_card(*args: Any) -> dict[str, Any]:  # widen the gap between reading the champion and the swap
        time.sleep(0.5)
        return real_card(*args)

    monkeypatch.setattr(promotion, "model_card", slow_card)
    start = time.time() + 0.5

    def promote_at_start(spec: ExperimentSpec, run_id: str) -> None:
        time.sleep(max(0.0, start - time.time()))
        promote_run(results, spec, run_dir(results, run_id))

    assert in_children(lambda: promote_at_start(STRONG, "strong"), lambda: promote_at_start(WEAK, "weak")) == [0, 0]
    card = champion(results)
    assert card["run_id"] == "strong"
    history = [json.loads(line)["run_id"] for line in
               (best_dir(results, EXPERIMENT) / HISTORY).read_text().splitlines()]
    assert history in (["strong"], ["weak", "strong"])  # weak first then replaced, or refused: never lost
    decisions = {r: read_json(run_dir(results, r) / "leaderboard.json")["decision"] for r in ("strong", "weak")}
    assert decisions["strong"]["promoted"]
    if history == ["strong"]:
        assert "does not beat the champion" in decisions["weak"]["reason"]


def test_every_champion_file_has_a_sha256_and_loading_refuses_a_changed_one(results):
    promote_run(results, STRONG, run_dir(results, "strong"))
    folder = best_dir(results, EXPERIMENT)
    recorded = {line.split("  ")[1] for line in (folder / MANIFEST).read_text().splitlines()}
    assert recorded == {p.name for p in folder.iterdir()} - {MANIFEST}
    for name in ("metrics.json", "model.skops"):
        target = folder / name
        original = target.read_bytes()
        target.write_bytes(original + b" ")
        with pytest.raises(ModelError, match=rf"{name} has SHA-256 .* but SHA256SUMS records .*refusing to use it"):
            champion(results)
        target.write_bytes(original)
    from dag_factory.steps.predict import load_champion

    (folder / "model.skops").write_bytes(b"not the model")
    with pytest.raises(ModelError, match="refusing to load it"):
        load_champion(results, EXPERIMENT)


def test_promoting_the_same_run_again_changes_nothing(results):
    first = promote_run(results, STRONG, run_dir(results, "strong"))
    versions = sorted((results / "best" / ".versions" / EXPERIMENT).iterdir())
    again = promote_run(results, STRONG, run_dir(results, "strong"))
    assert first["promoted"] and again["promoted"]
    assert again["reason"].startswith("already promoted by an earlier attempt of this run")
    assert sorted((results / "best" / ".versions" / EXPERIMENT).iterdir()) == versions
    assert assert_one_whole_champion(results)["run_id"] == "strong"


def test_a_worse_challenger_leaves_the_champion_untouched(results):
    promote_run(results, STRONG, run_dir(results, "strong"))
    before = {p.name: p.read_bytes() for p in best_dir(results, EXPERIMENT).iterdir()}
    decision = promote_run(results, WEAK, run_dir(results, "weak"))
    assert not decision["promoted"] and "does not beat the champion" in decision["reason"]
    assert {p.name: p.read_bytes() for p in best_dir(results, EXPERIMENT).iterdir()} == before


def test_a_champion_measured_on_other_folds_is_re_scored_before_the_comparison(results):
    strong_on_two_folds = STRONG.model_copy(update={"cv": STRONG.cv.model_copy(update={"folds": 2})})
    promote_run(results, STRONG, results / "runs" / EXPERIMENT / "strong")  # champion: 3-fold CV score
    recorded = champion(results)["cv"]["roc_auc"]["mean"]

    folder = train_run(results, strong_on_two_folds, "strong_two_folds")
    decision = promote_run(results, strong_on_two_folds, folder)

    assert "re-scored on this run's data and folds" in decision["reason"]
    challenger = read_json(folder / "leaderboard.json")["leaderboard"][0]["cv"]["roc_auc"]["mean"]
    # the same family and params on the same 2 folds score the same: a tie, so the champion stays
    assert decision["champion_score"] == pytest.approx(challenger, abs=1e-9)
    assert decision["champion_score"] != pytest.approx(recorded, abs=1e-9)
    assert decision["promoted"] is False
    assert champion(results)["run_id"] == "strong"
