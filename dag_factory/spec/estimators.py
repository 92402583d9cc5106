"""Catalog estimators: imported only from allowed modules, their params checked against the constructor.

Importing an estimator imports its package (scikit-learn, XGBoost): these checks run in
``dag-factory validate`` and in the train task, never while Airflow parses DAGs.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING, Any

from dag_factory.errors import ModelConfigError, did_you_mean
from dag_factory.spec.schema import CatalogEntry, ModelEntry, allowed_modules

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator


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
