"""app.yaml's problems as `ConfigIssue`s, each with file, line and field: YAML errors,
pydantic's validation errors (turned into the user's words and the YAML's paths), the checks
across functions, and the warnings about what is valid but likely not meant."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from ._exceptions import ConfigIssue, TableNameError
from ._yaml import Path_, YamlLimitError, line_of
from .triggers import KINDS

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .config import AppConfig, FunctionConfig

#: problems listed for one file; past that, a count (a file of garbage is not 30,000 lines)
MAX_ISSUES = 50


def yaml_issue(exc: yaml.YAMLError, file: str, text: str) -> ConfigIssue:
    if isinstance(exc, yaml.reader.ReaderError):  # no mark: a position in the text
        line = text.count("\n", 0, exc.position) + 1
        character = exc.character
        message = (
            f"bytes {character!r} are not UTF-8"
            if isinstance(character, bytes)
            else f"character {chr(character)!r} is not allowed in a YAML file"
        )
        return ConfigIssue(file, line, "", f"YAML: {message}")
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc)
    if isinstance(exc, YamlLimitError):
        return ConfigIssue(file, line, "", f"refused: {problem}")
    if isinstance(exc, (yaml.scanner.ScannerError, yaml.parser.ParserError)):
        return ConfigIssue(file, line, "", f"YAML syntax: {problem}")
    return ConfigIssue(file, line, "", f"YAML: {problem}")


def capped(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    if len(issues) <= MAX_ISSUES:
        return issues
    rest = issues[MAX_ISSUES]
    more = (
        f"... and {len(issues) - MAX_ISSUES} more problems from here on; fix the ones above first"
    )
    return [*issues[:MAX_ISSUES], ConfigIssue(rest.file, rest.line, "", more)]


def issues_from(
    exc: ValidationError, file: str, lines: dict[Path_, int], data: Any
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for error in exc.errors():
        loc = _yaml_path(tuple(error["loc"]), data)
        message = _message(error)
        if loc[-1:] == ("table_name",) or "Unity table name" in message:
            loc = _table_name_path(loc, data)
        line = line_of(lines, loc)
        if error["type"] == "union_tag_invalid":
            line = line_of(lines, (*loc, "type"))  # the wrong value, not `trigger:`
        issues.append(ConfigIssue(file, line, _dotted(loc), message))
    return _dedupe(issues)


def _yaml_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """Pydantic's loc minus the union tag segments it inserts ('http', 'timer', ...)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and part in KINDS:
            continue
        path.append(part)
        node = (
            node.get(part)
            if isinstance(node, dict)
            else (
                node[part]
                if isinstance(node, list) and isinstance(part, int) and part < len(node)
                else None
            )
        )
    return tuple(path)


def _table_name_path(loc: Path_, data: Any) -> Path_:
    # A model-level error about the table lands on the function; point at the name itself.
    if len(loc) >= 2 and loc[0] == "functions" and isinstance(loc[1], int):
        fn = data["functions"][loc[1]] if isinstance(data.get("functions"), list) else {}
        if isinstance(fn, dict):
            if "table_name" in fn:
                return ("functions", loc[1], "table_name")
            trigger = fn.get("trigger")
            if isinstance(trigger, dict) and "table_name" in trigger:
                return ("functions", loc[1], "trigger", "table_name")
    return loc


def _message(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required field is missing"
    if kind in ("tuple_type", "list_type"):
        return "should be a list (one `- item` per line)"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "union_tag_invalid":
        return f"unknown trigger type {ctx.get('tag')!r}; expected one of {_kind_names()}"
    if kind == "union_tag_not_found":
        return f"trigger needs a `type`: one of {_kind_names()}"
    if kind == "finite_number":
        return "must be a finite number (not .inf or .nan)"
    if kind in ("value_error", "assertion_error"):
        original = ctx.get("error")
        if isinstance(original, TableNameError):
            return str(original)
        return str(original) if original is not None else error["msg"]
    return str(error["msg"])


def _kind_names() -> str:
    return ", ".join(repr(name) for name in KINDS)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[tuple[Any, ...]] = set()
    unique = []
    for issue in issues:
        key = (issue.line, issue.field, issue.message)
        if key not in seen:
            seen.add(key)
            unique.append(issue)
    return unique


def cross_checks(data: dict[str, Any], file: str, lines: dict[Path_, int]) -> list[ConfigIssue]:
    """Checks across functions, on the raw data so they run even when a field is wrong."""
    functions = data.get("functions")
    if not isinstance(functions, list):
        return []
    issues: list[ConfigIssue] = []
    names: dict[str, int] = {}
    by_kind: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, fn in enumerate(functions):
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            continue
        name = fn["name"]
        where: Path_ = ("functions", index, "name")
        if name in names:
            first = line_of(lines, ("functions", names[name], "name"))
            message = f"duplicate function name {name!r} (first declared on line {first})"
            issues.append(ConfigIssue(file, line_of(lines, where), _dotted(where), message))
        else:
            names[name] = index
        trigger = fn.get("trigger")
        if isinstance(trigger, dict) and trigger.get("type") in KINDS:
            by_kind.setdefault(trigger["type"], []).append((index, fn))
    for kind, of_kind in by_kind.items():
        for problem in KINDS[kind].check_functions(of_kind):
            at = problem.where
            issues.append(ConfigIssue(file, line_of(lines, at), _dotted(at), problem.message))
    return issues


def config_warnings(config: AppConfig, lines: dict[Path_, int], file: str) -> list[ConfigIssue]:
    """What is valid but likely not what was meant (each kind says: an http function whose
    route also matches lakefn's own, say)."""
    by_kind: dict[str, list[tuple[int, FunctionConfig]]] = {}
    for index, fn in enumerate(config.functions):
        by_kind.setdefault(fn.kind, []).append((index, fn))
    warnings = []
    for kind, of_kind in by_kind.items():
        for problem in KINDS[kind].warnings(of_kind):
            at = problem.where
            warnings.append(ConfigIssue(file, line_of(lines, at), _dotted(at), problem.message))
    return warnings
