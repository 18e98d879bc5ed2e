"""app.yaml as frozen, validated models.

Validation happens here, at the edge; the rest of lakefn trusts these objects. `read_config`
reports every problem of a file at once, each with file, line and field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import _operations
from ._defaults import FUNCTION_NAME, LOCAL_CATALOG
from ._exceptions import ConfigError, ConfigIssue, TableNameError
from ._tablename import TableName
from ._yaml import MAX_FILE_BYTES, Path_, YamlLimitError, line_of, load_with_lines

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
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
#: a function's name becomes a file name (functions/<name>_function.py) and a job name
MAX_FUNCTION_NAME = 100
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: longest first wait between two attempts, in seconds
MAX_BACKOFF_SECONDS = 3600.0
#: retry waits double per attempt up to this many seconds (or backoff_seconds, if longer)
MAX_RETRY_WAIT = 300.0
#: largest table version `start` may name (Delta versions are 64-bit)
MAX_VERSION = 2**63 - 1
#: problems listed for one file; past that, a count (a file of garbage is not 30,000 lines)
MAX_ISSUES = 50
#: routes lakefn serves itself, by method: a catch-all function route may shadow them
LAKEFN_ROUTES = (
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/lakefn/functions"),
    ("GET", "/lakefn/invocations"),
    ("GET", "/lakefn/tables"),
    ("POST", "/lakefn/functions/name/invoke"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
)


class _Model(BaseModel):
    # allow_inf_nan: `.inf` and `.nan` are YAML floats, and no setting of lakefn means either.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EnvVar(_Model):
    """One Databricks Apps environment entry: a literal `value` or a `valueFrom` resource."""

    name: str
    value: str | None = None
    value_from: str | None = Field(default=None, alias="valueFrom")

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # os.environ refuses "" and "=" (or keeps a name that can never be read back) and NUL.
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an environment variable name: use letters, digits and "
                "underscores, not starting with a digit"
            )
        return value

    @field_validator("value", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # YAML turns `value: 8000` into an int; the environment only holds strings.
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} is not a number an environment value can hold; quote it")
        return str(value) if isinstance(value, (int, float, bool)) else value

    @field_validator("value", "value_from")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("contains a NUL character, which no environment value can hold")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("give exactly one of `value` or `valueFrom`")
        return self


class RetryPolicy(_Model):
    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff_seconds: float = Field(default=1.0, ge=0, le=MAX_BACKOFF_SECONDS)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based): backoff_seconds, doubling
        per attempt, capped at MAX_RETRY_WAIT (or at backoff_seconds when that is longer)."""
        cap = max(MAX_RETRY_WAIT, self.backoff_seconds)
        exponent = min(max(attempt - 1, 0), 64)  # 2**64 times any backoff is past the cap
        return float(min(self.backoff_seconds * 2.0**exponent, cap))


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
        _reachable(value)
        return value


def _reachable(endpoint: str) -> None:
    # A request can never arrive at these paths: clients cut `?` and `#` off as query and
    # fragment, and collapse `.`/`..` segments; `//` is a URL's authority marker to many.
    bad = next((c for c in endpoint if ord(c) < 33 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"endpoint {endpoint!r} contains a space or control character")
    for part, why in (("?", "starts the query string"), ("#", "starts a fragment")):
        if part in endpoint:
            raise ValueError(f"endpoint {endpoint!r}: {part!r} {why}, so no request reaches it")
    if "//" in endpoint:
        raise ValueError(f"endpoint {endpoint!r} has an empty segment ('//')")
    if any(segment in (".", "..") for segment in endpoint.split("/")):
        raise ValueError(
            f"endpoint {endpoint!r} has a '.' or '..' segment, which clients resolve away"
        )


class TimerTrigger(_Model):
    type: Literal["timer"]
    schedule: str
    timezone: str = "UTC"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from ._cron import CronError, CronSchedule

        try:
            CronSchedule.parse(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
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
    def _known(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("operations must list at least one operation, or be left out")
        return None if value is None else tuple(_operations.check(op) for op in value)

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
        if isinstance(value, int) and not 0 <= value <= MAX_VERSION:
            raise ValueError(f"start version must be between 0 and {MAX_VERSION}")
        return value


def _check_table_name(value: str | None) -> str | None:
    if value is not None:
        TableName.parse(value).check_unity()  # raises TableNameError, a ValueError
    return value


Trigger = Annotated[HttpTrigger | TimerTrigger | TableTrigger, Field(discriminator="type")]


class JobSettings(_Model):
    """`job:` on a `run_on: job` function: the Databricks Jobs settings lakefn maps (see
    `lakefn bundle`). Jobs refuses table-update waits under a minute, so this does too."""

    min_time_between_triggers: int | None = None
    wait_after_last_change: int | None = None
    max_retries: int = Field(default=0, ge=0, le=100)
    paused: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    email_on_failure: tuple[str, ...] = ()

    @field_validator("min_time_between_triggers", "wait_after_last_change")
    @classmethod
    def _a_minute(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value < 60:
            raise ValueError(
                f"{info.field_name} is {value} s; Databricks Jobs needs at least 60 seconds"
            )
        return value


class FunctionConfig(_Model):
    name: str
    trigger: Trigger
    table_name: str | None = None
    retry: RetryPolicy = RetryPolicy()
    timeout: float | None = Field(default=None, gt=0)
    #: calls of this function running at once; more wait in a bounded queue, then get 503.
    #: Unset: half of the thread pool for a sync function, unbounded for an async one.
    max_concurrency: int | None = Field(default=None, ge=1, le=10_000, strict=True)
    description: str | None = None
    run_on: Literal["app", "job"] = "app"
    job: JobSettings | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not FUNCTION_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid function name: use letters, digits and underscores, "
                "not starting with a digit (it names functions/<name>_function.py)"
            )
        if len(value) > MAX_FUNCTION_NAME:
            raise ValueError(
                f"function name is {len(value)} characters long; the limit is "
                f"{MAX_FUNCTION_NAME} (it names functions/<name>_function.py)"
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

    @field_validator("run_on")
    @classmethod
    def _run_on(cls, value: str, info: ValidationInfo) -> str:
        if value == "job" and isinstance(info.data.get("trigger"), HttpTrigger):
            raise ValueError(
                "an http function cannot run_on: job (a job has no endpoint to call); "
                "run_on: job is for timer and unity_table functions"
            )
        return value

    @field_validator("job")
    @classmethod
    def _job(cls, value: JobSettings | None, info: ValidationInfo) -> JobSettings | None:
        if value is not None and info.data.get("run_on", "app") != "job":
            raise ValueError("`job:` settings apply only to a function with run_on: job")
        waits = value and (value.min_time_between_triggers or value.wait_after_last_change)
        if waits and not isinstance(info.data.get("trigger"), TableTrigger):
            raise ValueError(
                "min_time_between_triggers and wait_after_last_change are for unity_table "
                "functions (a timer's job runs on its schedule)"
            )
        return value

    @property
    def table(self) -> TableName | None:
        name = self.table_name or getattr(self.trigger, "table_name", None)
        return TableName.parse(name) if name else None

    @property
    def kind(self) -> str:
        return self.trigger.type


class TablesConfig(_Model):
    source: Literal["auto", "local", "warehouse", "spark", "recorded"] = "auto"
    local_root: str = LOCAL_CATALOG
    concurrency: int = Field(default=8, ge=1, le=256)
    # warehouse source: fetch large results from cloud storage (CloudFetch); off because
    # history rows are small and a Databricks App may not reach the storage hosts
    use_cloud_fetch: bool = False


class HttpConfig(_Model):
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=0)


class AccessConfig(_Model):
    """Who may use the console, /lakefn/* and actions when running as a Databricks App (the
    platform's proxy authenticates every user and names them in X-Forwarded-Email)."""

    admins: tuple[str, ...] = ()
    viewers: Literal["admins", "all"] = "admins"

    @field_validator("admins")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for email in value:
            if "@" not in email or email != email.strip():
                raise ValueError(f"{email!r} is not an email address")
        return tuple(email.lower() for email in value)


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
    access: AccessConfig = AccessConfig()
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


def read_config(path: Path) -> tuple[AppConfig, dict[Path_, int]]:
    shown = str(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)  # never more: the file may be huge
        if len(raw) > MAX_FILE_BYTES:
            message = f"larger than {MAX_FILE_BYTES:,} bytes; lakefn reads app.yaml up to that"
            raise ConfigError([ConfigIssue(shown, 1, "", message)])
        text = raw.decode("utf-8")
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
        raise ConfigError([_yaml_issue(exc, file, text)]) from None
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
        raise ConfigError(_capped(sorted(issues, key=lambda i: i.line or 0)))
    return config, lines


def _yaml_issue(exc: yaml.YAMLError, file: str, text: str) -> ConfigIssue:
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


def _capped(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    if len(issues) <= MAX_ISSUES:
        return issues
    rest = issues[MAX_ISSUES]
    more = (
        f"... and {len(issues) - MAX_ISSUES} more problems from here on; fix the ones above first"
    )
    return [*issues[:MAX_ISSUES], ConfigIssue(rest.file, rest.line, "", more)]


def _issues_from(
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
    if kind == "finite_number":
        return "must be a finite number (not .inf or .nan)"
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


def config_warnings(config: AppConfig, lines: dict[Path_, int], file: str) -> list[ConfigIssue]:
    """What is valid but likely not what was meant: function routes that also match lakefn's
    own routes (lakefn's own answer those paths, so the function never sees them)."""
    warnings = []
    for index, fn in enumerate(config.functions):
        trigger = fn.trigger
        if not isinstance(trigger, HttpTrigger):
            continue
        pattern = _route_regex(trigger.endpoint)
        shadowed = [
            path
            for method, path in LAKEFN_ROUTES
            if method == trigger.method and pattern.fullmatch(path)
        ]
        if shadowed:
            at: Path_ = ("functions", index, "trigger", "endpoint")
            paths = ", ".join(p.replace("/name/", "/{name}/") for p in shadowed)
            message = (
                f"{trigger.method} {trigger.endpoint} also matches lakefn's own {paths}; "
                "lakefn answers those itself, so this function is not called for them"
            )
            warnings.append(ConfigIssue(file, line_of(lines, at), _dotted(at), message))
    return warnings


def _route_regex(endpoint: str) -> re.Pattern[str]:
    # As Starlette compiles paths: {x} is one segment, {x:path} any rest, trailing / optional.
    out, last = "", 0
    for match in re.finditer(r"\{[A-Za-z_][A-Za-z0-9_]*(:path)?\}", endpoint):
        out += re.escape(endpoint[last : match.start()])
        out += ".*" if match.group(1) else "[^/]+"
        last = match.end()
    out += re.escape(endpoint[last:])
    return re.compile(out.rstrip("/") + "/?" if out != "/" else "/")
