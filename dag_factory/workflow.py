"""The steps of one run, in order, each bound to the run folder: what Airflow runs as tasks, and scripts in-process.

Each step reads its inputs from the run folder (through ``artifacts``), calls the pure step
functions in ``steps``, writes its outputs, mirrors them to MLflow when tracked, and returns
a small JSON-able summary (an Airflow XCom). ``STEPS`` is the table the DAG is built from;
``run_steps`` walks the same table without Airflow.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dag_factory.artifacts.champion_store import current_card
from dag_factory.artifacts.layout import MODEL_ERROR, MODEL_FILE, MODEL_METRICS, RunFiles, runs_dir
from dag_factory.artifacts.records import (
    Approval, DataProfile, Leaderboard, ModelFailure, RunMeta, SkipNote, StopReason,
)
from dag_factory.errors import DataError, NothingToDo, RunFailed, RunSkipped, TrackingError, UntrustedModel
from dag_factory.render.plots import draw_model_plots
from dag_factory.render.profile import log_profile, profile_markdown
from dag_factory.render.report import add_champion_pages, write_report
from dag_factory.render.tables import leaderboard_table
from dag_factory.spec.overrides import apply_overrides
from dag_factory.spec.schema import Catalog, ExperimentSpec, config_fingerprint, for_task
from dag_factory.steps import outcome
from dag_factory.steps.approval import ApprovalRequest
from dag_factory.steps.approval import approval_request as ask_for_approval
from dag_factory.steps.load import Attempt, load_data
from dag_factory.steps.preprocess import preprocess as preprocess_data
from dag_factory.steps.profile import profile as profile_data
from dag_factory.steps.promote import promote as promote_winner
from dag_factory.steps.baseline import baseline_row
from dag_factory.steps.select import select as select_winner
from dag_factory.steps.partitions import record_seen
from dag_factory.steps.share import share_in_drive
from dag_factory.steps.skip import record_training, unchanged_reason
from dag_factory.steps.train import train_model
from dag_factory.storage.files import read_parquet, write_parquet, write_text
from dag_factory.storage.location import StoragePath, is_local, remove_tree, require_bucket
from dag_factory.storage.publish import JUST_STARTED_SECONDS, building, local_folder, sweep_partials
from dag_factory.tracking import NoTracking, Tracker, tracker_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """What every step of one run works with: the spec (with this run's params applied) and where things go."""

    spec: ExperimentSpec
    catalog: Catalog
    project_root: Path
    results: StoragePath
    run_id: str
    models: tuple[str, ...]
    force: bool = False
    attempt: Attempt = Attempt()
    tracker: Tracker | NoTracking = field(default_factory=NoTracking)

    @property
    def files(self) -> RunFiles:
        return RunFiles.of(self.results, self.spec.experiment, self.run_id)

    def settled(self, meta: RunMeta | None = None) -> ExperimentSpec:
        """The spec with the task preprocess settled (inferred, when the spec has no ``task:``) and its metric."""
        return for_task(self.spec, (meta or RunMeta.read(self.files.meta)).task)

    @classmethod
    def of(cls, spec: ExperimentSpec, catalog: Catalog, project_root: Path, results: StoragePath, run_id: str,
           models: list[str] | None = None, force: bool = False, cv_folds: int | None = None,
           attempt: Attempt = Attempt()) -> Run:
        """A run of ``spec``, with the trigger's params (models, cv_folds, force) checked like the spec and applied."""
        spec, chosen = apply_overrides(spec, models, cv_folds)
        return cls(spec, catalog, project_root, results, run_id, tuple(chosen), force, attempt,
                   tracker_for(spec, run_id))


def load(run: Run) -> dict[str, Any]:
    """Load the data (and data.test_source, when given) and keep raw copies as Parquet in the run folder.

    A download is cached in ``data/source`` when the run folder is on this disk (a retry
    reuses it), else in a temporary folder.
    """
    files, data = run.files, run.spec.data
    require_bucket(files.folder)
    _sweep_killed_runs(run)
    if run.spec.data.engine == "spark":
        return _load_with_spark(run)
    summary: dict[str, Any] = {}
    with recording_stop_reason(files), local_folder(files.download_cache) as cache:
        run.tracker.start()
        for key in data.sources():
            target = files.raw if key == "source" else files.raw_test
            frame, origin = load_data(data, cache_dir=cache, base=run.project_root, attempt=run.attempt, key=key)
            write_parquet(_text_safe(frame), target)
            log.info("Loaded %d rows x %d columns from %s into %s", len(frame), frame.shape[1], origin, target)
            prefix = "" if key == "source" else "test_"
            summary |= {f"{prefix}raw_path": str(target), f"{prefix}rows": int(len(frame)),
                        f"{prefix}columns": int(frame.shape[1]), key: origin}
    return summary


def _load_with_spark(run: Run) -> dict[str, Any]:
    """The Spark engine's load: the partitions to process into data/raw.parquet, or a skip when none arrived."""
    from dag_factory.steps.spark import engine

    files = run.files
    files.skipped.unlink(missing_ok=True)
    with recording_stop_reason(files):
        run.tracker.start()
        summary, skip = engine.load(run.spec, files, run.results, run.project_root, run.force)
    if skip:
        _skip(run, skip)
    log.info("Loaded %s rows from %s into %s", f"{summary['rows']:,}", summary["source"], files.raw)
    return summary


def _skip(run: Run, reason: str) -> None:
    """Stop the run as skipped: the reason in data/skipped.json (and MLflow), then RunSkipped."""
    SkipNote(reason=reason).write(run.files.skipped)
    run.tracker.note_skip(reason)
    raise RunSkipped(reason)


def _sweep_killed_runs(run: Run) -> None:
    """Remove the half-built model folders (``models/.<name>.partial``) that killed runs of the experiment left."""
    runs = runs_dir(run.results, run.spec.experiment)
    if not is_local(runs):
        return  # on an object store a model is built in a temporary folder: nothing is left behind
    for folder in runs.glob("*/models"):
        for leftover in sweep_partials(folder, min_age_seconds=JUST_STARTED_SECONDS):
            log.warning("Removed %s, left by a run that was killed while training", leftover)


def profile(run: Run) -> dict[str, Any]:
    """Profile the raw data into profile.json and profile.md."""
    files = run.files
    if run.spec.data.engine == "spark":
        from dag_factory.steps.spark import engine

        summary = engine.profile(run.spec, files)
    else:
        summary = profile_data(read_parquet(files.raw), run.spec.data, task=run.spec.task)
    log_profile(summary)
    summary.write(files.profile_json)
    write_text(files.profile_md, profile_markdown(summary))
    log.info("Profile written to %s", files.profile_json)
    return {"rows": summary.rows, "columns": summary.columns,
            "class_balance": {k: v.model_dump() for k, v in summary.class_balance.items()}}


def preprocess(run: Run) -> dict[str, Any]:
    """Validate, clean and split; raise NothingToDo when the champion came from the same data and config."""
    files = run.files
    files.skipped.unlink(missing_ok=True)
    config = config_fingerprint(run.spec, run.catalog, list(run.models))
    with recording_stop_reason(files):
        meta = _prepare(run, config)
        run.tracker.log_data(DataProfile.read(files.profile_json), meta)
        champion = current_card(run.results, run.spec.experiment)  # a champion changed after promotion stops the run
    reason = unchanged_reason(meta, champion, run.results, run.spec.experiment)
    if reason and not run.force:
        _skip(run, reason)
    return {"rows": meta.rows, "train_rows": meta.train_rows, "test_rows": meta.test_rows, "classes": meta.classes,
            "fingerprint": meta.fingerprint}


def _prepare(run: Run, config: str) -> RunMeta:
    """Clean and split with the spec's engine."""
    if run.spec.data.engine == "spark":
        from dag_factory.steps.spark import engine

        return engine.preprocess(run.spec, run.files, run.results, run.run_id, config)
    raw_test = read_parquet(run.files.raw_test) if run.spec.data.test_source else None
    return preprocess_data(read_parquet(run.files.raw), run.spec, run.files, config, run.catalog, raw_test)


@contextmanager
def recording_stop_reason(files: RunFiles) -> Iterator[None]:
    """Keep why the run stops undecided (bad data, a refused champion, tracking down) in data/error.json.

    The CLI prints it as the run's one sentence, and the steps after it fail with it. A data
    problem or a refused champion is also logged as its one sentence.
    """
    files.stop_reason.unlink(missing_ok=True)  # left by an earlier try of this task
    try:
        yield
    except (DataError, UntrustedModel, TrackingError) as err:
        StopReason(error=str(err)).write(files.stop_reason)
        if not isinstance(err, TrackingError):
            log.error("The run stops undecided: %s", err)
        raise


def train(run: Run, model_name: str) -> dict[str, Any]:
    """Train one model into models/<name>/, published whole (metrics.json last); on failure leave error.json."""
    if model_name not in run.models:
        raise NothingToDo(f"model {model_name} is not in this run's 'models' param")
    files = run.files
    _require_data(files)  # a skipped run: each model says why it did not train
    meta = RunMeta.read(files.meta)
    spec = run.settled(meta)
    entry = next(m for m in spec.models if m.label == model_name)
    final = files.model(model_name)
    try:
        with building(final, last=MODEL_METRICS) as scratch:
            result, example = train_model(spec, entry, run.catalog[entry.model], meta, files, scratch)
            result.plots = draw_model_plots(scratch, result)
            result.model_path = str(final / MODEL_FILE)
            result.tracking = run.tracker.log_model(entry.label, scratch, result, example)
            result.write(scratch / MODEL_METRICS)
    except Exception as err:
        record_model_failure(run, model_name, f"{type(err).__name__}: {err}", traceback.format_exc())
        raise
    metric = spec.selection.metric
    return {"name": result.name, "metric": metric, "cv_mean": result.cv[metric].mean,
            "cv_std": result.cv[metric].std, "model_path": result.model_path}


def record_model_failure(run: Run, model_name: str, error: str, trace: str = "") -> None:
    """Replace whatever a failed attempt left in the model's folder by its error.json, for the leaderboard."""
    final = run.files.model(model_name)
    remove_tree(final)
    entry = next(m for m in run.spec.models if m.label == model_name)
    ModelFailure(name=model_name, model=entry.model, error=error, traceback=trace).write(final / MODEL_ERROR)
    log.error("Model %s failed: %s", model_name, error)


def select(run: Run) -> dict[str, Any]:
    """Write the leaderboard; fail with one reason when no model survived."""
    _require_data(run.files)
    spec = run.settled()
    board = select_winner(spec, run.files, run.run_id, baseline_row(spec, run.files))
    run.tracker.log_selection(board)
    if not board.ranked:
        raise RunFailed(f"no model to select: {board.decision.reason if board.decision else 'no model trained'}")
    return {"winner": board.winner, "metric": board.metric, "failed": board.failed,
            "leaderboard_path": str(run.files.leaderboard)}


def approval_request(run: Run) -> ApprovalRequest | None:
    """What to ask a reviewer before this run's winner is promoted (None: nothing to approve)."""
    return ask_for_approval(run.settled(), run.results, run.files)


def promote(run: Run, approval: dict[str, Any] | None = None) -> dict[str, Any]:
    """Promote this run's winner if it beats the champion (and, when the spec says so, a person approved it);
    returns the decision.

    Skips (NothingToDo) when an earlier step skipped the run. Also records that this run trained on
    its data and spec, so a later run on the same ones is skipped even when this winner was not
    promoted. A promoted model is then registered in MLflow (when tracked); a retry after a
    tracking failure finds the champion already promoted and only registers it. Last, the
    leaderboard and a new champion are copied to Google Drive when the spec publishes there (a
    retry uploads only what is missing).
    """
    files, experiment = run.files, run.spec.experiment
    _require_data(files)
    meta = RunMeta.read(files.meta)
    with recording_stop_reason(files):
        decision = promote_winner(run.settled(meta), run.results, files, meta, add_pages=add_champion_pages,
                                  approval=None if approval is None else Approval.model_validate(approval))
    board = Leaderboard.read(files.leaderboard)
    record_training(meta, board.run_id, run.results, experiment)
    record_seen(files, run.results, experiment)
    winner = board.winner_row
    if decision.promoted and winner is not None:
        registered = run.tracker.register(decision, winner)
        if registered:
            decision.registered = registered
            board.decision = decision
            board.write(files.leaderboard)
    if run.spec.publish is not None:
        share_in_drive(run.spec, run.results, files, decision)
    return decision.model_dump(mode="json")


def report(run: Run) -> None:
    """Log the leaderboard and write report.html; raise when any model failed, so the run is not a silent success.

    The run's MLflow run (when tracked) is closed here, as FINISHED or FAILED. Closing it must
    succeed for a run to succeed; a run that failed already keeps its own reason.
    """
    files = run.files
    try:
        _require_data(files)
        board = outcome.leaderboard_of(files)
    except NothingToDo:
        _close_quietly(run.tracker, failed=False, report_html=None)
        raise
    except RunFailed:
        _close_quietly(run.tracker, failed=True, report_html=None)
        raise
    log.info("Leaderboard of %s, run %s:\n%s", run.spec.experiment, board.run_id, leaderboard_table(board))
    log.info("HTML report written to %s", write_report(board, files.folder))
    failure = outcome.failure(run.spec, board)
    report_html = files.report.read_text(encoding="utf-8")
    if failure is None:
        run.tracker.finish(failed=False, report_html=report_html)
        return
    _close_quietly(run.tracker, failed=True, report_html=report_html)
    raise failure


def _close_quietly(tracker: Tracker | NoTracking, failed: bool, report_html: str | None) -> None:
    """Close the MLflow run of a run that failed or was skipped; a tracking failure then is only logged."""
    try:
        tracker.finish(failed=failed, report_html=report_html)
    except TrackingError as err:
        log.warning("The MLflow run was not closed: %s", err)


def _require_data(files: RunFiles) -> None:
    """Raise NothingToDo if preprocessing skipped the run, RunFailed if it stopped or never finished."""
    if files.skipped.exists():
        raise NothingToDo(SkipNote.read(files.skipped).reason)
    if files.stop_reason.exists():
        raise RunFailed(StopReason.read(files.stop_reason).error)
    if not files.meta.exists():
        raise RunFailed("the data was not prepared (load, profile or preprocess failed); see that task's log")


def _text_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A raw table ready for Parquet: column names as text, mixed-type text columns as text."""
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    for column in frame.columns[frame.dtypes == object]:
        frame[column] = frame[column].astype("string")
    return frame


#: The steps in the DAG's order; ``train`` runs once per model (mapped in Airflow).
STEPS: dict[str, Callable[..., Any]] = {
    "load_data": load, "profile": profile, "preprocess": preprocess, "train": train,
    "select": select, "promote": promote, "report": report,
}


def run_steps(run: Run, until: str = "report") -> RunFiles:
    """Every step in the DAG's order, in this process and without Airflow; returns the run's files.

    For scripts, tests and benchmarks. Unlike the DAG it stops at the first failure, and
    ``until`` names the last step to run.
    """
    if until not in STEPS:
        raise ValueError(f"until={until!r}: expected one of {', '.join(STEPS)}")
    for name, step in STEPS.items():
        if name == "train":
            for model in run.models:
                step(run, model)
        else:
            step(run)
        if name == until:
            break
    return run.files
