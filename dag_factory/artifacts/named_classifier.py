"""The saved model's outer layer: a fitted classifier that predicts the source's class names.

Inside, every model is trained on class codes (1 = the positive class, see
``steps.preprocess``), which is what XGBoost needs and what the metrics use. A user who loads
model.skops should not have to know that coding (scikit-learn's breast cancer loader codes
malignant as 0, the factory as 1): this wrapper's ``predict`` returns the names ("malignant",
"benign"), ``classes_`` holds them in code order, and ``predict_proba`` has one column per
entry of ``classes_``, in that order. It is listed in the saved model's trusted types.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class NamedClassifier(ClassifierMixin, BaseEstimator):
    """A fitted classifier on class codes 0..k-1, answering in ``class_names`` (the name of code i at index i)."""

    def __init__(self, estimator: Any = None, class_names: list[str] | None = None) -> None:
        self.estimator = estimator
        self.class_names = class_names

    def fit(self, x: Any, y: Any = None) -> NamedClassifier:
        """Record the names; the inner estimator is already fitted on the codes (it is not refitted)."""
        self.classes_ = np.asarray(self.class_names, dtype=str)
        if hasattr(self.estimator, "n_features_in_"):
            self.n_features_in_ = self.estimator.n_features_in_
        return self

    def predict(self, x: Any) -> np.ndarray:
        """The class name of each row (the inner model's decision, threshold included)."""
        return self.classes_[np.asarray(self.estimator.predict(x)).astype(int)]

    def predict_proba(self, x: Any) -> np.ndarray:
        """Probabilities, one column per entry of ``classes_``, in that order."""
        return self.estimator.predict_proba(x)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "classes_")


def unwrapped(model: Any) -> Any:
    """The unfitted-able Pipeline inside a saved model: without the names and without a fixed threshold."""
    from sklearn.model_selection import FixedThresholdClassifier

    if isinstance(model, NamedClassifier):
        model = model.estimator
    if isinstance(model, FixedThresholdClassifier):
        model = model.estimator.estimator  # FixedThresholdClassifier(FrozenEstimator(pipeline))
    return model
