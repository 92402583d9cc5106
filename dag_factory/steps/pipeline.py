"""Build one model's scikit-learn Pipeline from its catalog entry and the experiment's overrides.

Everything fitted on data (imputer, scaler, encoder) lives inside the Pipeline, so
cross-validation does not leak and the saved artifact predicts from raw rows.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from dag_factory.errors import ModelConfigError, did_you_mean
from dag_factory.loader import allowed_modules
from dag_factory.spec import CatalogEntry, ModelEntry

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


def search_scoring(metric: str, n_classes: int) -> str:
    """The scorer a search optimises: the spec's metric, or ROC-AUC where scikit-learn has no scorer."""
    table = BINARY_SCORING if n_classes == 2 else MULTICLASS_SCORING
    return table.get(metric, table["roc_auc"])


def import_estimator(path: str) -> type[BaseEstimator]:
    """Import an estimator class, refusing any module outside the allow-list before importing it."""
    if not path.startswith(allowed_modules()):
        raise ModelConfigError(
            f'estimator "{path}" is not in an allowed module ({", ".join(allowed_modules())}); '
            "add its module to DAG_FACTORY_ALLOWED_MODULES (comma-separated) if you trust it"
        )
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelConfigError(f'estimator "{path}": cannot import module {module_name}: {err}') from err
    estimator = getattr(module, class_name, None)
    if not isinstance(estimator, type):
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ModelConfigError(
            f'estimator "{path}": {module_name} has no class "{class_name}"{did_you_mean(class_name, names)}')
    return estimator


def estimator_params(catalog: CatalogEntry, entry: ModelEntry) -> dict[str, Any]:
    """The catalog's default params overridden by the experiment's, checked against the estimator."""
    params = {**catalog.params, **entry.params}
    estimator = import_estimator(catalog.estimator)
    check_param_names(estimator, params, entry.label)
    if entry.search:
        check_param_names(estimator, dict.fromkeys(entry.search.space), entry.label, key="search.space")
    return params


def check_param_names(estimator: type[BaseEstimator], params: dict[str, Any], label: str, key: str = "params") -> None:
    """Raise a ModelConfigError naming every param the estimator does not accept.

    Reads the constructor's signature, so estimators whose arguments are all required work too.
    """
    signature = inspect.signature(estimator.__init__).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature):
        return  # XGBoost passes unknown keyword arguments through to its booster
    valid = [p.name for p in signature if p.name != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
    unknown = [name for name in params if name not in valid]
    if unknown:
        raise ModelConfigError("; ".join(
            f'model "{label}": {key}.{name} is not a parameter of {estimator.__name__}{did_you_mean(name, valid)}'
            for name in unknown) + f"; valid parameters: {', '.join(sorted(valid))}")


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
    params = estimator_params(catalog, entry)
    estimator: BaseEstimator = import_estimator(catalog.estimator)(**params)
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
    inner = StratifiedKFold(n_splits=search.folds, shuffle=True, random_state=seed)
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
