"""A spec file as YAML: parsed once, with its node tree kept for line numbers and safety checks.

Everything here is about the text of a file (where a key is, whether a key is written twice,
whether a value looks like a credential); what a valid spec means lives in ``schema``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dag_factory.errors import SpecError

#: libyaml's safe loader when available: parsing stays fast with hundreds of specs.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: Spec keys that look like credentials; those belong in Airflow connections or the environment.
SECRET_KEY_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "access_key", "private_key", "credential")

#: A URL with a password in it (scheme://user:password@host): credentials in a spec value.
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)

#: Most values one spec may expand to; YAML aliases can make a short file expand without bound.
MAX_VALUES = 100_000

Location = tuple[Any, ...]


@dataclass(frozen=True)
class YamlDocument:
    """One parsed YAML file: its values and the node tree they came from."""

    path: Path
    data: Any
    root: yaml.Node | None

    @classmethod
    def read(cls, path: Path) -> YamlDocument:
        """Safe-load ``path`` (one parse: the nodes give line numbers), or raise a SpecError naming the line."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise SpecError(str(path), [f"cannot read the file: {err.strerror}"]) from err
        try:
            root = yaml.compose(text, Loader=YAML_LOADER)
            data = None if root is None else YAML_LOADER("").construct_document(root)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            reason = getattr(err, "problem", None) or str(err)
            raise SpecError(str(path), [f"{where}YAML syntax error: {reason}"]) from err
        return cls(Path(path), data, root)

    def line(self, loc: Location) -> str:
        """' (line N)' for the deepest node ``loc`` reaches, or '' without a node tree."""
        node = self.root
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

    def where(self, loc: Location) -> str:
        """A key path with its line: 'models[1].params (line 9)'."""
        return f"{key_path(loc)}{self.line(loc)}"

    def raise_if_unsafe(self) -> None:
        """Refuse a file with repeated keys, credentials, or an alias-expanded size no spec needs."""
        problems = self._duplicate_keys()
        try:
            problems += self._secrets()
        except OverflowError:
            problems.append(f"the file expands to more than {MAX_VALUES} values (YAML aliases?); "
                            "write the spec out plainly")
        if problems:
            raise SpecError(str(self.path), problems)

    def _secrets(self) -> list[str]:
        """Problems for every key that looks like a credential, and every URL with a password, anywhere."""
        fix = ("specs are committed to git, so put credentials in an Airflow connection or an environment "
               "variable instead")
        found = []
        for loc, value in _walk(self.data):
            key = str(loc[-1]).lower().replace("-", "_") if loc and not isinstance(loc[-1], int) else ""
            if any(word in key for word in SECRET_KEY_WORDS):
                found.append(f"{self.where(loc)}: looks like a secret; {fix}")
            elif isinstance(value, str) and URL_WITH_PASSWORD.search(value):
                found.append(f"{self.where(loc)}: the URL holds a user name and password; {fix}")
        return found

    def _duplicate_keys(self) -> list[str]:
        """Keys written twice in one mapping: YAML silently keeps the last, so one setting would be lost."""
        found: list[str] = []
        seen_nodes: set[int] = set()
        stack = [self.root] if self.root is not None else []
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


def key_path(loc: Location) -> str:
    """('models', 1, 'params') -> 'models[1].params'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _walk(raw: Any, loc: Location = (), budget: list[int] | None = None) -> Iterator[tuple[Location, Any]]:
    """Every (key path, value) of a parsed spec, depth first; OverflowError past MAX_VALUES."""
    budget = [MAX_VALUES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise OverflowError("spec too large")
    yield loc, raw
    items = raw.items() if isinstance(raw, dict) else enumerate(raw) if isinstance(raw, list) else ()
    for key, value in items:
        yield from _walk(value, (*loc, key), budget)
