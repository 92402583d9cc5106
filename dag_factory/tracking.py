"""MLflow tracking: each DAG run is a parent MLflow run, each model a nested run, promotion moves an alias.

The run folder stays the record; MLflow mirrors it. Each call happens once the step's own
files are complete (a model is logged before its folder is published), so a tracking failure
fails the task, which Airflow retries, and never leaves half-written results behind. Runs are
found again by their tags, so a retried task adds to the runs it started instead of duplicating them.
Each operation is retried with exponential backoff (tenacity, ``tracking.retries``); MLflow's own
per-request retries are turned off so the two do not multiply. MLflow is imported only inside
these methods: the DAG file never loads it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dag_factory.artifacts.layout import LEADERBOARD, MODEL_FILE, MODEL_METRICS, PREDICTIONS, REPORT, RunFiles
from dag_factory.artifacts.records import DataProfile, Decision, Leaderboard, ModelResult, RankedRow, RunMeta
from dag_factory.errors import SpecError, TrackingError
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.storage.location import StoragePath

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

log = logging.getLogger(__name__)
T = TypeVar("T")

CHAMPION_ALIAS = "champion"
ROLE_TAG = "dag_factory.role"
RUN_TAG = "dag_factory.airflow_run_id"
MODEL_TAG = "dag_factory.model"
PARENT_TAG = "mlflow.parentRunId"
#: pip packages a logged model needs, besides its estimator's own package.
MODEL_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "skops")


def tracker_for(spec: ExperimentSpec, airflow_run_id: str) -> Tracker | NoTracking:
    """The spec's tracker for one DAG run, or a stand-in that does nothing when the spec tracks nothing."""
    if spec.tracking is None:
        return NoTracking()
    return Tracker(spec, airflow_run_id)


class NoTracking:
    """What a spec without a ``tracking`` section gets: every call does nothing."""

    def start(self) -> None:
        return None

    def log_data(self, profile: DataProfile, meta: RunMeta) -> None:
        return None

    def note_skip(self, reason: str) -> None:
        return None

    def log_model(self, label: str, folder: Path, result: ModelResult, example: pd.DataFrame) -> dict[str, str]:
        return {}

    def log_selection(self, board: Leaderboard) -> None:
        return None

    def register(self, decision: Decision, winner: RankedRow) -> dict[str, str]:
        return {}

    def finish(self, failed: bool, report_html: str | None) -> None:
        return None


class Tracker:
    """One DAG run's view of an MLflow tracking server."""

    def __init__(self, spec: ExperimentSpec, airflow_run_id: str) -> None:
        assert spec.tracking is not None
        tracking, experiment = spec.tracking, spec.experiment
        self.uri = tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or ""
        if not self.uri:
            raise SpecError(f"experiment {experiment}", [
                "tracking.uri is not set and $MLFLOW_TRACKING_URI is empty; set tracking.uri in the spec "
                "(e.g. http://mlflow.internal:5000) or export MLFLOW_TRACKING_URI for every Airflow component"])
        self.spec = spec
        self.settings = tracking
        self.experiment_name = tracking.experiment or experiment
        self.model_name = tracking.registered_model or experiment
        self.airflow_run_id = airflow_run_id
        # MLflow's client reads its per-request limits from the environment only. This process's requests
        # get the spec's time limit and no retries of their own: ``_call`` retries whole operations.
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int(tracking.timeout_seconds)))
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"

    def _call(self, what: str, operation: Callable[[MlflowClient], T]) -> T:
        """Run ``operation`` with a client on this spec's server, retried ``tracking.retries`` times with
        exponential backoff; a failure that outlasts them becomes a TrackingError naming the server."""
        import mlflow
        import tenacity

        client = mlflow.MlflowClient(tracking_uri=self.uri)
        retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(self.settings.retries + 1),
                                     wait=tenacity.wait_exponential(multiplier=0.5, max=10), reraise=True)
        try:
            return retrying(operation, client)
        except Exception as err:  # noqa: BLE001  the server, the network or the store: all are tracking failures
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            retries = self.settings.retries
            raise TrackingError(
                f"tracking: {what} failed on the MLflow server at {self.uri} after {retries} "
                f"{'retry' if retries == 1 else 'retries'} ({type(err).__name__}: {reason}); check that the server "
                "is up and tracking.uri is right. Nothing half-written was left in the results; Airflow retries "
                "the task") from err

    @contextmanager
    def _fluent(self) -> Iterator[None]:
        """MLflow's fluent API (log_model, register_model) pointed at this spec's server for the block."""
        import mlflow

        previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        mlflow.set_tracking_uri(self.uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(previous)

    def _experiment_id(self, client: MlflowClient) -> str:
        found = client.get_experiment_by_name(self.experiment_name)
        return found.experiment_id if found else client.create_experiment(self.experiment_name)

    def _parent(self, client: MlflowClient) -> str:
        """The MLflow run of this DAG run: found by its tags, created by the first task that asks."""
        experiment_id = self._experiment_id(client)
        found = client.search_runs([experiment_id], max_results=1, filter_string=(
            f"tags.`{RUN_TAG}` = '{self.airflow_run_id}' and tags.`{ROLE_TAG}` = 'dag_run'"))
        if found:
            return found[0].info.run_id
        run = client.create_run(experiment_id, run_name=self.airflow_run_id,
                                tags={RUN_TAG: self.airflow_run_id, ROLE_TAG: "dag_run"})
        return run.info.run_id

    def _child(self, client: MlflowClient, parent: str, label: str) -> str:
        """The nested MLflow run of one model in this DAG run (a retried task reuses it)."""
        experiment_id = client.get_run(parent).info.experiment_id
        found = client.search_runs([experiment_id], max_results=1, filter_string=(
            f"tags.`{PARENT_TAG}` = '{parent}' and tags.`{MODEL_TAG}` = '{label}'"))
        if found:
            return found[0].info.run_id
        run = client.create_run(experiment_id, run_name=label, tags={
            PARENT_TAG: parent, MODEL_TAG: label, RUN_TAG: self.airflow_run_id, ROLE_TAG: "model"})
        return run.info.run_id

    def start(self) -> None:
        """Open (or find again) this DAG run's MLflow run and record the experiment's settings as params."""
        from mlflow.entities import Param

        spec = self.spec
        params = {"data.source": spec.data.source, "data.target": spec.data.target,
                  "data.positive_class": spec.data.positive_class, "split.test_size": spec.split.test_size,
                  "split.seed": spec.split.seed, "cv.folds": spec.cv.folds, "cv.repeats": spec.cv.repeats,
                  "cv.seed": spec.cv.seed, "selection.metric": spec.selection.metric,
                  "selection.require": spec.selection.require, "models": ",".join(spec.model_names())}

        def start(client: MlflowClient) -> str:
            parent = self._parent(client)
            client.log_batch(parent, params=[Param(k, _param_value(v)) for k, v in params.items()])
            return parent

        parent = self._call("starting the run", start)
        log.info("Tracking this run in MLflow experiment %s at %s (run %s)", self.experiment_name, self.uri, parent)

    def log_data(self, profile: DataProfile, meta: RunMeta) -> None:
        """The data profile and split, on the DAG run's MLflow run."""

        def log_data(client: MlflowClient) -> None:
            parent = self._parent(client)
            client.log_dict(parent, profile.model_dump(mode="json"), "profile.json")
            client.set_tag(parent, "dag_factory.data_fingerprint", meta.fingerprint)
            for key in ("rows", "train_rows", "test_rows"):
                client.set_tag(parent, f"dag_factory.{key}", str(getattr(meta, key)))

        self._call("logging the data profile", log_data)

    def note_skip(self, reason: str) -> None:
        self._call("recording the skip",
                   lambda client: client.set_tag(self._parent(client), "dag_factory.skipped", reason[:5000]))

    def log_model(self, label: str, folder: Path, result: ModelResult, example: pd.DataFrame) -> dict[str, str]:
        """A nested run for one trained model: params, CV and test metrics, plots, and the model in MLflow's format.

        ``folder`` is the model's local folder, complete but not yet published.
        """
        import mlflow
        from mlflow.entities import Metric, Param
        from mlflow.models import infer_signature

        from dag_factory.artifacts.model_file import load_model, trusted_types_of

        model = load_model(folder / MODEL_FILE)
        params = {**result.params, **{f"search.{k}": v for k, v in result.chosen_params.items()},
                  "estimator": result.estimator, "threshold": result.threshold.value}

        def log_model(client: MlflowClient) -> tuple[str, str]:
            run_id = self._child(client, self._parent(client), label)
            client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in params.items()],
                             metrics=[Metric(k, v, _now_ms(), 0) for k, v in _metrics(result).items()])
            if (folder / "plots").is_dir():
                client.log_artifacts(run_id, str(folder / "plots"), "plots")
            client.log_artifact(run_id, str(folder / PREDICTIONS))
            client.log_dict(run_id, result.model_dump(mode="json"), MODEL_METRICS)
            with self._fluent(), mlflow.start_run(run_id=run_id):
                info = mlflow.sklearn.log_model(
                    model, name="model", serialization_format="skops",
                    skops_trusted_types=trusted_types_of(folder / MODEL_FILE),
                    signature=infer_signature(example, model.predict(example)), input_example=example,
                    pip_requirements=_requirements(result.estimator))
            return run_id, info.model_uri

        run_id, model_uri = self._call(f"logging model {label}", log_model)
        log.info("Model %s logged to MLflow run %s as %s", label, run_id, model_uri)
        return {"run_id": run_id, "model_uri": model_uri}

    def log_selection(self, board: Leaderboard) -> None:
        """Tag each model's run with its rank, the winner's with ``dag_factory.winner``; the leaderboard on the parent."""

        def log_selection(client: MlflowClient) -> None:
            parent = self._parent(client)
            client.log_dict(parent, board.model_dump(mode="json"), LEADERBOARD)
            for row in board.ranked:
                if row.tracking:
                    run_id = row.tracking["run_id"]
                    client.set_tag(run_id, "dag_factory.rank", str(row.rank))
                    client.set_tag(run_id, "dag_factory.eligible", str(row.eligible).lower())
                    client.set_tag(run_id, "dag_factory.winner", str(row.name == board.winner).lower())
            winner = board.winner_row
            if winner is not None:
                client.set_tag(parent, "dag_factory.winner", winner.name)
                client.log_metric(parent, f"best_cv_{board.metric}", winner.score(board.metric))

        self._call("recording the leaderboard", log_selection)

    def register(self, decision: Decision, winner: RankedRow) -> dict[str, str]:
        """Register the promoted model as a version of the registered model and point the champion alias at it.

        A retry finds the version this run registered before, so it is never registered twice.
        """
        import mlflow

        source = winner.tracking
        if not source:
            raise TrackingError(f"tracking: model {winner.name} has no MLflow run (it was trained before tracking "
                                "was configured); retrain with force=true to register it")

        def register(client: MlflowClient) -> str:
            existing = client.search_model_versions(f"name='{self.model_name}' and run_id='{source['run_id']}'")
            with self._fluent():
                version = existing[0] if existing else mlflow.register_model(
                    source["model_uri"], self.model_name, tags={
                        RUN_TAG: self.airflow_run_id, MODEL_TAG: winner.name, "dag_factory.metric": str(decision.metric),
                        "dag_factory.score": str(decision.challenger_score),
                        "dag_factory.champion_path": str(decision.path or "")})
            client.set_registered_model_alias(self.model_name, CHAMPION_ALIAS, version.version)
            client.set_tag(self._parent(client), "dag_factory.promoted", f"{self.model_name} v{version.version}")
            return str(version.version)

        version = self._call(f"registering {winner.name} as {self.model_name}@{CHAMPION_ALIAS}", register)
        log.info("MLflow: %s version %s is now @%s", self.model_name, version, CHAMPION_ALIAS)
        return {"registered_model": self.model_name, "version": version, "alias": CHAMPION_ALIAS}

    def move_alias(self, version: str) -> None:
        """Point the champion alias at an existing version of the registered model (a rollback)."""

        def move(client: MlflowClient) -> None:
            client.set_registered_model_alias(self.model_name, CHAMPION_ALIAS, version)

        self._call(f"moving {self.model_name}@{CHAMPION_ALIAS} to version {version}", move)
        log.info("MLflow: %s version %s is now @%s", self.model_name, version, CHAMPION_ALIAS)

    def finish(self, failed: bool, report_html: str | None) -> None:
        """Close the DAG run's MLflow run as FINISHED or FAILED, with the HTML report when there is one."""

        def finish(client: MlflowClient) -> None:
            parent = self._parent(client)
            if report_html is not None:
                client.log_text(parent, report_html, REPORT)
            client.set_terminated(parent, "FAILED" if failed else "FINISHED")

        self._call("closing the run", finish)


def _metrics(result: ModelResult) -> dict[str, float]:
    """cv_<metric>_mean / cv_<metric>_std and test_<metric>, as MLflow metrics."""
    values = {}
    for name, stats in result.cv.items():
        values[f"cv_{name}_mean"] = stats.mean
        values[f"cv_{name}_std"] = stats.std
    values.update({f"test_{name}": float(value) for name, value in result.test.items()})
    values["refit_seconds"] = result.refit_seconds
    return values


def _param_value(value: Any) -> str:
    """A param as MLflow stores it: text of at most 6000 characters."""
    return str(value)[:6000]


def _requirements(estimator: str) -> list[str]:
    """Pinned pip requirements of a logged model (given, so MLflow need not load the model to infer them)."""
    packages = list(MODEL_PACKAGES)
    if estimator.startswith("xgboost."):
        packages.append("xgboost-cpu" if _version("xgboost-cpu") else "xgboost")
    return [f"{name}=={version}" for name in packages if (version := _version(name))]


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


def move_champion_alias(spec: ExperimentSpec, results: StoragePath, run_id: str) -> str | None:
    """After a rollback to the champion of run ``run_id``: point the champion alias at the version that run
    registered; returns ``model@alias -> version`` (None when the spec tracks nothing).

    The version comes from that run's leaderboard (``decision.registered``), the record of its promotion.
    """
    if spec.tracking is None:
        return None
    board_file = RunFiles.of(results, spec.experiment, run_id).leaderboard
    decision = Leaderboard.read(board_file).decision if board_file.exists() else None
    registered = decision.registered if decision is not None else None
    tracker = Tracker(spec, run_id)
    if not registered:
        raise TrackingError(f"tracking: the restored champion (run {run_id}) has no registered version in "
                            f"{board_file}, so {tracker.model_name}@{CHAMPION_ALIAS} was not moved; set the alias "
                            "in MLflow by hand")
    tracker.move_alias(registered["version"])
    return f"{tracker.model_name}@{CHAMPION_ALIAS} -> version {registered['version']}"
