"""The chance baseline, cross-validated on the very folds every model saw: a DummyClassifier (prior) predicting the
class balance, or a DummyRegressor (mean) predicting the training mean.

Its row in the leaderboard shows the lift over knowing nothing about the rows; a model whose paired
gain over it is not credible is flagged and cannot be promoted. The baseline itself never can.
"""

from __future__ import annotations

from sklearn.dummy import DummyClassifier, DummyRegressor

from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import BaselineRow, RunMeta
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.steps.evaluate import evaluate_cv, target_recall_of
from dag_factory.steps.preprocess import load_split

#: Each task's baseline, its full name, and how the tables name it.
BASELINES = {
    "classification": (lambda: DummyClassifier(strategy="prior"), "sklearn.dummy.DummyClassifier(strategy='prior')",
                       "DummyClassifier, prior"),
    "regression": (lambda: DummyRegressor(strategy="mean"), "sklearn.dummy.DummyRegressor(strategy='mean')",
                   "DummyRegressor, mean"),
}


def baseline_row(spec: ExperimentSpec, files: RunFiles) -> BaselineRow:
    """Cross-validate the task's dummy on the run's training split, by the models' rule."""
    meta = RunMeta.read(files.meta)
    x_train, y_train, _, _ = load_split(files, meta.target)
    build, name, label = BASELINES[meta.task]
    cv = evaluate_cv(build(), x_train, y_train, spec.cv, target_recall_of(spec, len(meta.classes)), meta.task)
    return BaselineRow(estimator=name, label=label, cv=cv.scores, fold_scores=cv.fold_scores)
