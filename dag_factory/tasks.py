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

from dag_factory.errors import DataError, ModelError, NothingToDo, RunFailed, TrackingError
from dag_factory.files import read_json, read_parquet, write_json, write_parquet, write_text
from dag_factory.html_report import REPORT_FILE, write_report
from dag_factory.layout import Project, last_trained_file, run_dir
from dag_factory.report import leaderboard_table
from dag_factory.spec import CatalogEntry, ExperimentSpec, ModelEntry, config_fingerprint
from dag_factory.steps.load import load_data
from dag_factory.steps.preprocess import preprocess
from dag_factory.steps.profile import log_profile, profile, to_markdown
from dag_factory.steps.promote import champion, promote
from dag_factory.steps.select import LEADERBOARD_FILE, select
from dag_factory.steps.train import train_model
from dag_factory.storage import StoragePath, local_copy_dir, require_bucket
from dag_factory.tracking import NoTracking, Tracker

log = logging.getLogger(__name__)

SKIP_FILE = "skipped.json"
STOP_REASON_FILE = "error.json"
RAW_FILE = "raw.parquet"
PROFILE_FILE = "profile.json"
META_FILE = "meta.json"
#: What a task gets when its spec tracks nothing.
NO_TRACKING = NoTracking()


def load_task(spec: ExperimentSpec, folder: StoragePath, project_root: Path | None = None,
              tracker: Tracker | NoTracking = NO_TRACKING) -> dict[str, Any]:
    """Load the data and keep a raw copy as Parquet in ``folder/data``.

    Relative source paths start at ``project_root`` (default: the located project). A
    download is cached in ``data/source`` when the run folder is on this disk (a retry reuses
    it), else in a temporary folder.
    """
    require_bucket(folder)
    data_dir = folder / "data"
    with recording_stop_reason(folder), local_copy_dir(data_dir / "source") as cache:
        tracker.start()
        frame, origin = load_data(spec.data, cache_dir=cache, base=project_root or Project.locate().root)
    raw_path = write_parquet(_text_safe(frame), data_dir / RAW_FILE)
    log.info("Loaded %d rows x %d columns from %s into %s", len(frame), frame.shape[1], origin, raw_path)
    return {"raw_path": str(raw_path), "rows": int(len(frame)), "columns": int(frame.shape[1]), "source": origin}


def profile_task(spec: ExperimentSpec, folder: StoragePath) -> dict[str, Any]:
    """Profile the raw data into profile.json and profile.md."""
    summary = profile(read_parquet(folder / "data" / RAW_FILE), spec.data)
    log_profile(summary)
    write_json(folder / PROFILE_FILE, summary)
    write_text(folder / "profile.md", to_markdown(summary))
    log.info("Profile written to %s", folder / PROFILE_FILE)
    return {"rows": summary["rows"], "columns": summary["columns"], "class_balance": summary["class_balance"]}


def preprocess_task(
    spec: ExperimentSpec, folder: StoragePath, results: StoragePath, config: str, force: bool = False,
    tracker: Tracker | NoTracking = NO_TRACKING,
) -> dict[str, Any]:
    """Validate, clean and split; raise NothingToDo when the champion came from the same data and config.

    ``config`` is the run's ``config_fingerprint``: a changed spec retrains even on the same data.
    """
    (folder / "data" / SKIP_FILE).unlink(missing_ok=True)
    with recording_stop_reason(folder):
        meta = preprocess(read_parquet(folder / "data" / RAW_FILE), spec.data, spec.split, folder / "data")
    meta["config_fingerprint"] = config
    with recording_stop_reason(folder):
        check_folds(meta["train_class_counts"], spec.cv.folds, spec.data.target)
    write_json(folder / "data" / META_FILE, meta)
    with recording_stop_reason(folder):
        tracker.log_data(read_json(folder / PROFILE_FILE), meta)
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
        tracker.note_skip(reason)
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
def recording_stop_reason(folder: StoragePath) -> Iterator[None]:
    """Keep why the run stops before training (bad data, tracking down) in data/error.json, for the CLI to print.

    A data problem is also logged as its one sentence.
    """
    record = folder / "data" / STOP_REASON_FILE
    record.unlink(missing_ok=True)  # left by an earlier try of this task
    try:
        yield
    except (DataError, TrackingError) as err:
        write_json(record, {"error": str(err)})
        if isinstance(err, DataError):
            log.error("Data problem, the run stops before training: %s", err)
        raise


def train_task(
    spec: ExperimentSpec, folder: StoragePath, entry: ModelEntry, catalog: CatalogEntry, meta: dict[str, Any],
    selected: bool = True, tracker: Tracker | NoTracking = NO_TRACKING,
) -> dict[str, Any]:
    """Train one model; returns the small summary that travels through XCom."""
    if not selected:
        raise NothingToDo(f"model {entry.label} is not in this run's 'models' param")
    with time_limit(spec.model_timeout_seconds(entry), f"model {entry.label}"):
        summary = train_model(spec, entry, catalog, meta, folder, record=tracker.log_model)
    metric = spec.selection.metric
    return {"name": entry.label, "metric": metric, "cv_mean": summary["cv"][metric]["mean"],
            "cv_std": summary["cv"][metric]["std"], "model_path": summary["model_path"]}


def select_task(spec: ExperimentSpec, folder: StoragePath, run_id: str,
                tracker: Tracker | NoTracking = NO_TRACKING) -> dict[str, Any]:
    """Write the leaderboard; fail with one reason when no model survived."""
    _require_data(folder)
    board = select(spec, folder, run_id)
    tracker.log_selection(board)
    if not any(r["status"] == "ok" for r in board["leaderboard"]):
        raise RunFailed(f"no model to select: {board['decision']['reason']}")
    return {"winner": board["winner"], "metric": board["metric"], "failed": board["failed"],
            "leaderboard_path": str(folder / LEADERBOARD_FILE)}


def promote_task(spec: ExperimentSpec, folder: StoragePath, results: StoragePath,
                 tracker: Tracker | NoTracking = NO_TRACKING) -> dict[str, Any]:
    """Promote this run's winner if it beats the champion; returns the decision.

    Also records that this run trained on its data and spec, so a later run on the same ones
    is skipped even when this winner was not promoted. A promoted model is then registered
    in MLflow (when tracked); a retry after a tracking failure finds the champion already
    promoted and only registers it.
    """
    meta = read_json(folder / "data" / META_FILE)
    decision = promote(spec, results, folder, meta)
    board = read_json(folder / LEADERBOARD_FILE)
    write_json(last_trained_file(results, spec.experiment), {
        "run_id": board["run_id"], "fingerprint": meta["fingerprint"],
        "config_fingerprint": meta.get("config_fingerprint")})
    if decision["promoted"]:
        winner = next(r for r in board["leaderboard"] if r["name"] == board["winner"])
        registered = tracker.register(decision, winner)
        if registered:
            board["decision"] = decision = {**decision, "registered": registered}
            write_json(folder / LEADERBOARD_FILE, board)
    return decision


def report_task(spec: ExperimentSpec, folder: StoragePath, tracker: Tracker | NoTracking = NO_TRACKING) -> None:
    """Log the leaderboard and write report.html; raise when any model failed, so the run is not a silent success.

    The DAG run's MLflow run (when tracked) is closed here, as FINISHED or FAILED. Closing it
    must succeed for a run to succeed; a run that failed already keeps its own reason.
    """
    try:
        failure = _run_outcome(spec, folder)
    except NothingToDo:
        _close_quietly(tracker, failed=False, report_html=None)
        raise
    except RunFailed:
        _close_quietly(tracker, failed=True, report_html=None)
        raise
    report_html = (folder / REPORT_FILE).read_text(encoding="utf-8")
    if failure is None:
        tracker.finish(failed=False, report_html=report_html)
        return
    _close_quietly(tracker, failed=True, report_html=report_html)
    raise failure


def _close_quietly(tracker: Tracker | NoTracking, failed: bool, report_html: str | None) -> None:
    """Close the MLflow run of a run that failed or was skipped; a tracking failure then is only logged."""
    try:
        tracker.finish(failed=failed, report_html=report_html)
    except TrackingError as err:
        log.warning("The MLflow run was not closed: %s", err)


def _run_outcome(spec: ExperimentSpec, folder: StoragePath) -> RunFailed | None:
    """Write the report; return why the run failed (None when it succeeded).

    Raises NothingToDo when the run was skipped, RunFailed when it stopped before the leaderboard.
    """
    _require_data(folder)
    board_path = folder / LEADERBOARD_FILE
    if not board_path.exists():
        raise RunFailed(f"the run stopped before the leaderboard was written ({board_path}); "
                        "see the failed task's log")
    board = read_json(board_path)
    log.info("Leaderboard of %s, run %s:\n%s", spec.experiment, board["run_id"], leaderboard_table(board))
    log.info("HTML report written to %s", write_report(board, folder))
    decision = board["decision"]
    if board["winner"] is not None and decision is None:
        return RunFailed(f"the promotion of {board['winner']} did not happen or did not finish (see the log of the "
                         "failed task, select or promote); the champion is unchanged, clear that task to try again")
    if spec.tracking is not None and decision.get("promoted") and "registered" not in decision:
        return RunFailed(f"{board['winner']} was promoted to {decision.get('path')} but not registered in MLflow "
                         "(see the promote task's log); clear the promote task to register it")
    if board["failed"] and not any(r["status"] == "ok" for r in board["leaderboard"]):
        return RunFailed(f"nothing was promoted: {board['decision']['reason']}")
    if board["failed"]:
        return RunFailed(f"{len(board['failed'])} of {len(spec.models)} model(s) failed: {', '.join(board['failed'])}; "
                         "the others were compared without them (see the leaderboard and the failed tasks' logs)")
    return None


RUN_STEPS_UNTIL = ("preprocess", "select", "promote", "report")


def run_steps(
    spec: ExperimentSpec, catalog: dict[str, CatalogEntry], results: StoragePath, run_id: str, force: bool = False,
    until: str = "report", tracker: Tracker | NoTracking = NO_TRACKING,
) -> StoragePath:
    """Every task body in the DAG's order, in this process and without Airflow; returns the run folder.

    For scripts, tests and benchmarks. Unlike the DAG it stops at the first failure, and
    ``until`` ("preprocess", "select", "promote" or "report") names the last step to run.
    """
    if until not in RUN_STEPS_UNTIL:
        raise ValueError(f"until={until!r}: expected one of {', '.join(RUN_STEPS_UNTIL)}")
    folder = run_dir(results, spec.experiment, run_id)
    load_task(spec, folder, tracker=tracker)
    profile_task(spec, folder)
    config = config_fingerprint(spec, catalog, spec.model_names())
    meta = preprocess_task(spec, folder, results, config, force=force, tracker=tracker)
    if until == "preprocess":
        return folder
    for entry in spec.models:
        train_task(spec, folder, entry, catalog[entry.model], meta, tracker=tracker)
    select_task(spec, folder, run_id, tracker)
    if until == "select":
        return folder
    promote_task(spec, folder, results, tracker)
    if until == "promote":
        return folder
    report_task(spec, folder, tracker)
    return folder


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


def _require_data(folder: StoragePath) -> None:
    """Raise NothingToDo if preprocessing skipped the run, RunFailed if it never finished."""
    skip = folder / "data" / SKIP_FILE
    if skip.exists():
        raise NothingToDo(read_json(skip)["reason"])
    if not (folder / "data" / META_FILE).exists():
        raise RunFailed("the data was not prepared (load, profile or preprocess failed); see that task's log")


def _text_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A raw table ready for Parquet: column names as text, mixed-type text columns as text."""
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    for column in frame.columns[frame.dtypes == object]:
        frame[column] = frame[column].astype("string")
    return frame
