"""The chance baseline: a DummyClassifier (prior) cross-validated on the very folds every model saw.

Its row in the leaderboard shows the lift over predicting the class balance; a model whose paired
gain over it is not credible is flagged and cannot be promoted. The baseline itself never can.
"""

from __future__ import annotations

from sklearn.dummy import DummyClassifier

from dag_factory.artifacts.layout import RunFiles
from dag_factory.artifacts.records import BaselineRow, RunMeta
from dag_factory.spec.schema import ExperimentSpec
from dag_factory.steps.evaluate import evaluate_cv, target_recall_of
from dag_factory.steps.preprocess import load_split


def baseline_row(spec: ExperimentSpec, files: RunFiles) -> BaselineRow:
    """Cross-validate DummyClassifier(strategy='prior') on the run's training split, by the models' rule."""
    meta = RunMeta.read(files.meta)
    x_train, y_train, _, _ = load_split(files, meta.target)
    cv = evaluate_cv(DummyClassifier(strategy="prior"), x_train, y_train, spec.cv,
                     target_recall_of(spec, len(meta.classes)))
    return BaselineRow(cv=cv.scores, fold_scores=cv.fold_scores)
