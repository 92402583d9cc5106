"""Build one model's scikit-learn Pipeline from its catalog entry and the experiment's overrides.

Everything fitted on data (imputer, scaler, encoder) lives inside the Pipeline, so
cross-validation does not leak and the saved artifact predicts from raw rows.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, KFold, RandomizedSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from dag_factory.spec.estimators import build_estimator
from dag_factory.spec.schema import CatalogEntry, ModelEntry

#: scikit-learn scorer names for the spec's metrics, used by the hyperparameter search.
BINARY_SCORING = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced_accuracy",
    "precision": "precision",
    "recall": "recall",
    "f1": "f1",
    "roc_auc": "roc_auc",
    "pr_auc": "average_precision",
    "mcc": "matthews_corrcoef",
    "log_loss": "neg_log_loss",
    "brier": "neg_brier_score",
}
MULTICLASS_SCORING = {
    **BINARY_SCORING,
    "precision": "precision_macro",
    "recall": "recall_macro",
    "f1": "f1_macro",
    "roc_auc": "roc_auc_ovr",
    "pr_auc": "roc_auc_ovr",
}

REGRESSION_SCORING = {
    "rmse": "neg_root_mean_squared_error",
    "mae": "neg_mean_absolute_error",
    "r2": "r2",
    "mape": "neg_mean_absolute_percentage_error",
}


def search_scoring(metric: str, n_classes: int) -> str:
    """The scorer a search optimises: the spec's metric, or ROC-AUC where scikit-learn has no scorer."""
    if metric in REGRESSION_SCORING:
        return REGRESSION_SCORING[metric]
    table = BINARY_SCORING if n_classes == 2 else MULTICLASS_SCORING
    return table.get(metric, table["roc_auc"])


def build_pipeline(
    catalog: CatalogEntry,
    entry: ModelEntry,
    numeric: list[str],
    categorical: list[str],
    metric: str = "roc_auc",
    n_classes: int = 2,
    seed: int = 42,
) -> BaseEstimator:
    """Preprocessing + estimator as one Pipeline, wrapped in a search when the entry has one."""
    estimator = build_estimator(catalog, entry, catalog.task)
    prefix = "model__"
    if catalog.calibration:
        estimator = CalibratedClassifierCV(estimator, method=catalog.calibration, cv=5)
        prefix = "model__estimator__"
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if catalog.needs_scaling:
        numeric_steps.append(("scale", StandardScaler()))
    transformers: list[tuple[str, Any, list[str]]] = [("numeric", Pipeline(numeric_steps), numeric)]
    if categorical:
        transformers.append((
            "categorical",
            Pipeline([
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]),
            categorical,
        ))
    pipeline = Pipeline([("prepare", ColumnTransformer(transformers)), ("model", estimator)])
    if entry.search is None:
        return pipeline
    search = entry.search
    space = {prefix + name: values for name, values in search.space.items()}
    folds = StratifiedKFold if catalog.task == "classification" else KFold
    inner = folds(n_splits=search.folds, shuffle=True, random_state=seed)
    scoring = search_scoring(metric, n_classes)
    if search.method == "grid":
        return GridSearchCV(pipeline, space, cv=inner, scoring=scoring, n_jobs=1)
    return RandomizedSearchCV(pipeline, space, n_iter=search.candidates, cv=inner, scoring=scoring,
                              random_state=seed, n_jobs=1)


def chosen_params(fitted: BaseEstimator) -> dict[str, Any]:
    """The params a fitted search chose (prefixes stripped), or {} without a search."""
    best = getattr(fitted, "best_params_", None)
    if not best:
        return {}
    return {k.split("__")[-1]: v for k, v in best.items()}
