"""XGBoost's hyperparameters checked by XGBoost itself, without training.

``XGBClassifier`` accepts any keyword and XGBoost only warns, at fit time, that a parameter
"is not used": a misspelt ``max_depht`` would be ignored and the model ranked as if tuned.
Here each parameter is handed to an empty ``Booster`` on its own: XGBoost validates its value
(range, type, choice) and names the parameters it does not know. ``n_estimators`` and
``early_stopping_rounds`` belong to the scikit-learn wrapper, which never checks them
(``n_estimators: -5`` trains no tree at all), so their ranges are checked here.

This module imports XGBoost and scikit-learn: ``estimators`` imports it only when a check runs.
"""

from __future__ import annotations

import inspect
import json
import re
import warnings
from collections.abc import Iterator
from numbers import Integral
from typing import Any

import xgboost
from sklearn.utils._param_validation import InvalidParameterError, Interval, validate_parameter_constraints

#: The parameters XGBoost reports as unknown, in its warning: Parameters: { "max_depht", "x" } are not used.
NOT_USED = re.compile(r"Parameters: \{(.*?)\} are not used", re.DOTALL)
#: scikit-learn-style constraints of the wrapper parameters XGBoost itself never checks.
WRAPPER_CONSTRAINTS: dict[str, list[Any]] = {
    "n_estimators": [Interval(Integral, 1, None, closed="left")],
    "early_stopping_rounds": [Interval(Integral, 1, None, closed="left"), None],
}


def unknown_names(estimator_class: type, params: dict[str, Any]) -> list[str]:
    """The names in ``params`` that neither the wrapper's constructor nor XGBoost's booster knows."""
    own = _constructor_names(estimator_class)
    booster_only = {name: value for name, value in params.items() if name not in own}
    return [name for name in booster_only if _not_used(name, booster_only[name])]


def known_names(estimator_class: type) -> list[str]:
    """Every parameter name XGBoost knows (for "did you mean"): the wrapper's and the default booster's."""
    booster = xgboost.Booster({"num_feature": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = json.loads(booster.save_config())
    return sorted(set(_constructor_names(estimator_class)) | set(_leaf_keys(config)))


def value_problem(estimator: Any, name: str) -> str | None:
    """Why XGBoost refuses the value of parameter ``name`` of a constructed ``estimator``, or None."""
    value = estimator.get_params(deep=False)[name]
    if name in WRAPPER_CONSTRAINTS:
        try:
            validate_parameter_constraints({name: WRAPPER_CONSTRAINTS[name]}, {name: value},
                                           caller_name=type(estimator).__name__)
        except InvalidParameterError as err:
            return str(err)
        return None
    booster_params = estimator.get_xgb_params()
    if name not in booster_params or booster_params[name] is None:
        return None
    return _booster_refusal({name: booster_params[name]})


def _not_used(name: str, value: Any) -> bool:
    """Whether XGBoost says a booster parameter ``name`` is not used (its value is checked separately)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            xgboost.Booster({name: value, "num_feature": 1}).save_config()
        except xgboost.core.XGBoostError:
            return False  # a known name with a bad value: value_problem says so
    unused = (m.group(1) for w in caught if (m := NOT_USED.search(str(w.message))))
    return any(name in re.findall(r'"([^"]+)"', names) for names in unused)


def _booster_refusal(params: dict[str, Any]) -> str | None:
    """XGBoost's own sentence when it refuses ``params`` on an empty booster, or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            xgboost.Booster({**params, "num_feature": 1}).save_config()
        except xgboost.core.XGBoostError as err:
            first = str(err).strip().splitlines()[0]
            return re.sub(r"^\[[\d:]+\] \S+: ", "", first)  # drop XGBoost's time stamp and source location
    return None


def _constructor_names(estimator_class: type) -> list[str]:
    """Named parameters of the wrapper's constructor and of its base classes' (XGBClassifier -> XGBModel)."""
    names: list[str] = []
    for klass in estimator_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for parameter in inspect.signature(init).parameters.values():
            if parameter.name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                names.append(parameter.name)
    return list(dict.fromkeys(names))


def _leaf_keys(config: Any) -> Iterator[str]:
    """The parameter names in a booster's JSON configuration (keys whose values are not sections)."""
    if isinstance(config, dict):
        for key, value in config.items():
            if isinstance(value, dict | list):
                yield from _leaf_keys(value)
            else:
                yield key
