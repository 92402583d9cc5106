"""Catalog estimators: only allowed classes that are estimators of the experiment's task, with valid params.

A catalog entry and a spec's params are untrusted input. Before anything is fitted:

- the class is imported only from an allowed module, and the class's *own* module must be
  allowed too (``sklearn.datasets._openml.TemporaryDirectory`` is the standard library's);
- it must be a scikit-learn estimator of the task (a classifier today), and a composite
  (Pipeline, voting, stacking) only where each part is an estimator that passes the same checks;
- each param name must be one the estimator knows, and each value one it accepts: scikit-learn's
  own parameter constraints, XGBoost's own booster checks; a search space's every candidate too.

Importing an estimator imports its package (scikit-learn, XGBoost): these checks run in
``dag-factory validate`` and in the train task, never while Airflow parses DAGs.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dag_factory.errors import ModelConfigError, did_you_mean
from dag_factory.spec.schema import CatalogEntry, ModelEntry, TaskKind, allowed_modules, module_refusal
from dag_factory.spec.yaml_source import Location

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

#: Each task names the scikit-learn check its estimators must pass.
TASK_ESTIMATORS = {"classification": ("classifier", "is_classifier"), "regression": ("regressor", "is_regressor")}
#: Params through which scikit-learn composites take their parts: lists of (name, estimator, ...).
COMPOSITE_PARAMS = ("steps", "estimators", "transformers", "transformer_list")
#: What a composite accepts in place of a part.
PART_PLACEHOLDERS = ("drop", "passthrough")
#: How deep parts of parts are checked (a meta-estimator of a meta-estimator of ...).
MAX_PART_DEPTH = 5


@dataclass(frozen=True)
class ModelProblem:
    """One reason a model cannot be built: the key it is about (relative to the model) and where it was written.

    ``key`` is ``("estimator",)``, ``("params", "C")`` or ``("search", "space", "C", 1)``;
    ``in_catalog`` says whether the value came from the catalog file rather than the experiment.
    """

    key: Location
    in_catalog: bool
    message: str


def estimator_params(catalog: CatalogEntry, entry: ModelEntry) -> dict[str, Any]:
    """The catalog's default params overridden by the experiment's."""
    return {**catalog.params, **entry.params}


def build_estimator(catalog: CatalogEntry, entry: ModelEntry, task: TaskKind = "classification") -> BaseEstimator:
    """The entry's estimator, constructed and checked; ModelConfigError naming every problem otherwise."""
    estimator, problems = _checked(catalog, entry, task)
    if problems or estimator is None:
        raise ModelConfigError("; ".join(describe(entry.label, p) for p in problems))
    return estimator


def model_problems(catalog: CatalogEntry, entry: ModelEntry, task: TaskKind = "classification") -> list[ModelProblem]:
    """Every reason the entry's estimator cannot be built or trained as the spec says ([] when it can)."""
    return _checked(catalog, entry, task)[1]


def describe(label: str, problem: ModelProblem) -> str:
    """A problem as one sentence: 'model "svm": params.C: The 'C' parameter of SVC must be ...'."""
    return f'model "{label}": {problem.message}'


def import_estimator(path: str) -> type[BaseEstimator]:
    """Import an estimator class: its path and the class's own module must be allowed, and it must be an estimator.

    The path is checked before anything is imported; the class's own module after, since an
    allowed module may import a class from anywhere (``sklearn.datasets._openml.TemporaryDirectory``).
    """
    refusal = module_refusal(path)
    if refusal:
        raise ModelConfigError(refusal)
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelConfigError(f'estimator "{path}": cannot import module {module_name}: {err}') from err
    estimator = getattr(module, class_name, None)
    if estimator is not None and not isinstance(estimator, type):
        raise ModelConfigError(f'estimator "{path}" is not a class; name a scikit-learn estimator class such as '
                               "sklearn.linear_model.LogisticRegression")
    if estimator is None:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise ModelConfigError(
            f'estimator "{path}": {module_name} has no class "{class_name}"{did_you_mean(class_name, names)}')
    _check_class(path, estimator)
    return estimator


def _check_class(path: str, estimator: type) -> None:
    """The class's own module is allowed, and it is a scikit-learn estimator (BaseEstimator)."""
    from sklearn.base import BaseEstimator

    own = f"{estimator.__module__}.{estimator.__qualname__}"
    if module_refusal(own):
        raise ModelConfigError(
            f'estimator "{path}" is {own}, defined outside the allowed modules ({", ".join(allowed_modules())}); '
            f"name a class where it is defined, or add {estimator.__module__} to DAG_FACTORY_ALLOWED_MODULES "
            "if you trust it")
    if not issubclass(estimator, BaseEstimator):
        raise ModelConfigError(f'estimator "{path}" is not a scikit-learn estimator (no sklearn.base.BaseEstimator); '
                               "name a scikit-learn compatible classifier such as sklearn.linear_model.LogisticRegression")


def _checked(catalog: CatalogEntry, entry: ModelEntry,
             task: TaskKind) -> tuple[BaseEstimator | None, list[ModelProblem]]:
    """The constructed estimator (None when it cannot be built) and every problem found on the way."""
    try:
        estimator_class = import_estimator(catalog.estimator)
    except ModelConfigError as err:
        return None, [ModelProblem(("estimator",), True, str(err))]
    params = estimator_params(catalog, entry)
    in_catalog = {name: name not in entry.params for name in params}
    problems = [ModelProblem(("params", name), in_catalog[name], message)
                for name, message in _unknown_names(estimator_class, params, "params")]
    if entry.search:
        problems += [ModelProblem(("search", "space", name), False, message)
                     for name, message in _unknown_names(estimator_class, entry.search.space, "search.space")]
    unknown = {problem.key[-1] for problem in problems}
    try:
        estimator = estimator_class(**{name: value for name, value in params.items() if name not in unknown})
    except TypeError as err:  # a required argument the spec cannot give (a composite's parts, say)
        return None, [*problems, ModelProblem(("estimator",), True, f"{catalog.estimator} cannot be built from "
                      f"params alone ({err}); name a single classifier such as sklearn.linear_model.LogisticRegression")]
    parts = [ModelProblem(("estimator",), True, message) for message in _part_problems(estimator, catalog.estimator)]
    if parts:
        return None, problems + parts
    problems += [ModelProblem(("params", name), in_catalog[name], f"params.{name}: {message}")
                 for name in params if name not in unknown and (message := _value_problem(estimator, name))]
    if entry.search:
        problems += _search_problems(estimator, entry, unknown)
    if not problems:
        problems += _task_problems(estimator, catalog.estimator, task)
    return (None if problems else estimator), problems


def _unknown_names(estimator_class: type, params: dict[str, Any], key: str) -> list[tuple[str, str]]:
    """(name, sentence) for every param the estimator does not accept; ``key`` is where they were written.

    Reads the constructor's signature; XGBoost, whose constructor takes any keyword, is asked itself.
    """
    signature = inspect.signature(estimator_class.__init__).parameters.values()
    if _is_xgboost(estimator_class):
        from dag_factory.spec import xgboost_params

        unknown = xgboost_params.unknown_names(estimator_class, params)
        valid = xgboost_params.known_names(estimator_class) if unknown else []
        fix = "XGBoost would ignore it"
    elif any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature):
        return []  # an allowed third-party estimator that passes keywords on: its own fit judges them
    else:
        valid = [p.name for p in signature if p.name != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
        unknown = [name for name in params if name not in valid]
        fix = f"valid parameters: {', '.join(sorted(valid))}"
    return [(name, f"{key}.{name} is not a parameter of {estimator_class.__name__}{did_you_mean(name, valid)}; {fix}")
            for name in unknown]


def _is_xgboost(estimator_class: type) -> bool:
    """XGBoost's scikit-learn wrappers: any keyword accepted, no scikit-learn parameter constraints."""
    return estimator_class.__module__.startswith("xgboost.")


def _part_problems(estimator: BaseEstimator, path: str, depth: int = 0) -> list[str]:
    """Why a composite's or meta-estimator's parts are refused: each must be an estimator passing the same checks.

    A spec can only write text and numbers, so parts it names ("sklearn.svm.SVC") are never
    estimators; parts built in by default (a BaggingClassifier's tree) are checked like the class.
    """
    from sklearn.base import BaseEstimator

    problems = []
    for name, value in estimator.get_params(deep=False).items():
        parts = [item[1] if isinstance(item, list | tuple) and len(item) > 1 else item
                 for item in value] if name in COMPOSITE_PARAMS and isinstance(value, list | tuple) else [value]
        for part in parts:
            if isinstance(part, BaseEstimator):
                try:
                    _check_class(f"{path} ({name})", type(part))
                except ModelConfigError as err:
                    problems.append(str(err))
                if depth < MAX_PART_DEPTH:
                    problems += _part_problems(part, f"{path} ({name})", depth + 1)
            elif name in COMPOSITE_PARAMS and part not in PART_PLACEHOLDERS:
                problems.append(
                    f"{path} is built from other estimators (its `{name}`), which a spec cannot write; the factory "
                    "builds the Pipeline (preprocessing + model) itself, so name the final classifier, "
                    "e.g. sklearn.linear_model.LogisticRegression")
                break
    return problems


def _value_problem(estimator: BaseEstimator, name: str) -> str | None:
    """Why the estimator refuses the value of param ``name``, in its own words (scikit-learn's or XGBoost's)."""
    from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

    if _is_xgboost(type(estimator)):
        from dag_factory.spec import xgboost_params

        return xgboost_params.value_problem(estimator, name)
    constraints = getattr(estimator, "_parameter_constraints", {})
    if name not in constraints:
        return None
    try:
        validate_parameter_constraints({name: constraints[name]}, {name: estimator.get_params(deep=False)[name]},
                                       caller_name=type(estimator).__name__)
    except InvalidParameterError as err:
        return str(err)
    return None


def _search_problems(estimator: BaseEstimator, entry: ModelEntry, unknown: set[Any]) -> list[ModelProblem]:
    """Every candidate of the search space that the estimator would refuse, one problem each."""
    from sklearn.base import clone

    assert entry.search is not None
    problems = []
    for name, candidates in entry.search.space.items():
        for index, value in enumerate(candidates if name not in unknown else []):
            candidate = clone(estimator).set_params(**{name: value})
            message = _value_problem(candidate, name)
            if message:
                problems.append(ModelProblem(("search", "space", name, index), False,
                                             f"search.space.{name}[{index}]: {message}"))
    return problems


def _task_problems(estimator: BaseEstimator, path: str, task: TaskKind) -> list[ModelProblem]:
    """The estimator must be of the experiment's kind: a classifier for a classification task."""
    import sklearn.base

    kind, check = TASK_ESTIMATORS[task]
    if getattr(sklearn.base, check)(estimator):
        return []
    return [ModelProblem(("estimator",), True, f"{path} is not a {kind} (sklearn.base.{check} is false), and this "
                                               f"experiment's task is {task}; name a {kind}")]
