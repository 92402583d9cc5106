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
            raise SpecError(str(path), [yaml_problem(err, text)]) from err
        return cls(Path(path), data, root)

    def line(self, loc: Location) -> str:
        """' (line N)' for the deepest key or item ``loc`` reaches, or '' without a node tree.

        A mapping key is reported on its own line: the value of a block mapping or sequence
        starts on the line below the key, where a person would not look for a misspelt key.
        """
        node = self.root
        if node is None:
            return ""
        line = node.start_mark.line
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                pair = next(((k, v) for k, v in node.value if getattr(k, "value", None) == part), None)
                if pair is None:
                    break
                line, node = pair[0].start_mark.line, pair[1]
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line
            else:
                break
        return f" (line {line + 1})"

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


#: The brackets of YAML's flow collections, opening to closing.
FLOW_BRACKETS = {"[": "]", "{": "}"}
#: A tag in a parser message: 'tag:yaml.org,2002:python/object/apply:os.system' or '!custom'.
TAG_IN_MESSAGE = re.compile(r"tag '(?:tag:yaml\.org,2002:)?(!?[^':]+)")


def yaml_problem(err: yaml.YAMLError, text: str) -> str:
    """The parser's error in a person's words: a tab, an unclosed bracket, a refused tag, else line and reason.

    The parser reports where it gave up; a person needs where the mistake is (the line that
    opened a bracket, the tab) and what to write instead.
    """
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None) or ""
    tabbed = _first_tab_indented_line(text, mark.line if mark else len(text))
    if tabbed is not None and ("tab" in problem or "cannot start any token" in problem):
        return f"line {tabbed} starts with a tab; YAML indents with spaces, so replace the tab with spaces"
    unclosed = _unclosed_bracket(text, mark.line if mark else len(text)) if "flow" in context else None
    if unclosed is not None:
        bracket, line = unclosed
        return (f"the `{bracket}` opened on line {line} is never closed; close it with `{FLOW_BRACKETS[bracket]}` "
                "(or add the comma missing between two of its items)")
    tag = TAG_IN_MESSAGE.search(problem)
    if isinstance(err, yaml.constructor.ConstructorError) and tag:
        name = tag.group(1) if tag.group(1).startswith("!") else f"!!{tag.group(1)}"
        where = f"line {mark.line + 1}: " if mark else ""
        return f"{where}tag `{name}` is not allowed in specs; write plain values (text, numbers, lists, mappings)"
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{where}YAML syntax error: {problem}"


def _unclosed_bracket(text: str, last_line: int) -> tuple[str, int] | None:
    """The innermost ``[`` or ``{`` still open at the end of line ``last_line`` (0-based), with its 1-based line.

    The parser reports where it gave up, often lines later; the bracket is where the mistake is.
    Quoted text and comments are skipped; a bracket counts only where a flow collection can start.
    """
    stack: list[tuple[str, int]] = []
    for number, line in enumerate(text.splitlines()[: last_line + 1], start=1):
        quote, token_start = "", True  # token_start: only blanks or one of : - , [ { since the last value
        for index, char in enumerate(line):
            if quote:
                quote = "" if char == quote else quote
            elif char == "#" and (index == 0 or line[index - 1] in " \t"):
                break
            elif token_start and char in "'\"":
                quote = char
            elif token_start and char in FLOW_BRACKETS:
                stack.append((char, number))
            elif char in FLOW_BRACKETS.values() and stack:
                stack.pop()
            token_start = char in " \t:-,[{" or (token_start and char in " \t")
    return stack[-1] if stack else None


def _first_tab_indented_line(text: str, last_line: int) -> int | None:
    """The 1-based number of the first line up to ``last_line`` (0-based) whose indentation holds a tab."""
    for number, line in enumerate(text.splitlines()[: last_line + 1], start=1):
        if "\t" in line[: len(line) - len(line.lstrip(" \t"))]:
            return number
    return None


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
