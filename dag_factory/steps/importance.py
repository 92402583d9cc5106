"""Which inputs a fitted model leans on: coefficients, built-in importances, or permutation importance.

Linear models show their coefficients (on standardised inputs when the model scales them), tree
ensembles their built-in importances, and anything else (an RBF SVM) the drop in ROC-AUC (the
rise in RMSE, for regression) on the held-out test split when one column is shuffled. The test split is only reported on, never
used to choose, so this does not leak into selection.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.inspection import permutation_importance

from dag_factory.artifacts.records import Importance

TOP_FEATURES = 50


def feature_importance(fitted: Any, x_test: pd.DataFrame, y_test: pd.Series, seed: int,
                       regression: bool = False) -> Importance:
    """The fitted model's importances, largest magnitude first."""
    pipeline = getattr(fitted, "best_estimator_", fitted)
    estimators = _inner_estimators(pipeline.named_steps["model"])
    for attribute, kind in (("coef_", "coefficient"), ("feature_importances_", "built-in importance")):
        if all(hasattr(e, attribute) for e in estimators):
            values = np.mean([_per_feature(getattr(e, attribute)) for e in estimators], axis=0)
            names = _transformed_names(pipeline)
            return _ranked(kind, names, values)
    if regression:
        scoring, kind = "neg_root_mean_squared_error", "permutation importance (RMSE rise, held-out test)"
    else:
        scoring = "roc_auc" if y_test.nunique() == 2 else "roc_auc_ovr"
        kind = "permutation importance (ROC-AUC drop, held-out test)"
    result = permutation_importance(fitted, x_test, y_test, scoring=scoring, n_repeats=5, random_state=seed, n_jobs=1)
    return _ranked(kind, list(x_test.columns), result.importances_mean)


def _inner_estimators(model: Any) -> list[Any]:
    """The fitted estimators inside a calibration wrapper, or the model itself."""
    if isinstance(model, CalibratedClassifierCV):
        return [c.estimator for c in model.calibrated_classifiers_]
    return [model]


def _per_feature(values: np.ndarray) -> np.ndarray:
    """One number per feature: binary coefficients as they are, multiclass ones as mean magnitude."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        return values
    return values[0] if values.shape[0] == 1 else np.abs(values).mean(axis=0)


def _transformed_names(pipeline: Any) -> list[str]:
    """Column names after preparation, without the ColumnTransformer's 'numeric__' prefixes."""
    names = pipeline.named_steps["prepare"].get_feature_names_out()
    return [str(n).split("__", 1)[-1] for n in names]


def _ranked(kind: str, names: list[str], values: np.ndarray) -> Importance:
    order = np.argsort(-np.abs(values), kind="stable")[:TOP_FEATURES]
    return Importance(kind=kind, features=[names[i] for i in order], values=[float(values[i]) for i in order])
