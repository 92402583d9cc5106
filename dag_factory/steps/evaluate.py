"""Cross-validation by one rule for every model (and for a champion re-scored at promotion).

Every model of an experiment sees the same folds (same seed, same split), so the leaderboard
compares like with like. Classification folds are stratified on the class; regression folds are
plain shuffled k-fold: the paired comparison already cancels how hard each fold is (every model
sees the same folds), and binning a continuous target into strata adds a choice (how many bins)
that the estimate should not depend on. With ``selection.threshold`` the decision threshold is chosen on
out-of-fold predictions, and the CV metrics at it are cross-fitted (each fold's threshold
comes from the other folds), so they estimate what the chosen threshold will do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold

from dag_factory.artifacts.records import AtDefaultThreshold, MeanStd, ThresholdReport
from dag_factory.errors import ModelConfigError
from dag_factory.spec.schema import CVSpec, ExperimentSpec, TaskKind
from dag_factory.steps.metrics import (
    DEFAULT_THRESHOLD, classification_metrics, mean_std, summarize, task_metrics, threshold_for_recall,
)

CVScores = dict[str, MeanStd]
#: How each task's folds are drawn and what its models answer with (probabilities, or the predicted value).
SPLITTERS = {"classification": RepeatedStratifiedKFold, "regression": RepeatedKFold}
RESPONSES = {"classification": "predict_proba", "regression": "predict"}


@dataclass(frozen=True)
class Fold:
    """The out-of-fold predictions of one CV fold and how long they took."""

    repeat: int
    fold: int
    rows: pd.Index
    y: np.ndarray
    output: np.ndarray  # class probabilities, one column per class; or the predicted values (regression)
    fit_seconds: float
    predict_seconds: float


@dataclass(frozen=True)
class CVResult:
    """Every fold's predictions, each fold's threshold, and the metrics' mean and std over folds."""

    folds: list[Fold]
    thresholds: list[float | None]
    scores: CVScores
    per_fold: list[dict[str, float]]

    @property
    def fold_scores(self) -> dict[str, list[float]]:
        """Each metric's value on every fold, in fold order (the pairs a paired comparison needs)."""
        return {name: [f[name] for f in self.per_fold] for name in self.per_fold[0]}

    @property
    def y(self) -> np.ndarray:
        return np.concatenate([f.y for f in self.folds])

    @property
    def output(self) -> np.ndarray:
        return np.concatenate([f.output for f in self.folds])


def target_recall_of(spec: ExperimentSpec, n_classes: int) -> float | None:
    """The spec's target sensitivity, refused for a multiclass target where one threshold has no meaning."""
    if spec.selection.threshold is None:
        return None
    if n_classes != 2:
        raise ModelConfigError(
            f"experiment {spec.experiment}: selection.threshold applies to binary targets only, and this target "
            f"has {n_classes} classes; remove selection.threshold from the spec"
        )
    return spec.selection.threshold.target_recall


def evaluate_cv(pipeline: object, x: pd.DataFrame, y: pd.Series, cv: CVSpec, target_recall: float | None,
                task: TaskKind = "classification") -> CVResult:
    """Cross-validate an unfitted pipeline: its folds, each fold's threshold, and the metrics' mean and std."""
    folds = _cross_validate(pipeline, x, y, cv, task)
    thresholds = _fold_thresholds(folds, target_recall)
    per_fold = [task_metrics(task, f.y, f.output, t) for f, t in zip(folds, thresholds, strict=True)]
    scores = summarize(per_fold)
    scores["fit_seconds"] = mean_std([f.fit_seconds for f in folds])
    scores["predict_seconds"] = mean_std([f.predict_seconds for f in folds])
    return CVResult(folds, thresholds, scores, per_fold)


def predict_output(model: object, x: pd.DataFrame, task: TaskKind) -> np.ndarray:
    """What a fitted model answers for ``x``: class probabilities (classification) or values (regression)."""
    return getattr(model, RESPONSES[task])(x)


def _cross_validate(pipeline: object, x: pd.DataFrame, y: pd.Series, cv: CVSpec, task: TaskKind) -> list[Fold]:
    """Fit and predict every fold of the repeated (stratified, for classes) k-fold on the training split."""
    splitter = SPLITTERS[task](n_splits=cv.folds, n_repeats=cv.repeats, random_state=cv.seed)
    folds = []
    for i, (train_idx, valid_idx) in enumerate(splitter.split(x, y)):
        model = clone(pipeline)
        start = time.perf_counter()
        model.fit(x.iloc[train_idx], y.iloc[train_idx])
        fitted_at = time.perf_counter()
        output = predict_output(model, x.iloc[valid_idx], task)
        folds.append(Fold(repeat=i // cv.folds, fold=i % cv.folds, rows=y.index[valid_idx],
                          y=y.iloc[valid_idx].to_numpy(), output=output, fit_seconds=fitted_at - start,
                          predict_seconds=time.perf_counter() - fitted_at))
    return folds


def _fold_thresholds(folds: list[Fold], target_recall: float | None) -> list[float | None]:
    """Each fold's threshold, chosen on the other folds of its repeat (cross-fitted), or the default.

    A threshold chosen on the very predictions it is scored on would overstate its recall; choosing
    it without the fold's labels keeps the CV estimate honest.
    """
    if target_recall is None:
        return [default_threshold(f.output) for f in folds]
    aim = aimed_recall(target_recall, folds)
    thresholds = []
    for fold in folds:
        others = [o for o in folds if o.repeat == fold.repeat and o.fold != fold.fold]
        y = np.concatenate([o.y for o in others])
        score = np.concatenate([o.output[:, 1] for o in others])
        thresholds.append(threshold_for_recall(y, score, aim))
    return thresholds


def aimed_recall(target_recall: float, folds: list[Fold]) -> float:
    """The recall a threshold is chosen for: the target plus one binomial standard error of the recall
    measured on the positives it is chosen on (the other folds of a repeat).

    A threshold that just reaches the target on the rows it was chosen on falls short on new rows
    about half the time; aiming one standard error higher makes the target hold out of fold, at the
    specificity that costs, which the report shows.
    """
    per_fold = len({f.fold for f in folds})
    positives_per_repeat = [sum(int((f.y == 1).sum()) for f in folds if f.repeat == r) for r in {f.repeat for f in folds}]
    chosen_on = float(np.mean(positives_per_repeat)) * (per_fold - 1) / per_fold
    margin = float(np.sqrt(target_recall * (1.0 - target_recall) / max(chosen_on, 1.0)))
    return min(target_recall + margin, 1.0)


def final_threshold(cv: CVResult, target_recall: float | None) -> float | None:
    """The threshold the artifact applies: chosen on all out-of-fold predictions (by the same aim), else the default."""
    if target_recall is None:
        return default_threshold(cv.output)
    return threshold_for_recall(cv.y, cv.output[:, 1], aimed_recall(target_recall, cv.folds))


def default_threshold(output: np.ndarray) -> float | None:
    """0.5 for a binary target; None for multiclass, where the most probable class wins, and for regression."""
    return DEFAULT_THRESHOLD if output.ndim == 2 and output.shape[1] == 2 else None


def threshold_report(cv: CVResult, threshold: float | None, target_recall: float | None, test: dict[str, float],
                     test_at_default: dict[str, float]) -> ThresholdReport:
    """What the decision threshold is, how it was chosen, and the specificity it costs against 0.5."""
    if threshold is None:
        return ThresholdReport(value=None, rule="regression: the predicted value itself" if cv.output.ndim == 1
                               else "multiclass: the most probable class")
    if target_recall is None:
        return ThresholdReport(value=threshold, rule=f"default: positive when p >= {threshold}")
    at_default = summarize([classification_metrics(f.y, f.output) for f in cv.folds])
    aim = aimed_recall(target_recall, cv.folds)
    return ThresholdReport(
        value=threshold,
        target_recall=target_recall,
        aimed_recall=aim,
        rule=(f"highest threshold whose out-of-fold recall is >= {aim:.4f} (target {target_recall} plus one "
              "standard error of the recall on the rows it is chosen on)"),
        fold_values=mean_std([t for t in cv.thresholds if t is not None]),
        cv_recall=cv.scores["recall"],
        cv_specificity=cv.scores["specificity"],
        cv_precision=cv.scores["precision"],
        target_met=bool(cv.scores["recall"].mean >= target_recall - 1e-12),
        test_recall=test["recall"],
        test_specificity=test["specificity"],
        at_default=AtDefaultThreshold(threshold=DEFAULT_THRESHOLD, cv_recall=at_default["recall"],
                                      cv_specificity=at_default["specificity"],
                                      test_recall=test_at_default["recall"],
                                      test_specificity=test_at_default["specificity"]),
        specificity_cost=at_default["specificity"].mean - cv.scores["specificity"].mean,
    )
