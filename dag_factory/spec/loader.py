"""Read experiment and catalog YAML files into validated specs, or into precise errors.

Every problem names the file, the key path (with its line) and what was expected, with a
"did you mean" where a close match exists. One broken file never hides the others:
``load_experiments`` returns the good specs and the errors side by side.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from dag_factory.errors import SpecError, did_you_mean
from dag_factory.spec.extras import drive_problem, spark_problem, storage_problem, tracking_problem
from dag_factory.spec.schema import (
    SLUG_HINT, Catalog, CatalogEntry, ExperimentSpec, NotifySpec, for_task, module_refusal, task_problems,
)
from dag_factory.spec.sources import SourceRefused, local_source
from dag_factory.spec.yaml_source import YamlDocument

#: Schedules Airflow accepts that cron itself does not know.
AIRFLOW_PRESETS = ("@once", "@continuous", "@quarterly")

@dataclass
class LoadResult:
    """What a folder of experiment files yielded: valid specs and per-file errors."""

    specs: dict[Path, ExperimentSpec] = field(default_factory=dict)
    errors: dict[Path, SpecError] = field(default_factory=dict)


def load_catalog(models_dir: Path) -> tuple[Catalog, dict[str, SpecError]]:
    """Read every models/<name>.yaml: valid entries, and errors keyed by entry name.

    A broken catalog file only breaks the experiments that use that model.
    """
    catalog: Catalog = {}
    errors: dict[str, SpecError] = {}
    for path in sorted(Path(models_dir).glob("*.yaml")):
        try:
            catalog[path.stem] = _guarded(_catalog_entry, path)
        except SpecError as err:
            errors[path.stem] = err
    return catalog, errors


def _guarded(read: Any, path: Path, *args: Any) -> Any:
    """Call ``read(path, *args)``; turn any unexpected failure into this file's SpecError.

    The DAG file builds every experiment, so one file must never crash the whole parse.
    """
    try:
        return read(path, *args)
    except SpecError:
        raise
    except Exception as err:  # noqa: BLE001
        raise SpecError(str(path), [f"the file cannot be read as a spec ({type(err).__name__}: {err}); "
                                    "compare it with a working one"]) from err


def _catalog_entry(path: Path) -> CatalogEntry:
    doc = YamlDocument.read(path)
    if not isinstance(doc.data, dict):
        raise SpecError(str(path), ["the file must hold a mapping of keys (estimator, params, ...)"])
    doc.raise_if_unsafe()
    entry = _validate(CatalogEntry, {"name": path.stem, **doc.data}, doc)
    refusal = module_refusal(entry.estimator)
    if refusal:
        raise SpecError(str(path), [f"{doc.where(('estimator',))}: {refusal}"])
    return entry


def load_experiment(
    path: Path, catalog: Catalog, catalog_errors: dict[str, SpecError] | None = None,
    project_root: Path | None = None,
) -> ExperimentSpec:
    """Read and validate one experiment file against the catalog.

    ``project_root`` is where relative data paths start and the first data root (default: the
    folder holding the file's folder, as ``<project>/experiments/<file>``).
    """
    doc = YamlDocument.read(Path(path))
    if not isinstance(doc.data, dict):
        raise SpecError(str(path), ["the file must hold a mapping with at least 'experiment', 'data' and 'models'"])
    doc.raise_if_unsafe()
    spec = _validate(ExperimentSpec, doc.data, doc)
    root = project_root if project_root is not None else Path(path).resolve().parent.parent
    problems = [p for p in [_schedule_problem(spec.schedule, doc), _split_problem(spec, doc)] if p]
    problems += _source_problems(spec, doc, root)
    problems += _integration_problems(spec, doc)
    for i, entry in enumerate(spec.models):
        where = doc.where(("models", i, "model"))
        if catalog_errors and entry.model in catalog_errors:
            broken = catalog_errors[entry.model]
            problems.append(f'{where}: the catalog entry "{entry.model}" is invalid ({broken.path}: {"; ".join(broken.problems)})')
        elif entry.model not in catalog:
            problems.append(
                f'{where}: unknown model "{entry.model}"'
                f"{did_you_mean(entry.model, catalog)}; known models: {', '.join(sorted(catalog))}"
            )
    if spec.task is not None:
        spec = for_task(spec, spec.task)
        problems += [f"{doc.where(key)}: {message}" for key, message in task_problems(spec, spec.task, catalog)]
    elif mixed := _mixed_tasks(spec, catalog):
        problems.append(f"{doc.where(('models',))}: {mixed}")
    if problems:
        raise SpecError(str(path), problems)
    if spec.notify is None and (default := notify_default(root)) is not None:
        spec = spec.model_copy(update={"notify": default})
    return spec


def _mixed_tasks(spec: ExperimentSpec, catalog: Catalog) -> str | None:
    """Why the models of a spec without ``task:`` cannot all serve the task its target will settle, if so."""
    by_task: dict[str, list[str]] = defaultdict(list)
    for entry in spec.models:
        if entry.model in catalog:
            by_task[catalog[entry.model].task].append(entry.label)
    if len(by_task) < 2:
        return None
    named = " and ".join(f"{task} models ({', '.join(names)})" for task, names in sorted(by_task.items()))
    return f"names {named}; an experiment has one task, so set task: and keep only the models of that task"


#: The project's notification default (a spec's ``notify:`` section, in a file of its own at the project's root):
#: every experiment without a ``notify:`` of its own uses it.
NOTIFY_DEFAULT = "notify.yaml"


def notify_default(project_root: Path) -> NotifySpec | None:
    """The project-wide ``notify.yaml``, validated like a spec's section (errors name its file, key and line)."""
    path = Path(project_root) / NOTIFY_DEFAULT
    if not path.is_file():
        return None
    doc = YamlDocument.read(path)
    if not isinstance(doc.data, dict):
        raise SpecError(str(path), ["the file must hold a mapping like a spec's notify: section "
                                    "(events, email, webhooks, timeout_seconds)"])
    doc.raise_if_unsafe()
    return _validate(NotifySpec, doc.data, doc)


def _source_problems(spec: ExperimentSpec, doc: YamlDocument, project_root: Path) -> list[str]:
    """Data files outside the data roots (after ``..`` and symbolic links), or ones that reach local files."""
    found = []
    for key, source in spec.data.sources().items():
        try:
            local_source(source, project_root)
        except SourceRefused as refused:
            found.append(f"{doc.where(('data', key))}: {refused}")
    return found


def _split_problem(spec: ExperimentSpec, doc: YamlDocument) -> str | None:
    """A ``split:`` section next to ``data.test_source``: the test rows come from that file, so nothing is split."""
    if spec.data.test_source is None or "split" not in spec.model_fields_set:
        return None
    return (f"{doc.where(('split',))}: data.test_source gives the held-out test rows, so no split is drawn; "
            "remove the split section (or remove data.test_source to split data.source)")


def _integration_problems(spec: ExperimentSpec, doc: YamlDocument) -> list[str]:
    """A data source, results root or tracking section that needs a package (an extra) not installed here."""
    checks = [(("data", key), source, False) for key, source in spec.data.sources().items()]
    if spec.results is not None:
        checks.append((("results", "root"), spec.results.root, True))
    found = [f"{doc.where(loc)}: {problem}"
             for loc, url, writable in checks if (problem := storage_problem(url, writable))]
    if spec.data.engine == "spark" and (problem := spark_problem(spec.data.spark.remote is not None)):
        found.append(f"{doc.where(('data', 'engine'))}: {problem}")
    if spec.tracking is not None and (problem := tracking_problem()):
        found.append(f"{doc.where(('tracking',))}: {problem}")
    if spec.publish is not None and (problem := drive_problem()):
        found.append(f"{doc.where(('publish',))}: {problem}")
    return found


def load_experiments(
    experiments_dir: Path,
    catalog: Catalog,
    catalog_errors: dict[str, SpecError] | None = None,
    only: str | None = None,
    project_root: Path | None = None,
) -> LoadResult:
    """Validate every experiments/*.yaml; a bad file is reported, never fatal to the others.

    When two files claim one experiment name, the file named after it (else the first by
    name) keeps it, so adding a copy never takes over or hides an existing DAG. With ``only``
    (a DAG id), files that plainly name another experiment are not validated at all: a worker
    about to run one task needs one spec, not hundreds.
    """
    result = LoadResult()
    claims: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(Path(experiments_dir).glob("*.y*ml")):
        if only is not None and not _may_define(path, only):
            continue
        try:
            spec = _guarded(load_experiment, path, catalog, catalog_errors, project_root)
        except SpecError as err:
            result.errors[path] = err
            continue
        claims[spec.experiment].append(path)
        result.specs[path] = spec
    for name, paths in claims.items():
        owner = next((p for p in paths if p.stem == name), paths[0])
        for path in paths:
            if path != owner:
                del result.specs[path]
                result.errors[path] = SpecError(str(path), [
                    f'{YamlDocument.read(path).where(("experiment",))}: the name "{name}" is already used by '
                    f"{owner.name}; experiment names become DAG ids and must be unique, so rename this one"])
    return result


_EXPERIMENT_LINE = re.compile(r"""^experiment:[ \t]*["']?([A-Za-z0-9_]+)["']?[ \t]*(?:#.*)?$""", re.MULTILINE)


def _names_experiment(path: Path, name: str) -> bool:
    """Whether a plain ``experiment:`` line of the file names ``name`` (a cheap scan: the file may not parse)."""
    try:
        return name in _EXPERIMENT_LINE.findall(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return False


def _may_define(path: Path, dag_id: str) -> bool:
    """False only when a plain ``experiment:`` line names another DAG (a cheap scan, no YAML parse)."""
    if dag_id.startswith("invalid_spec__"):
        return True  # stand-in DAGs of broken files need the full check
    try:
        found = _EXPERIMENT_LINE.findall(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return True
    return len(found) != 1 or found[0] == dag_id


def find_experiment(
    experiments_dir: Path, catalog: Catalog, name: str, catalog_errors: dict[str, SpecError] | None = None,
    project_root: Path | None = None,
) -> ExperimentSpec:
    """Return the spec whose ``experiment`` is ``name``, or raise with the known names.

    When the file that would define ``name`` is broken (named after it, or naming it on a plain
    ``experiment:`` line), its own error is raised: that is what the user has to fix.
    """
    result = load_experiments(experiments_dir, catalog, catalog_errors, project_root=project_root)
    for spec in result.specs.values():
        if spec.experiment == name:
            return spec
    for path, err in result.errors.items():
        if path.stem == name or _names_experiment(path, name):
            raise err
    known = sorted(s.experiment for s in result.specs.values())
    raise SpecError(
        str(experiments_dir),
        [f'no experiment named "{name}"{did_you_mean(name, known)}; valid experiments: {", ".join(known) or "none"}'],
    )


def _validate(model: type[BaseModel], raw: dict[str, Any], doc: YamlDocument) -> Any:
    """Build ``model`` from ``raw`` or raise a SpecError listing every problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise SpecError(str(doc.path), [_describe(e, model, doc) for e in err.errors()]) from None


def _describe(error: dict[str, Any], model: type[BaseModel], doc: YamlDocument) -> str:
    """Turn one pydantic error into a sentence with key path, line and a fix."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    where = doc.where(loc) if loc else f"(top level){doc.line(loc)}"
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        suggestion = did_you_mean(str(loc[-1]), allowed)
        return f'{where}: unknown key "{loc[-1]}"{suggestion}; allowed keys here: {", ".join(allowed)}'
    if kind == "missing":
        return f"{where}: required key is missing"
    if kind == "string_pattern_mismatch" and loc and loc[-1] in ("experiment", "name"):
        return f'{where}: "{error["input"]}" is not a safe name; use {SLUG_HINT}'
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        got = error.get("input")
        hint = did_you_mean(str(got), [e.strip("' ") for e in expected.replace(" or ", ",").split(",")])
        return f'{where}: "{got}" is not allowed{hint}; expected {expected}'
    message = error["msg"].removeprefix("Value error, ")
    got = error.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{where}: {message}{shown}"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Names of the keys allowed in the sub-model that ``loc`` points into."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return []
        current = _sub_model(info.annotation)
        if current is None:
            return []
    return list(current.model_fields)


def _sub_model(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel inside an annotation such as ``list[ModelEntry]`` or ``SearchSpec | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _sub_model(arg)
        if found is not None:
            return found
    return None


def _schedule_problem(schedule: str | None, doc: YamlDocument) -> str | None:
    """A sentence when ``schedule`` is neither null, an Airflow preset nor a valid cron expression."""
    if schedule is None or schedule in AIRFLOW_PRESETS:
        return None
    try:
        from croniter import croniter  # small; Airflow itself validates cron with it
    except ImportError:
        return None  # the factory's DAG check still catches it
    if croniter.is_valid(schedule):
        return None
    return (f'{doc.where(("schedule",))}: "{schedule}" is not an Airflow schedule; use a cron expression '
            'such as "0 6 * * 1", a preset such as "@daily", or null for manual runs only')
