"""The experiment spec and the model-catalog entry: pydantic models, nothing else.

Reading YAML files into these models (with file-and-line error messages) lives in
``dag_factory.spec.loader``; this module only says what a valid spec is.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
SLUG_HINT = "lower-case letters, digits and underscores, starting with a letter, at most 63 characters"

#: What an experiment predicts: a class (classification) or a number (regression).
TaskKind = Literal["classification", "regression"]

#: Metrics the selector can rank on, per task. Every model reports all the metrics of its task.
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "roc_auc",
                          "pr_auc", "mcc", "log_loss", "brier")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
TASK_METRICS: dict[str, tuple[str, ...]] = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}
#: The metric a task ranks on when the spec names none: ROC-AUC (threshold-free), RMSE (in the target's own unit).
DEFAULT_METRIC = {"classification": "roc_auc", "regression": "rmse"}
#: The metrics a summary shows (the leaderboard in the terminal, the train task's log), the ranking metric first.
HEADLINE_METRICS = {"classification": ("roc_auc", "accuracy", "recall", "specificity", "f1"),
                    "regression": REGRESSION_METRICS}
#: Direction of every metric (the names of the two tasks never clash, so one table serves both).
LOWER_IS_BETTER = ("log_loss", "brier", "rmse", "mae", "mape")
HIGHER_IS_BETTER = tuple(m for m in CLASSIFICATION_METRICS + REGRESSION_METRICS if m not in LOWER_IS_BETTER)
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
MetricName = Literal[METRICS]  # type: ignore[valid-type]  # one list of names, not two to keep in step

#: Estimators are imported only from these module prefixes (plus DAG_FACTORY_ALLOWED_MODULES).
DEFAULT_ALLOWED_MODULES = ("sklearn.", "xgboost.")


def allowed_modules() -> tuple[str, ...]:
    """Module prefixes estimators may be imported from (extend with DAG_FACTORY_ALLOWED_MODULES)."""
    extra = os.environ.get("DAG_FACTORY_ALLOWED_MODULES", "")
    added = tuple(p.strip().rstrip(".") + "." for p in extra.split(",") if p.strip())
    return DEFAULT_ALLOWED_MODULES + added


def module_refusal(path: str) -> str | None:
    """Why the dotted ``path`` of a class is outside the allowed modules, or None (a text check: nothing imported)."""
    if path.startswith(allowed_modules()):
        return None
    return (f'estimator "{path}" is not in an allowed module ({", ".join(allowed_modules())}); '
            "add its module to DAG_FACTORY_ALLOWED_MODULES (comma-separated) if you trust it")

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, description=f"A safe name: {SLUG_HINT}.")]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]


class StrictModel(BaseModel):
    """Base: unknown keys are errors, and a spec object never changes once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DownloadSpec(StrictModel):
    """How a remote data source is fetched: Airflow retries the load_data task, waiting twice as long each time."""

    timeout_seconds: float = Field(30.0, gt=0, description="Time limit of one attempt's connection and reads.")
    retries: int = Field(3, ge=0, le=10, description="Airflow retries of the load_data task.")
    backoff_seconds: float = Field(1.0, ge=0, description="Wait before the first retry; doubled for each next one.")


#: The Spark settings a spec may set: how much memory and how many cores, never what code the JVM loads.
SPARK_TUNING_PREFIXES = ("spark.driver.memory", "spark.driver.cores", "spark.executor.memory",
                         "spark.executor.cores", "spark.executor.instances", "spark.default.parallelism",
                         "spark.sql.shuffle.partitions", "spark.sql.files.", "spark.sql.adaptive.", "spark.memory.")


class SparkSpec(StrictModel):
    """Where Spark runs for ``data.engine: spark``, and how much of the cleaned table the models train on."""

    master: str = Field("local[*]", description="Spark master: local[*] (this worker's cores), local[2], "
                        "spark://host:7077, yarn, ... Ignored when 'remote' or 'conn_id' is set.")
    remote: str | None = Field(None, pattern=r"^sc://", description="A Spark Connect server, sc://host:15002: the "
                               "data steps run on its cluster. Or 'conn_id', never both.")
    conn_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", description="An Airflow connection naming the "
                                "Spark Connect server instead of 'remote': host, port, and its token (if any) in the "
                                "password, so that no credential is in the spec.")
    sample_rows: int = Field(100_000, ge=100, description="Models train on a stratified sample of at most this many "
                             "rows of the cleaned table (all rows when it is smaller); the leaderboard and the model "
                             "card say so.")
    config: dict[str, str] = Field(default_factory=dict, description="Spark settings, e.g. {spark.driver.memory: 4g}: "
                                   "memory, cores, parallelism and shuffle settings only.")

    @field_validator("config")
    @classmethod
    def _only_tuning(cls, config: dict[str, str]) -> dict[str, str]:
        # A spec is untrusted: settings such as spark.jars or extraJavaOptions would load code into the JVM.
        refused = sorted(key for key in config if not key.startswith(SPARK_TUNING_PREFIXES))
        if refused:
            raise ValueError(f"{', '.join(refused)}: a spec may set only Spark's memory, cores, parallelism and "
                             f"shuffle settings ({', '.join(SPARK_TUNING_PREFIXES)}); set the others in the "
                             "cluster's spark-defaults.conf")
        return config

    @model_validator(mode="after")
    def _one_server(self) -> SparkSpec:
        if self.remote and self.conn_id:
            raise ValueError("remote and conn_id both name a Spark Connect server; keep one: conn_id (an Airflow "
                             "connection) when the server needs a token, else remote")
        return self


class DataSpec(StrictModel):
    """Where the data comes from and which column is the target."""

    source: str = Field(
        description="sklearn:<name> (breast_cancer, wine, iris; diabetes for regression), a CSV/Parquet path, "
        "or a URL (http, https, s3, gs, ...)."
    )
    test_source: str | None = Field(
        None, description="A separate file of held-out test rows (a CSV/Parquet path or URL, same columns as "
        "'source'): the test split is then this file, not drawn from 'source'.")
    format: Literal["auto", "csv", "parquet"] = "auto"
    header: bool = Field(True, description="False when the CSV file has no header row.")
    columns: list[str] | None = Field(None, description="Column names for a file without a header row.")
    target: str = "target"
    positive_class: str | int | None = Field(
        None,
        description="The class that counts as positive for recall, precision, F1 and ROC-AUC "
        "(binary targets). Required for binary targets.",
    )
    drop: list[str] = Field(default_factory=list, description="Columns to drop before training (ids).")
    categorical: list[str] = Field(default_factory=list, description="Columns to one-hot encode.")
    min_rows: int = Field(20, ge=2)
    max_missing_share: float = Field(0.5, ge=0.0, le=1.0, description="Highest share of missing values allowed per column.")
    drop_duplicates: bool = Field(False, description="Drop duplicate rows (they are always reported).")
    missing_values: list[str] = Field(
        default_factory=list, description="Extra cell values that mean missing in a CSV file, e.g. ['?']."
    )
    download: DownloadSpec = Field(default_factory=DownloadSpec)
    engine: Literal["pandas", "spark"] = Field(
        "pandas", description="pandas: one worker reads the data into memory; spark: load, profile and clean with "
        "Spark (the spark extra), the cleaned table written as Parquet.")
    incremental: bool = Field(
        False, description="engine spark: the source is a folder of dated partitions (one file or folder each); a "
        "run cleans only the partitions no run trained on yet, appends them to the cleaned table, and is skipped "
        "when none arrived.")
    spark: SparkSpec = Field(default_factory=SparkSpec)

    @model_validator(mode="after")
    def _incremental_needs_spark(self) -> DataSpec:
        if self.incremental and self.engine != "spark":
            raise ValueError("'incremental: true' needs 'engine: spark' (the pandas engine reads one file)")
        if self.incremental and self.source.startswith("sklearn:"):
            raise ValueError("'incremental: true' needs a folder of partitions as 'source', not a scikit-learn loader")
        if self.test_source is not None and self.engine == "spark":
            raise ValueError("'test_source' is read by the pandas engine only; remove it, or use engine: pandas")
        return self

    @field_validator("test_source")
    @classmethod
    def _test_source_is_a_file(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("sklearn:"):
            raise ValueError("a scikit-learn loader is a whole data set, not a test file; give a CSV/Parquet path "
                             "or URL, or remove test_source to split 'source'")
        return value

    def sources(self) -> dict[str, str]:
        """The spec's data files by key: 'source', and 'test_source' when the test rows come in a file of their own."""
        return {"source": self.source, **({"test_source": self.test_source} if self.test_source else {})}

    @model_validator(mode="after")
    def _columns_need_no_header(self) -> DataSpec:
        if self.columns is not None and self.header:
            raise ValueError("'columns' names the columns of a file without a header row; set 'header: false' too")
        return self

    @model_validator(mode="after")
    def _target_is_kept(self) -> DataSpec:
        for key in ("drop", "categorical"):
            if self.target in getattr(self, key):
                raise ValueError(f"'{key}' lists the target column \"{self.target}\"; remove it from '{key}'")
        repeated = sorted({c for c in self.columns or [] if (self.columns or []).count(c) > 1})
        if repeated:
            raise ValueError(f"'columns' names {', '.join(repeated)} more than once; give every column its own name")
        return self


class SplitSpec(StrictModel):
    """The one train/test split shared by every model (always stratified); not drawn when data.test_source is set."""

    test_size: Fraction = 0.2
    seed: int = 42


class CVSpec(StrictModel):
    """Cross-validation on the training split, the same folds for every model."""

    folds: int = Field(5, ge=2, le=20)
    repeats: int = Field(10, ge=1, le=10, description="Repeats of the k-fold CV with reshuffled folds. Ten (the "
                         "default) gives the paired intervals enough folds to tell a real gain from a lucky split.")
    seed: int = 42


class SearchSpec(StrictModel):
    """A hyperparameter search run inside one model's task, with an inner CV on the training split."""

    method: Literal["grid", "random"] = "grid"
    space: dict[str, list[Any]] = Field(min_length=1)
    candidates: int = Field(10, ge=1, description="Candidates sampled by a random search.")
    folds: int = Field(3, ge=2, le=10)


class ModelEntry(StrictModel):
    """One model to train: a catalog family, an optional distinct name, and param overrides."""

    model: str = Field(description="Name of a catalog entry in models/ (the file name without .yaml).")
    name: Slug | None = Field(None, description="Name shown in the grid and leaderboard; defaults to 'model'.")
    params: dict[str, Any] = Field(default_factory=dict)
    search: SearchSpec | None = None
    retries: int | None = Field(
        None, ge=0, le=10, description="Fewer retries for this model than the experiment's 'retries' (Airflow's "
        "retry policy fails it early); more than the experiment's raise the train task's retries for every model.")

    @model_validator(mode="before")
    @classmethod
    def _no_own_time_limit(cls, raw: Any) -> Any:
        """A time limit belongs to the train task, which Airflow maps over every model as one task."""
        if isinstance(raw, dict) and "timeout_minutes" in raw:
            raise ValueError("a model cannot set its own 'timeout_minutes': Airflow times the mapped train task as "
                             "one task for every model; set 'timeout_minutes' at the top of the spec instead")
        return raw

    @property
    def label(self) -> str:
        """The model's unique name within the experiment."""
        return self.name or self.model


class ThresholdSpec(StrictModel):
    """The decision threshold of a binary model, chosen to reach a sensitivity, applied by the promoted artifact."""

    target_recall: float = Field(
        gt=0.0, le=1.0,
        description="Recall (sensitivity) of the positive class to reach: the highest threshold whose out-of-fold "
        "recall is at least this is chosen, which keeps as much specificity as the target allows.",
    )


class SelectionSpec(StrictModel):
    """How the winner is chosen and when it replaces the champion."""

    metric: MetricName = Field("roc_auc", description="The CV metric models are ranked on. Default: roc_auc for "
                               "classification, rmse for regression.")
    require: dict[MetricName, float] = Field(
        default_factory=dict, description="Minimum CV means (maximum for log_loss and brier) a model must reach."
    )
    min_improvement: float = Field(0.0, ge=0.0, description="How much the winner must beat the champion by.")
    credible_gain: bool = Field(
        True, description="Replace the champion only when the lower bound of the interval of the winner's paired "
        "gain over it (on this run's folds) exceeds min_improvement; false: when the CV means differ by at least "
        "min_improvement.")
    confidence: float = Field(
        0.95, ge=0.5, lt=1.0, description="Level of the two-sided paired intervals (Nadeau-Bengio corrected t).")
    final_fit: Literal["train", "all"] = Field(
        "train", description="What the saved model is fitted on after selection: the training split (the held-out "
        "test figures then describe the saved model) or all rows, train and held-out (more data, but no held-out "
        "figure describes it). The model card says which.")
    threshold: ThresholdSpec | None = Field(
        None, description="Binary targets: choose each model's decision threshold on out-of-fold predictions "
        "(default: positive when p >= 0.5). Gates, ranking and the promoted model use that threshold.",
    )


class ResultsSpec(StrictModel):
    """Where an experiment's runs and champion are written."""

    root: str = Field(
        description="A folder (relative to the project) or a URL: file:///srv/results, s3://bucket/prefix, "
        "gs://bucket/prefix, or any other fsspec URL. Default: the project's results/ folder."
    )
    conn_id: str | None = Field(
        None, description="Airflow connection with the store's credentials (for S3: type aws, login = access key "
        "id, password = secret key, extra endpoint_url / region_name). Default: the standard environment "
        "(AWS_* variables, ~/.aws, an instance role).",
    )


class PublishSpec(StrictModel):
    """Copies of each new champion and of every leaderboard in a Google Drive folder (the drive extra).

    The service account's key lives in the Airflow connection, never in the spec.
    """

    drive_folder: str = Field(
        pattern=r"^[A-Za-z0-9_-]{10,100}$", description="The id of the Drive folder to publish into (the last part "
        "of its URL, drive.google.com/drive/folders/<id>), shared with the service account as Editor.")
    conn_id: str = Field(
        "google_cloud_default", description="Airflow connection of type google_cloud_platform whose extra "
        "keyfile_dict (or key_path) holds the service account's JSON key.")
    retries: int = Field(5, ge=0, le=10, description="Retries of each Drive request that failed with 429, 5xx or "
                         "a broken connection, waiting twice as long each time.")
    backoff_seconds: float = Field(1.0, ge=0, description="Wait before the first retry of a request.")
    timeout_seconds: float = Field(60.0, gt=0, description="Time limit of each Drive request.")


class TrackingSpec(StrictModel):
    """Mirror every run into an MLflow tracking server (the mlflow extra)."""

    uri: str | None = Field(
        None, description="MLflow tracking URI, e.g. http://mlflow.internal:5000. Default: $MLFLOW_TRACKING_URI."
    )
    experiment: str | None = Field(None, description="MLflow experiment name. Default: the experiment's name.")
    registered_model: str | None = Field(
        None, description="Registered model that a promotion adds a version to and points the 'champion' alias at. "
        "Default: the experiment's name.",
    )
    retries: int = Field(3, ge=0, le=10, description="Retries of each request to the server before the task fails.")
    timeout_seconds: float = Field(30.0, gt=0, description="Time limit of each request to the server.")


#: What a notification can be about.
NotifyEvent = Literal["failed_run", "new_champion", "rollback", "approval_request"]
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)


class EmailSpec(StrictModel):
    """E-mail through Airflow's SMTP provider; the server and its password live in the Airflow connection."""

    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(
        min_length=1, description="Recipients, e.g. [ml-team@example.com].")
    conn_id: str = Field(
        "smtp_default", description="Airflow connection of type smtp: host, port, login, password; extra from_email, "
        "disable_tls, disable_ssl, timeout, retry_limit.")


class NotifySpec(StrictModel):
    """Who hears about failed runs, new champions and rollbacks. Secrets (an SMTP password, a webhook URL with its
    token) live in Airflow connections, never in the spec."""

    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS),
                                      description="What to send a notification for. Default: all of them.")
    email: EmailSpec | None = None
    webhooks: list[str] = Field(
        default_factory=list, description="Airflow connection ids (type http) whose host is a webhook URL; each gets "
        "a JSON POST with 'text' (Slack, Teams, Mattermost show it) and the details. The password, if any, is sent "
        "as a bearer token.")
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="Time limit of each delivery.")

    @model_validator(mode="after")
    def _somewhere(self) -> NotifySpec:
        if self.email is None and not self.webhooks:
            raise ValueError("notify names no channel; add `email: {to: [...]}` or `webhooks: [connection id]`")
        return self


class PromotionSpec(StrictModel):
    """How a better model becomes the champion: at once, or after a person approves it."""

    approval: Literal["none", "required"] = Field(
        "none", description="required: a new champion waits for a person's Approve (Airflow's Required actions, "
        "its REST API, or `dag-factory approve`); Reject or no answer in time keeps the champion.")
    timeout_hours: float = Field(24.0, gt=0, le=24 * 30,
                                 description="How long a request waits for an answer; then the champion is kept.")


class ExperimentSpec(StrictModel):
    """One experiment: one YAML file in experiments/, one Airflow DAG."""

    experiment: Slug = Field(description="Becomes the DAG id and the results folder name.")
    description: str = ""
    task: TaskKind | None = Field(
        None, description="classification (a class per row) or regression (a number per row). Default: inferred "
        "from the data: regression for a numeric target with many distinct values (more than "
        "20, or any fraction) and no data.positive_class, else classification; the run's log says which.")
    owner: str = "dag_factory"
    tags: list[str] = Field(default_factory=list)
    schedule: str | None = Field(None, description="Any Airflow schedule string (cron, @daily); null for manual.")
    retries: int = Field(1, ge=0, le=10, description="Airflow retries of every task (a download: data.download.retries).")
    retry_delay_seconds: float = Field(10.0, ge=0, description="Wait before the first retry of a task.")
    retry_exponential_backoff: bool = Field(False, description="Double the wait before each further retry.")
    timeout_minutes: float | None = Field(
        None, gt=0, description="Time limit of each model's train task (Airflow's execution_timeout); none by default.")
    data: DataSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    cv: CVSpec = Field(default_factory=CVSpec)
    models: list[ModelEntry] = Field(min_length=1)
    selection: SelectionSpec = Field(default_factory=SelectionSpec)
    results: ResultsSpec | None = Field(None, description="Where results go; default: the project's results/ folder.")
    tracking: TrackingSpec | None = Field(None, description="MLflow tracking; default: none.")
    publish: PublishSpec | None = Field(None, description="Publish champions and leaderboards to Google Drive; "
                                        "default: none.")
    notify: NotifySpec | None = Field(None, description="Notifications (e-mail, webhooks); default: none.")
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)

    @field_validator("models")
    @classmethod
    def _unique_model_names(cls, models: list[ModelEntry]) -> list[ModelEntry]:
        seen: set[str] = set()
        for entry in models:
            if entry.label in seen:
                raise ValueError(
                    f'model name "{entry.label}" appears twice; give one of them a distinct "name:" '
                    f"(e.g. {entry.label}_2)"
                )
            seen.add(entry.label)
        return models

    def model_names(self) -> list[str]:
        """Names of the models, in spec order."""
        return [m.label for m in self.models]

    def train_retries(self) -> int:
        """Retries of the mapped train task: the most any model may use."""
        return max([self.retries, *(m.retries for m in self.models if m.retries is not None)])



class CatalogEntry(StrictModel):
    """One model family in models/: which estimator, its defaults, and how to feed it."""

    name: Slug
    description: str = ""
    estimator: str = Field(description="Import path of a scikit-learn compatible classifier or regressor class.")
    task: TaskKind = Field("classification", description="What the estimator predicts: experiments of the other "
                           "task cannot name this entry.")
    params: dict[str, Any] = Field(default_factory=dict)
    needs_scaling: bool = Field(False, description="Scale numeric inputs inside the model's Pipeline.")
    calibration: Literal["sigmoid", "isotonic"] | None = Field(
        None, description="Wrap the estimator in CalibratedClassifierCV to get probabilities."
    )
    complexity: int = Field(
        100, ge=0, description="Simplicity order: among models tied with the leader, the lowest complexity is "
        "promoted (then the name). Logistic regression is 10, SVM 20, random forest 30, XGBoost 40.")

    @field_validator("estimator")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", value):
            raise ValueError(f'"{value}" is not an import path like "sklearn.svm.SVC"')
        return value

    @model_validator(mode="after")
    def _calibration_is_for_classes(self) -> CatalogEntry:
        if self.calibration is not None and self.task != "classification":
            raise ValueError("'calibration' gives a classifier probabilities; a regressor has none, so remove it")
        return self


#: The model catalog: entries by name (the file name in models/ without .yaml).
Catalog = dict[str, CatalogEntry]


def for_task(spec: ExperimentSpec, task: TaskKind) -> ExperimentSpec:
    """The spec with its task settled: ranked on the task's default metric unless the spec names one."""
    update: dict[str, Any] = {"task": task}
    if "metric" not in spec.selection.model_fields_set:
        update["selection"] = spec.selection.model_copy(update={"metric": DEFAULT_METRIC[task]})
    return spec.model_copy(update=update)


def task_problems(spec: ExperimentSpec, task: TaskKind, catalog: Catalog) -> list[tuple[tuple[Any, ...], str]]:
    """(key path, sentence) for every setting that does not fit ``task``: a positive class or threshold of a
    regression, a metric or gate of the other task, a catalog model of the other task."""
    other = "regression" if task == "classification" else "classification"
    found: list[tuple[tuple[Any, ...], str]] = []
    if task == "regression" and spec.data.positive_class is not None:
        found.append((("data", "positive_class"), "a regression target has no positive class; remove "
                      "data.positive_class, or set task: classification if the target is classes"))
    if task == "regression" and spec.data.engine == "spark":
        found.append((("data", "engine"), "the Spark engine prepares classification data only; use engine: pandas "
                      "for a regression"))
    if task == "regression" and spec.selection.threshold is not None:
        found.append((("selection", "threshold"), "a regression model has no decision threshold; remove "
                      "selection.threshold, or set task: classification if the target is classes"))
    fits = ", ".join(TASK_METRICS[task])
    metrics = [(("selection", "metric"), spec.selection.metric)]
    metrics += [(("selection", "require", name), name) for name in spec.selection.require]
    found += [(key, f'"{name}" is a {other} metric and this experiment\'s task is {task}; use one of {fits}')
              for key, name in metrics if name not in TASK_METRICS[task]]
    fitting = sorted(n for n, c in catalog.items() if c.task == task)
    found += [(("models", i, "model"), f'"{entry.model}" is a {other} model (task: {other} in its catalog file) and '
               f"this experiment's task is {task}; name a {task} model: {', '.join(fitting) or 'none in models/'}")
              for i, entry in enumerate(spec.models) if entry.model in catalog and catalog[entry.model].task != task]
    return found


#: Data keys added after champions were first trained, with their defaults: left out of the config
#: fingerprint at their default, so that a spec that does not use them keeps its champion's fingerprint.
_LATER_DATA_KEYS = {"test_source": None, "engine": "pandas", "incremental": False}


def _data_fingerprint_part(data: DataSpec) -> dict[str, Any]:
    """What of ``data`` decides training: not the download's retries, nor where Spark runs."""
    dumped = data.model_dump(exclude={"download": True, "spark": {"master", "remote", "conn_id", "config"}})
    for key, default in _LATER_DATA_KEYS.items():
        if dumped[key] == default:
            del dumped[key]
    if data.engine != "spark":
        del dumped["spark"]  # the sample size matters only to the Spark engine
    return dumped


def config_fingerprint(spec: ExperimentSpec, catalog: Catalog, models: list[str]) -> str:
    """SHA-256 of everything that shapes training: split, CV, selection and the chosen models' settings.

    With the data fingerprint it decides whether a run would only repeat the champion's training.
    """
    chosen = [m for m in spec.models if m.label in models]
    payload = {
        **({"task": spec.task} if spec.task else {}),  # absent when inferred, as in specs written before tasks
        "data": _data_fingerprint_part(spec.data),
        "split": spec.split.model_dump(),
        "cv": spec.cv.model_dump(),
        "selection": spec.selection.model_dump(),
        "models": [m.model_dump() for m in chosen],
        "catalog": [catalog[m.model].model_dump() for m in chosen if m.model in catalog],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
