"""A run's overrides of its spec (which models, how many CV folds), checked by the same rules as the spec file.

They come from `dag-factory run --models/--cv-folds`, from a trigger's params in the Airflow UI
or API, or from a script. The DAG's params get their JSON schema from the spec's own models, and
every run applies its overrides through ``apply_overrides``, so ``--cv-folds 1`` and a trigger
with ``cv_folds: 1`` are refused with the sentence ``cv: {folds: 1}`` gets in a spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

from pydantic import ValidationError

from dag_factory.errors import SpecError, did_you_mean
from dag_factory.spec.schema import CVSpec, ExperimentSpec

#: How a trigger names the overrides: the DAG's params.
TRIGGER_NAMES = ("params.models", "params.cv_folds")
#: How `dag-factory run` names them: its options.
CLI_NAMES = ("--models", "--cv-folds")


def cv_folds_schema() -> dict[str, Any]:
    """The JSON schema of the ``cv_folds`` param: the spec's ``cv.folds`` rule (type, minimum, maximum)."""
    return dict(_cv_folds_schema())


@cache
def _cv_folds_schema() -> dict[str, Any]:
    """Built once per process: pydantic's schema generation costs ~3 ms, paid per DAG otherwise."""
    schema = CVSpec.model_json_schema()["properties"]["folds"]
    return {key: schema[key] for key in ("type", "minimum", "maximum") if key in schema}


def apply_overrides(spec: ExperimentSpec, models: list[str] | None = None, cv_folds: int | None = None,
                    names: tuple[str, str] = TRIGGER_NAMES) -> tuple[ExperimentSpec, list[str]]:
    """The spec with this run's CV folds, and the models to train; SpecError naming the override and the fix.

    ``names`` says how the user gave the two overrides (a trigger's params, or the CLI's options).
    """
    models_name, folds_name = names
    problems = []
    chosen = spec.model_names() if models is None else list(models)
    if not chosen:
        problems.append(f"{models_name}: no model named; name at least one of {', '.join(spec.model_names())}")
    for name in chosen:
        if name not in spec.model_names():
            problems.append(f'{models_name}: "{name}" is not a model of {spec.experiment}'
                            f"{did_you_mean(name, spec.model_names())}; its models are: {', '.join(spec.model_names())}")
    if cv_folds is not None:
        try:
            spec = spec.model_copy(update={"cv": CVSpec.model_validate({**spec.cv.model_dump(), "folds": cv_folds})})
        except ValidationError as err:
            reason = err.errors()[0]["msg"]
            problems.append(f"{folds_name}: {cv_folds!r} is refused as the spec's cv.folds would be: {reason}")
    if problems:
        raise SpecError(f"the overrides of run {spec.experiment}", problems)
    return spec, chosen


def refuse_unknown_conf(conf: Mapping[str, Any] | None, params: Iterable[str], experiment: str) -> None:
    """SpecError for every trigger conf key that is not one of the DAG's params.

    Airflow passes unknown conf keys through silently, so a misspelt ``{"modelz": [...]}`` from
    the UI or the REST API would train every model while the user believes it trains a few.
    """
    known = list(params)
    unknown = sorted(set(conf or {}) - set(known))
    if unknown:
        raise SpecError(f"the trigger conf of run {experiment}", [
            f'"{key}" is not a param of this DAG{did_you_mean(key, known)}; its params are: {", ".join(known)}'
            for key in unknown])
