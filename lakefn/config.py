"""app.yaml as frozen, validated models.

Validation happens here, at the edge; the rest of lakefn trusts these objects. `load_config`
reports every problem of a file at once, each with file, line and field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ._exceptions import ConfigError, ConfigIssue, TableNameError
from ._tablename import TableName
from ._yaml import Path_, line_of, load_with_lines

#: routes the server serves itself (FastAPI's docs and lakefn's own)
RESERVED_ENDPOINTS = (
    "/lakefn",
    "/healthz",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
TABLE_SOURCES = ("auto", "local", "warehouse", "spark", "recorded")
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
_FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvVar(_Model):
    """One Databricks Apps environment entry: a literal `value` or a `valueFrom` resource."""

    name: str
    value: str | None = None
    value_from: str | None = Field(default=None, alias="valueFrom")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # YAML turns `value: 8000` into an int; the environment only holds strings.
        return str(value) if isinstance(value, (int, float, bool)) else value

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("give exactly one of `value` or `valueFrom`")
        return self


class RetryPolicy(_Model):
    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff_seconds: float = Field(default=1.0, ge=0)


class HttpTrigger(_Model):
    type: Literal["http"]
    method: str = "POST"
    endpoint: str

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        method = value.upper()
        if method not in HTTP_METHODS:
            raise ValueError(f"unknown HTTP method {value!r}; use one of {', '.join(HTTP_METHODS)}")
        return method

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"endpoint {value!r} must start with '/', for example '/{value}'")
        if value.startswith("/lakefn/") or value.rstrip("/") in RESERVED_ENDPOINTS:
            raise ValueError(
                f"endpoint {value!r} is served by lakefn itself (its own routes, the API docs)"
            )
        if value.count("{") != value.count("}") or re.search(r"\{[^}/]*(\{|/|$)", value):
            raise ValueError(
                f"endpoint {value!r} has an unclosed path parameter, e.g. /items/{{id}}"
            )
        if re.search(r"\{(?![A-Za-z_][A-Za-z0-9_]*(:path)?\})", value):
            raise ValueError(
                f"endpoint {value!r}: path parameters are names, e.g. /items/{{item_id}}"
            )
        return value


class TimerTrigger(_Model):
    type: Literal["timer"]
    schedule: str
    timezone: str = "UTC"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        if len(value.split()) != 5:
            raise ValueError(
                f"schedule {value!r} is not a 5-field cron expression "
                "(minute hour day-of-month month day-of-week)"
            )
        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"bad cron schedule {value!r}: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as 'Europe/Paris'"
            ) from None
        return value


class TableTrigger(_Model):
    type: Literal["unity_table"]
    check_interval: float = Field(default=30.0, gt=0, le=86400)
    table_name: str | None = None
    operations: tuple[str, ...] | None = None
    start: Literal["latest", "earliest"] | int = "latest"

    @field_validator("operations")
    @classmethod
    def _upper(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("operations must list at least one operation, or be left out")
        return None if value is None else tuple(op.strip().upper() for op in value)

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, value: str | None) -> str | None:
        return _check_table_name(value)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        if isinstance(value, bool) or (
            not isinstance(value, int) and value not in ("latest", "earliest")
        ):
            raise ValueError(f"start must be latest, earliest or a version number, not {value!r}")
        if isinstance(value, int) and value < 0:
            raise ValueError("start version must be 0 or more")
        return value


def _check_table_name(value: str | None) -> str | None:
    if value is not None:
        TableName.parse(value)  # raises TableNameError, a ValueError
    return value


Trigger = Annotated[HttpTrigger | TimerTrigger | TableTrigger, Field(discriminator="type")]


class FunctionConfig(_Model):
    name: str
    trigger: Trigger
    table_name: str | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout: float | None = Field(default=None, gt=0)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _FUNCTION_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid function name: use letters, digits and underscores, "
                "not starting with a digit (it names functions/<name>_function.py)"
            )
        return value

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, value: str | None) -> str | None:
        return _check_table_name(value)

    @model_validator(mode="after")
    def _table(self) -> FunctionConfig:
        trigger_table = getattr(self.trigger, "table_name", None)
        if not isinstance(self.trigger, TableTrigger):
            if self.table_name is not None:
                raise ValueError("table_name is only for unity_table triggers")
            return self
        if self.table_name and trigger_table and self.table_name != trigger_table:
            raise ValueError("table_name is given twice with different values")
        name = self.table_name or trigger_table
        if not name:
            raise ValueError("a unity_table trigger needs table_name")
        return self

    @property
    def table(self) -> TableName | None:
        name = self.table_name or getattr(self.trigger, "table_name", None)
        return TableName.parse(name) if name else None

    @property
    def kind(self) -> str:
        return self.trigger.type


class TablesConfig(_Model):
    source: Literal["auto", "local", "warehouse", "spark", "recorded"] = "auto"
    local_root: str = ".lakefn/catalog"
    concurrency: int = Field(default=8, ge=1, le=256)


class HttpConfig(_Model):
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=0)


class JournalConfig(_Model):
    """How much invocation history the state store keeps (the newest `keep`, none older than
    `max_age_days`), and how many of an invocation's log lines go with it."""

    keep: int = Field(default=10_000, ge=0)
    max_age_days: float = Field(default=7.0, gt=0)
    log_lines: int = Field(default=20, ge=0, le=1000)


class AppConfig(_Model):
    command: list[str] | None = None
    env: tuple[EnvVar, ...] = ()
    tables: TablesConfig = TablesConfig()
    state: str = ".lakefn/state.db"
    journal: JournalConfig = JournalConfig()
    http: HttpConfig = HttpConfig()
    functions: tuple[FunctionConfig, ...] = ()

    def function(self, name: str) -> FunctionConfig | None:
        return next((f for f in self.functions if f.name == name), None)

    @field_validator("state")
    @classmethod
    def _state_form(cls, value: str) -> str:
        from ._exceptions import LakefnError
        from .checkpoints.selection import scheme_of

        try:
            scheme_of(value)
        except LakefnError as exc:
            raise ValueError(str(exc)) from None
        return value


def load_config(path: str | Path) -> AppConfig:
    """Read and validate app.yaml; raise ConfigError listing every problem found."""
    return read_config(Path(path))[0]


def read_config(path: Path) -> tuple[AppConfig, dict[Path_, int]]:
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(shown, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(shown, None, "", f"cannot read: {exc}")]) from None
    return parse_config_with_lines(text, shown)


def parse_config(text: str, file: str = "app.yaml") -> AppConfig:
    return parse_config_with_lines(text, file)[0]


def parse_config_with_lines(
    text: str, file: str = "app.yaml"
) -> tuple[AppConfig, dict[Path_, int]]:
    """As `parse_config`, also returning where each field stands (for later, deeper checks)."""
    try:
        data, lines = load_with_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(file, line, "", f"YAML syntax: {problem}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, 1, "", "app.yaml must be a mapping of settings")])
    issues = _cross_checks(data, file, lines)
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        issues = _issues_from(exc, file, lines, data) + issues
    if issues:
        raise ConfigError(sorted(issues, key=lambda i: i.line or 0))
    return config, lines


def _issues_from(
    exc: ValidationError, file: str, lines: dict[Path_, int], data: Any
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for error in exc.errors():
        loc = _yaml_path(tuple(error["loc"]), data)
        message = _message(error)
        if loc[-1:] == ("table_name",) or "Unity table name" in message:
            loc = _table_name_path(loc, data)
        issues.append(ConfigIssue(file, line_of(lines, loc), _dotted(loc), message))
    return _dedupe(issues)


def _yaml_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """Pydantic's loc minus the union tag segments it inserts ('http', 'timer', ...)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and part in ("http", "timer", "unity_table"):
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
        return (
            f"unknown trigger type {ctx.get('tag')!r}; "
            "expected one of 'http', 'timer', 'unity_table'"
        )
    if kind == "union_tag_not_found":
        return "trigger needs a `type`: one of 'http', 'timer', 'unity_table'"
    if kind in ("value_error", "assertion_error"):
        original = ctx.get("error")
        if isinstance(original, TableNameError):
            return str(original)
        return str(original) if original is not None else error["msg"]
    return str(error["msg"])


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


def _cross_checks(data: dict[str, Any], file: str, lines: dict[Path_, int]) -> list[ConfigIssue]:
    """Checks across functions, on the raw data so they run even when a field is wrong."""
    functions = data.get("functions")
    if not isinstance(functions, list):
        return []
    issues: list[ConfigIssue] = []
    names: dict[str, int] = {}
    routes: dict[tuple[str, str], str] = {}
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
        if not isinstance(trigger, dict) or trigger.get("type") != "http":
            continue
        endpoint, method = trigger.get("endpoint"), str(trigger.get("method", "POST")).upper()
        if not isinstance(endpoint, str):
            continue
        key = (method, _route_shape(endpoint))
        at: Path_ = ("functions", index, "trigger", "endpoint")
        if key in routes:
            message = f"{method} {endpoint} is already served by function {routes[key]!r}"
            issues.append(ConfigIssue(file, line_of(lines, at), _dotted(at), message))
        else:
            routes[key] = name
    return issues


def _route_shape(endpoint: str) -> str:
    # /items/{id} and /items/{item} are the same route to Starlette.
    return re.sub(r"\{[^}/]*\}", "{}", endpoint.rstrip("/") or "/")
