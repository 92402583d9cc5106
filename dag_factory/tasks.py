"""Task bodies: each pipeline step bound to the run folder's files, without Airflow.

The Airflow glue (``factory``) calls these from its tasks; a plain script can call them in the
same order. Inputs are the spec and paths; outputs are files plus a small JSON-able dict.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from dag_factory.errors import DataError, ModelError, NothingToDo, RunFailed
from dag_factory.files import read_json, write_json, write_text
from dag_factory.html_report import REPORT_FILE, write_report
from dag_factory.layout import Project, last_trained_file
from dag_factory.report import leaderboard_table
from dag_factory.spec import CatalogEntry, ExperimentSpec, ModelEntry
from dag_factory.steps.load import load_data
from dag_factory.steps.preprocess import preprocess
from dag_factory.steps.profile import log_profile, profile, to_markdown
from dag_factory.steps.promote import champion, promote
from dag_factory.steps.select import LEADERBOARD_FILE, select
from dag_factory.steps.train import train_model

log = logging.getLogger(__name__)

SKIP_FILE = "skipped.json"
DATA_ERROR_FILE = "error.json"


def load_task(spec: ExperimentSpec, folder: Path, project_root: Path | None = None) -> dict[str, Any]:
    """Load the data and keep a raw copy as Parquet in ``folder/data``.

    Relative source paths start at ``project_root`` (default: the located project).
    """
    data_dir = folder / "data"
    with recording_data_errors(folder):
        frame, origin = load_data(spec.data, cache_dir=data_dir / "source", base=project_root or Project.locate().root)
    raw_path = data_dir / "raw.parquet"
    _to_parquet(frame, raw_path)
    log.info("Loaded %d rows x %d columns from %s into %s", len(frame), frame.shape[1], origin, raw_path)
    return {"raw_path": str(raw_path), "rows": int(len(frame)), "columns": int(frame.shape[1]), "source": origin}


def profile_task(spec: ExperimentSpec, folder: Path, loaded: dict[str, Any]) -> dict[str, Any]:
    """Profile the raw data into profile.json and profile.md."""
    summary = profile(pd.read_parquet(loaded["raw_path"]), spec.data)
    log_profile(summary)
    write_json(folder / "profile.json", summary)
    write_text(folder / "profile.md", to_markdown(summary))
    log.info("Profile written to %s", folder / "profile.json")
    return {"rows": summary["rows"], "columns": summary["columns"], "class_balance": summary["class_balance"]}


def preprocess_task(
    spec: ExperimentSpec, folder: Path, results: Path, loaded: dict[str, Any], config: str, force: bool = False
) -> dict[str, Any]:
    """Validate, clean and split; raise NothingToDo when the champion came from the same data and config.

    ``config`` is the run's ``config_fingerprint``: a changed spec retrains even on the same data.
    """
    (folder / "data" / SKIP_FILE).unlink(missing_ok=True)
    with recording_data_errors(folder):
        meta = preprocess(pd.read_parquet(loaded["raw_path"]), spec.data, spec.split, folder / "data")
    meta["config_fingerprint"] = config
    with recording_data_errors(folder):
        check_folds(meta["train_class_counts"], spec.cv.folds, spec.data.target)
    write_json(folder / "data" / "meta.json", meta)
    current = champion(results, spec.experiment)
    last = last_trained_file(results, spec.experiment)
    earlier = [{"run_id": current["run_id"], "fingerprint": current["data"]["fingerprint"],
                "config_fingerprint": current.get("config_fingerprint")}] if current else []
    earlier += [read_json(last)] if last.exists() else []
    same = next((e for e in earlier if (e["fingerprint"], e["config_fingerprint"]) == (meta["fingerprint"], config)), None)
    if same and not force:
        who = (f"the champion was trained in run {same['run_id']}" if current and same["run_id"] == current["run_id"]
               else f"run {same['run_id']} trained on them (its winner did not beat the champion)")
        reason = (f"data and spec unchanged since {who} "
                  f"(data fingerprint {meta['fingerprint'][:12]}); training skipped. "
                  "Trigger with force=true (CLI: --force) to retrain anyway.")
        write_json(folder / "data" / SKIP_FILE, {"reason": reason})
        raise NothingToDo(reason)
    return meta


def check_folds(class_counts: dict[str, int], folds: int, target: str) -> None:
    """Every class needs a row in each CV fold: refuse, before training, a class smaller than the folds."""
    label, count = min(class_counts.items(), key=lambda kv: kv[1])
    if count < folds:
        raise DataError(f'data.target: class "{label}" of "{target}" has only {count} row(s) in the training split, '
                        f"fewer than cv.folds ({folds}); lower cv.folds (or the cv_folds param), lower "
                        "split.test_size, or add rows of that class")


@contextmanager
def recording_data_errors(folder: Path) -> Iterator[None]:
    """Log a DataError as its one sentence and keep it in data/error.json, for the CLI to print after the run."""
    record = folder / "data" / DATA_ERROR_FILE
    record.unlink(missing_ok=True)  # left by an earlier try of this task
    try:
        yield
    except DataError as err:
        write_json(record, {"error": str(err)})
        log.error("Data problem, the run stops before training: %s", err)
        raise


def train_task(
    spec: ExperimentSpec, folder: Path, entry: ModelEntry, catalog: CatalogEntry, meta: dict[str, Any],
    selected: bool = True,
) -> dict[str, Any]:
    """Train one model; returns the small summary that travels through XCom."""
    if not selected:
        raise NothingToDo(f"model {entry.label} is not in this run's 'models' param")
    with time_limit(spec.model_timeout_seconds(entry), f"model {entry.label}"):
        summary = train_model(spec, entry, catalog, meta, folder / "models")
    metric = spec.selection.metric
    return {"name": entry.label, "metric": metric, "cv_mean": summary["cv"][metric]["mean"],
            "cv_std": summary["cv"][metric]["std"], "model_path": summary["model_path"]}


def select_task(spec: ExperimentSpec, folder: Path, run_id: str) -> dict[str, Any]:
    """Write the leaderboard; fail with one reason when no model survived."""
    _require_data(folder)
    board = select(spec, folder, run_id)
    if not any(r["status"] == "ok" for r in board["leaderboard"]):
        raise RunFailed(f"no model to select: {board['decision']['reason']}")
    return {"winner": board["winner"], "metric": board["metric"], "failed": board["failed"],
            "leaderboard_path": str(folder / LEADERBOARD_FILE)}


def promote_task(spec: ExperimentSpec, folder: Path, results: Path) -> dict[str, Any]:
    """Promote this run's winner if it beats the champion; returns the decision.

    Also records that this run trained on its data and spec, so a later run on the same ones
    is skipped even when this winner was not promoted.
    """
    meta = read_json(folder / "data" / "meta.json")
    decision = promote(spec, results, folder, meta)
    write_json(last_trained_file(results, spec.experiment), {
        "run_id": read_json(folder / LEADERBOARD_FILE)["run_id"], "fingerprint": meta["fingerprint"],
        "config_fingerprint": meta.get("config_fingerprint")})
    return decision


def report_task(spec: ExperimentSpec, folder: Path) -> None:
    """Log the leaderboard and write report.html; raise when any model failed, so the run is not a silent success."""
    _require_data(folder)
    board_path = folder / LEADERBOARD_FILE
    if not board_path.exists():
        raise RunFailed(f"the run stopped before the leaderboard was written ({board_path}); see the failed task's log")
    board = read_json(board_path)
    log.info("Leaderboard of %s, run %s:\n%s", spec.experiment, board["run_id"], leaderboard_table(board))
    log.info("HTML report written to %s", write_report(board, folder / REPORT_FILE))
    if board["winner"] is not None and board["decision"] is None:
        raise RunFailed(f"the promotion of {board['winner']} did not finish (see the promote task's log); "
                         "the champion is unchanged, clear the promote task to try again")
    if board["failed"] and not any(r["status"] == "ok" for r in board["leaderboard"]):
        raise RunFailed(f"nothing was promoted: {board['decision']['reason']}")
    if board["failed"]:
        raise RunFailed(f"{len(board['failed'])} of {len(spec.models)} model(s) failed: {', '.join(board['failed'])}; "
                         "the others were compared without them (see the leaderboard and the failed tasks' logs)")


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise ModelError in the main thread when ``seconds`` pass (no limit for None)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    start = time.monotonic()
    outer, _ = signal.getitimer(signal.ITIMER_REAL)  # an Airflow execution_timeout uses the same timer

    def expire(signum: int, frame: Any) -> None:
        if time.monotonic() - start < seconds - 0.01 and callable(previous):
            previous(signum, frame)  # the outer deadline came first: let its handler act
        raise ModelError(f"{what} exceeded its time limit of {seconds:g}s (timeout_minutes in the spec)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer else seconds)
    try:
        yield
    finally:
        left = outer - (time.monotonic() - start) if outer else 0.0
        # hand back what is left of the outer deadline; one already passed fires at once (0 would cancel it)
        signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3) if outer else 0.0)
        signal.signal(signal.SIGALRM, previous)


def _require_data(folder: Path) -> None:
    """Raise NothingToDo if preprocessing skipped the run, DataError if it never finished."""
    skip = folder / "data" / SKIP_FILE
    if skip.exists():
        raise NothingToDo(read_json(skip)["reason"])
    if not (folder / "data" / "meta.json").exists():
        raise RunFailed("the data was not prepared (load, profile or preprocess failed); see that task's log")


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write a raw table as Parquet, keeping mixed-type text columns as text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    for column in frame.columns[frame.dtypes == object]:
        frame[column] = frame[column].astype("string")
    frame.to_parquet(path)
