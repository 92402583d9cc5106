"""Every file passed between tasks, as a pydantic model that reads and writes itself.

The JSON on disk is what users, MLflow and later runs read, so the field names are the file
format. Reading ignores keys a newer version added; defaults cover keys an older one lacked.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from dag_factory.storage.files import read_json, write_json
from dag_factory.storage.location import StoragePath


class Record(BaseModel):
    """A JSON file of a run or a champion. NaN stays NaN (an undefined metric on a fold), as json.dumps writes it."""

    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="constants")

    @classmethod
    def read(cls, path: StoragePath) -> Self:
        return cls.model_validate(read_json(path))

    def write(self, path: StoragePath) -> StoragePath:
        """Write atomically (a reader sees the old file or the new one)."""
        return write_json(path, self.model_dump(mode="json"))


class MeanStd(BaseModel):
    """A metric over CV folds."""

    mean: float
    std: float


class CVProtocol(BaseModel):
    folds: int
    repeats: int
    seed: int


class PairedComparison(BaseModel):
    """One model against a reference on the same CV folds: the mean gain and its corrected interval.

    ``gain`` is how much better the model is than ``against`` (direction-aware: positive is better,
    also for losses). The interval is the Nadeau-Bengio corrected resampled t interval.
    """

    against: str
    metric: str
    gain: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    folds: int

    def interval(self) -> str:
        """'+0.0012 [-0.0030, +0.0054]'."""
        return f"{self.gain:+.4f} [{self.ci_low:+.4f}, {self.ci_high:+.4f}]"


class TrainingSample(BaseModel):
    """The models of a run trained on a sample of the cleaned table (data.engine: spark), not on all of it."""

    rows: int
    of_rows: int
    table: str
    rule: str = "stratified by class; rows chosen by a seeded hash of their content (reproducible)"

    def sentence(self) -> str:
        """'Trained on a stratified sample of 100,000 of the 10,000,000 rows of the cleaned table (...)'."""
        if self.rows >= self.of_rows:
            return f"Trained on all {self.of_rows:,} rows of the cleaned table {self.table} (no sample needed)."
        return (f"Trained on a stratified sample of {self.rows:,} of the {self.of_rows:,} rows of the cleaned table "
                f"{self.table} ({self.rule}; data.spark.sample_rows sets its size).")


class RunMeta(Record):
    """data/meta.json: the cleaned data and its one split, as every later step needs them."""

    train_path: str
    test_path: str
    target: str
    task: Literal["classification", "regression"] = "classification"
    classes: list[str]  # empty for regression
    positive_class: str | None
    numeric: list[str]
    categorical: list[str]
    rows: int
    train_rows: int
    train_class_counts: dict[str, int]
    test_rows: int
    fingerprint: str
    notes: list[str] = []
    config_fingerprint: str | None = None
    sample: TrainingSample | None = None

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical


class PartitionStats(BaseModel):
    """One partition of the cleaned table (data.engine: spark): its rows, rows per class, and a digest of its content."""

    rows: int
    classes: dict[str, int]
    digest: str
    run_id: str = ""


class Partitions(Record):
    """The partitions of a cleaned table: those a run added (data/partitions.json), or those runs trained on
    (tables/<experiment>/partitions.json)."""

    partitions: dict[str, PartitionStats] = {}


class ClassShare(BaseModel):
    count: int
    share: float


class Correlation(BaseModel):
    column: str
    correlation: float


#: Statistics of a numeric column in a profile, as pandas' describe() names them.
NUMERIC_STATS = ("mean", "std", "min", "25%", "50%", "75%", "max")


class DataProfile(Record):
    """profile.json: what a person checks before trusting a model trained on the data."""

    rows: int
    columns: int
    target: str
    positive_class: str | int | None
    duplicate_rows: int
    missing_cells: int
    target_kind: str = "classes"
    class_balance: dict[str, ClassShare]
    columns_stats: dict[str, dict[str, Any]]
    top_correlations: list[Correlation]


class SkipNote(Record):
    """data/skipped.json: why this run trains nothing (data and spec unchanged)."""

    reason: str


class StopReason(Record):
    """data/error.json: why the run stopped before training, in the one sentence the CLI prints."""

    error: str


class LastTrained(Record):
    """best/.last_trained/<experiment>.json: what the newest run that trained was trained on."""

    run_id: str
    fingerprint: str
    config_fingerprint: str | None = None


class Importance(BaseModel):
    kind: str
    features: list[str]
    values: list[float]


class AtDefaultThreshold(BaseModel):
    threshold: float
    cv_recall: MeanStd
    cv_specificity: MeanStd
    test_recall: float
    test_specificity: float


class ThresholdReport(BaseModel):
    """A model's decision threshold, how it was chosen and (with a target recall) what it costs."""

    value: float | None
    target_recall: float | None = None
    aimed_recall: float | None = None
    rule: str
    fold_values: MeanStd | None = None
    cv_recall: MeanStd | None = None
    cv_specificity: MeanStd | None = None
    cv_precision: MeanStd | None = None
    target_met: bool | None = None
    test_recall: float | None = None
    test_specificity: float | None = None
    at_default: AtDefaultThreshold | None = None
    specificity_cost: float | None = None


class ModelResult(Record):
    """models/<name>/metrics.json: one trained model, measured."""

    name: str
    model: str
    estimator: str
    params: dict[str, Any]
    chosen_params: dict[str, Any]
    cv: dict[str, MeanStd]
    fold_scores: dict[str, list[float]] = {}
    cv_protocol: CVProtocol
    test: dict[str, float]
    test_confusion_matrix: list[list[int]]
    threshold: ThresholdReport
    classes: list[str]
    refit_seconds: float
    model_sha256: str
    features: list[str]
    fingerprint: str
    importance: Importance
    top_features: dict[str, float]
    importance_kind: str
    complexity: int = 100
    fitted_on: Literal["train", "all"] = "train"
    fitted_rows: int = 0
    plots: dict[str, str] = {}
    model_path: str = ""
    tracking: dict[str, str] = {}

    def score(self, metric: str) -> float:
        """The CV mean of ``metric``."""
        return self.cv[metric].mean


class ModelFailure(Record):
    """models/<name>/error.json: why a model did not train."""

    name: str
    model: str
    error: str
    traceback: str = ""


class RankedRow(ModelResult):
    """A leaderboard row of a model that trained."""

    status: Literal["ok"] = "ok"
    rank: int
    eligible: bool
    ineligible_reasons: list[str]
    vs_leader: PairedComparison | None = None
    verdict: str = ""
    vs_baseline: PairedComparison | None = None


class UnrankedRow(BaseModel):
    """A leaderboard row of a model that failed or did not run."""

    status: Literal["failed", "skipped"]
    name: str
    model: str | None = None
    error: str | None = None
    rank: None = None


class BaselineRow(BaseModel):
    """The chance baseline (DummyClassifier, prior; DummyRegressor, mean) cross-validated on the same folds; never
    promoted."""

    name: str = "baseline"
    estimator: str = "sklearn.dummy.DummyClassifier(strategy='prior')"
    label: str = "DummyClassifier, prior"  # how the tables name it
    cv: dict[str, MeanStd]
    fold_scores: dict[str, list[float]]


LeaderboardRow = Annotated[RankedRow | UnrankedRow, Field(discriminator="status")]


class Approval(BaseModel):
    """A person's answer to "promote this model?" (spec ``promotion.approval: required``), as the approve task saw it."""

    asked: bool  # False when the run had nothing to approve (no winner, or it did not beat the champion)
    approved: bool = False
    by: str | None = None
    at: str | None = None
    timed_out: bool = False

    def refusal(self, timeout_hours: float) -> str:
        """Why this answer does not allow a promotion, in a few words."""
        if not self.asked:
            return "no approval was asked (the champion changed after the request was decided); run again"
        if self.timed_out:
            return f"no answer within {timeout_hours:g}h, so the request timed out"
        return f"rejected by {self.by or 'unknown'} at {self.at}"


class Decision(BaseModel):
    """Whether this run's winner became the champion, and why, in one sentence."""

    promoted: bool
    reason: str
    metric: str | None = None
    challenger: str | None = None
    challenger_score: float | None = None
    champion: str | None = None
    champion_score: float | None = None
    vs_champion: PairedComparison | None = None
    repeated: bool = False
    path: str | None = None
    registered: dict[str, str] | None = None
    approval: Approval | None = None


class Leaderboard(Record):
    """leaderboard.json: every model of one run, ranked, with the promotion decision."""

    experiment: str
    run_id: str
    metric: str
    ranking_rule: str
    task: Literal["classification", "regression"] = "classification"
    cv_protocol: CVProtocol
    require: dict[str, float]
    threshold: dict[str, float] | None
    classes: list[str] | None
    winner: str | None
    leaderboard: list[LeaderboardRow]
    failed: list[str]
    decision: Decision | None = None
    sample: TrainingSample | None = None
    leader: str | None = None
    min_improvement: float = 0.0
    winner_reason: str | None = None
    comparison_rule: str | None = None
    baseline: BaselineRow | None = None

    @property
    def ranked(self) -> list[RankedRow]:
        """The rows of models that trained, best first."""
        return [r for r in self.leaderboard if isinstance(r, RankedRow)]

    @property
    def winner_row(self) -> RankedRow | None:
        return next((r for r in self.ranked if r.name == self.winner), None)


class CardModel(BaseModel):
    name: str
    family: str
    params: dict[str, Any]
    chosen_params: dict[str, Any]


class CardData(BaseModel):
    target: str = ""
    fingerprint: str
    rows: int
    train_rows: int
    test_rows: int
    classes: list[str]
    positive_class: str | None
    features: list[str]
    categorical: list[str] = Field(default_factory=list)  # the features that are text; the others are numbers
    sample: TrainingSample | None = None  # data.engine spark: the sample of the cleaned table it trained on


class CardArtifact(BaseModel):
    file: str
    sha256: str


class CardConfusion(BaseModel):
    classes: list[str]
    rows_true_columns_predicted: list[list[int]]


class CardSelection(BaseModel):
    ranking_rule: str
    require: dict[str, float]
    winner_reason: str | None = None
    comparison_rule: str | None = None


class CardFeatures(BaseModel):
    kind: str
    values: dict[str, float]


class ModelCard(Record):
    """model_card.json: what a champion is, how it was measured, what it may be used for."""

    experiment: str
    task: Literal["classification", "regression"] = "classification"
    description: str
    intended_use: str
    limitations: str
    run_id: str
    promoted_at: str
    reason: str
    previous_champion: str | None
    model: CardModel
    metric: str
    selection: CardSelection
    cv_protocol: dict[str, Any]
    cv: dict[str, MeanStd]
    test: dict[str, float]
    test_confusion_matrix: CardConfusion
    data: CardData
    config_fingerprint: str | None = None
    threshold: float | None
    threshold_selection: ThresholdReport
    final_fit: str = ""
    top_features: CardFeatures
    plots: dict[str, str] = {}
    artifact: CardArtifact
    packages: dict[str, str]
    evaluation_ground: dict[str, Any] | None = None


class HistoryEntry(BaseModel):
    """One line of history.jsonl: a champion installed, by a promotion or a rollback.

    ``promoted_at`` is when this entry's version became the champion; a rollback names the
    version it restored in ``restored_from`` (its own ``version`` is a fresh copy of it).
    """

    model_config = ConfigDict(extra="ignore")

    promoted_at: str
    run_id: str
    model: str
    metric: str
    score: float
    reason: str
    version: str
    action: Literal["promoted", "rolled_back"] = "promoted"
    restored_from: str | None = None


def history_text(earlier: str, entry: HistoryEntry) -> str:
    """history.jsonl with ``entry`` appended (one JSON object a line, keys sorted)."""
    return earlier + json.dumps(entry.model_dump(), sort_keys=True) + "\n"


def history_entries(text: str) -> list[HistoryEntry]:
    """The entries of a history.jsonl, oldest first."""
    return [HistoryEntry.model_validate_json(line) for line in text.splitlines() if line.strip()]


class ChampionPointer(Record):
    """best/<experiment>/champion.json on an object store: which version folder is the champion."""

    version: str
    run_id: str
    model: str
    switched_at: str

    def encode(self) -> bytes:
        return (json.dumps(self.model_dump(), indent=2) + "\n").encode()

