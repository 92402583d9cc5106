"""Read experiment and catalog YAML files into validated specs, or into precise errors.

Every problem names the file, the key path (with its line) and what was expected, with a
"did you mean" where a close match exists. One broken file never hides the others:
``load_experiments`` returns the good specs and the errors side by side.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from dag_factory.errors import SpecError, did_you_mean
from dag_factory.extras import storage_problem, tracking_problem
from dag_factory.spec import DEFAULT_ALLOWED_MODULES, SLUG_HINT, CatalogEntry, ExperimentSpec

#: Spec keys that look like credentials; those belong in Airflow connections or the environment.
SECRET_KEY_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "access_key", "private_key", "credential")

#: A URL with a password in it (scheme://user:password@host): credentials in a spec value.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)

#: Schedules Airflow accepts that cron itself does not know.
AIRFLOW_PRESETS = ("@once", "@continuous", "@quarterly")

#: Most values one spec may expand to; YAML aliases can make a short file expand without bound.
MAX_VALUES = 100_000

Catalog = dict[str, CatalogEntry]


@dataclass
class LoadResult:
    """What a folder of experiment files yielded: valid specs and per-file errors."""

    specs: dict[Path, ExperimentSpec] = field(default_factory=dict)
    errors: dict[Path, SpecError] = field(default_factory=dict)


def allowed_modules() -> tuple[str, ...]:
    """Module prefixes estimators may be imported from (extend with DAG_FACTORY_ALLOWED_MODULES)."""
    extra = os.environ.get("DAG_FACTORY_ALLOWED_MODULES", "")
    added = tuple(p.strip().rstrip(".") + "." for p in extra.split(",") if p.strip())
    return DEFAULT_ALLOWED_MODULES + added


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
    raw, root = _read_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(str(path), ["the file must hold a mapping of keys (estimator, params, ...)"])
    _raise_unsafe(path, raw, root)
    entry = _validate(CatalogEntry, {"name": path.stem, **raw}, path, root)
    if not entry.estimator.startswith(allowed_modules()):
        raise SpecError(
            str(path),
            [
                f'estimator "{entry.estimator}" is not in an allowed module ({", ".join(allowed_modules())}); '
                "add its module to DAG_FACTORY_ALLOWED_MODULES (comma-separated) if you trust it"
            ],
        )
    return entry


def load_experiment(
    path: Path, catalog: Catalog, catalog_errors: dict[str, SpecError] | None = None
) -> ExperimentSpec:
    """Read and validate one experiment file against the catalog."""
    path = Path(path)
    raw, root = _read_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(str(path), ["the file must hold a mapping with at least 'experiment', 'data' and 'models'"])
    _raise_unsafe(path, raw, root)
    spec = _validate(ExperimentSpec, raw, path, root)
    problems = [p for p in [_schedule_problem(spec.schedule, root)] if p] + _integration_problems(spec, root)
    for i, entry in enumerate(spec.models):
        where = f"models[{i}].model{_line(root, ('models', i, 'model'))}"
        if catalog_errors and entry.model in catalog_errors:
            broken = catalog_errors[entry.model]
            problems.append(f'{where}: the catalog entry "{entry.model}" is invalid ({broken.path}: {"; ".join(broken.problems)})')
        elif entry.model not in catalog:
            problems.append(
                f'{where}: unknown model "{entry.model}"'
                f"{did_you_mean(entry.model, catalog)}; known models: {', '.join(sorted(catalog))}"
            )
    if problems:
        raise SpecError(str(path), problems)
    return spec


def _integration_problems(spec: ExperimentSpec, root: yaml.Node | None) -> list[str]:
    """A data source, results root or tracking section that needs a package (an extra) not installed here."""
    checks = [(("data", "source"), spec.data.source, False)]
    if spec.results is not None:
        checks.append((("results", "root"), spec.results.root, True))
    found = [f"{_key_path(loc)}{_line(root, loc)}: {problem}"
             for loc, url, writable in checks if (problem := storage_problem(url, writable))]
    if spec.tracking is not None and (problem := tracking_problem()):
        found.append(f"tracking{_line(root, ('tracking',))}: {problem}")
    return found


def load_experiments(
    experiments_dir: Path,
    catalog: Catalog,
    catalog_errors: dict[str, SpecError] | None = None,
    only: str | None = None,
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
            spec = _guarded(load_experiment, path, catalog, catalog_errors)
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
                    f'experiment{_line(_compose(path), ("experiment",))}: the name "{name}" is already used by '
                    f"{owner.name}; experiment names become DAG ids and must be unique, so rename this one"])
    return result


_EXPERIMENT_LINE = re.compile(r"""^experiment:[ \t]*["']?([A-Za-z0-9_]+)["']?[ \t]*(?:#.*)?$""", re.MULTILINE)


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
    experiments_dir: Path, catalog: Catalog, name: str, catalog_errors: dict[str, SpecError] | None = None
) -> ExperimentSpec:
    """Return the spec whose ``experiment`` is ``name``, or raise with the known names."""
    result = load_experiments(experiments_dir, catalog, catalog_errors)
    for spec in result.specs.values():
        if spec.experiment == name:
            return spec
    for path, err in result.errors.items():
        if path.stem == name:
            raise err
    known = sorted(s.experiment for s in result.specs.values())
    raise SpecError(
        str(experiments_dir),
        [f'no experiment named "{name}"{did_you_mean(name, known)}; valid experiments: {", ".join(known) or "none"}'],
    )


def _compose(path: Path) -> yaml.Node | None:
    """The YAML node tree of a file that already parsed once (for line numbers)."""
    return yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=_YAML_LOADER)


#: libyaml's safe loader when available: parsing stays fast with hundreds of specs.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Safe-load a YAML file and keep its node tree for line numbers."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(str(path), [f"cannot read the file: {err.strerror}"]) from err
    try:
        root = yaml.compose(text, Loader=_YAML_LOADER)  # one parse: the nodes give line numbers
        return (None if root is None else _YAML_LOADER("").construct_document(root)), root
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(err, "problem", None) or str(err)
        raise SpecError(str(path), [f"{where}YAML syntax error: {reason}"]) from err


def _validate(model: type[BaseModel], raw: dict[str, Any], path: Path, root: yaml.Node | None) -> Any:
    """Build ``model`` from ``raw`` or raise a SpecError listing every problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise SpecError(str(path), [_describe(e, model, root) for e in err.errors()]) from None


def _describe(error: dict[str, Any], model: type[BaseModel], root: yaml.Node | None) -> str:
    """Turn one pydantic error into a sentence with key path, line and a fix."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    key = _key_path(loc) or "(top level)"
    where = f"{key}{_line(root, loc)}"
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


def _key_path(loc: tuple[Any, ...]) -> str:
    """('models', 1, 'params') -> 'models[1].params'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


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


def _line(root: yaml.Node | None, loc: tuple[Any, ...]) -> str:
    """' (line N)' for the deepest YAML node ``loc`` reaches, or '' without a node tree."""
    node = root
    if node is None:
        return ""
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                match = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return f" (line {node.start_mark.line + 1})"


def _raise_unsafe(path: Path, raw: Any, root: yaml.Node | None) -> None:
    """Refuse a file with repeated keys, credentials, or an alias-expanded size no spec needs."""
    problems = _duplicate_keys(root)
    try:
        problems += _secrets(raw, root)
    except OverflowError:
        problems.append(f"the file expands to more than {MAX_VALUES} values (YAML aliases?); write the spec out plainly")
    if problems:
        raise SpecError(str(path), problems)


def _walk(raw: Any, loc: tuple[Any, ...] = (), budget: list[int] | None = None) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (key path, value) of a parsed spec, depth first; OverflowError past MAX_VALUES."""
    budget = [MAX_VALUES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise OverflowError("spec too large")
    yield loc, raw
    items = raw.items() if isinstance(raw, dict) else enumerate(raw) if isinstance(raw, list) else ()
    for key, value in items:
        yield from _walk(value, (*loc, key), budget)


def _secrets(raw: Any, root: yaml.Node | None) -> list[str]:
    """Problems for every key that looks like a credential, and every URL with a password, anywhere."""
    fix = ("specs are committed to git, so put credentials in an Airflow connection or an environment "
           "variable instead")
    found = []
    for loc, value in _walk(raw):
        where = f"{_key_path(loc)}{_line(root, loc)}"
        key = str(loc[-1]).lower().replace("-", "_") if loc and not isinstance(loc[-1], int) else ""
        if any(word in key for word in SECRET_KEY_WORDS):
            found.append(f"{where}: looks like a secret; {fix}")
        elif isinstance(value, str) and URL_WITH_PASSWORD.search(value):
            found.append(f"{where}: the URL holds a user name and password; {fix}")
    return found


def _duplicate_keys(root: yaml.Node | None) -> list[str]:
    """Keys written twice in one mapping: YAML silently keeps the last, so one setting would be lost."""
    found: list[str] = []
    seen_nodes: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name, line = getattr(key, "value", None), key.start_mark.line + 1
                if isinstance(name, str) and name != "<<" and name in first:
                    found.append(f'line {line}: key "{name}" is written twice in the same mapping (first on line '
                                 f"{first[name]}); YAML would keep only the last one, so remove one of them")
                elif isinstance(name, str):
                    first[name] = line
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return found


def _schedule_problem(schedule: str | None, root: yaml.Node | None) -> str | None:
    """A sentence when ``schedule`` is neither null, an Airflow preset nor a valid cron expression."""
    if schedule is None or schedule in AIRFLOW_PRESETS:
        return None
    try:
        from croniter import croniter  # small; Airflow itself validates cron with it
    except ImportError:
        return None  # the factory's DAG check still catches it
    if croniter.is_valid(schedule):
        return None
    return (f'schedule{_line(root, ("schedule",))}: "{schedule}" is not an Airflow schedule; use a cron expression '
            'such as "0 6 * * 1", a preset such as "@daily", or null for manual runs only')
