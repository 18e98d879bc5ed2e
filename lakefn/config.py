"""app.yaml as frozen, validated models.

Validation happens here, at the edge; the rest of lakefn trusts these objects. `read_config`
reports every problem of a file at once, each with file, line and field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from ._config_issues import (
    MAX_ISSUES,
    capped,
    config_warnings,
    cross_checks,
    issues_from,
    yaml_issue,
)
from ._defaults import FUNCTION_NAME, LOCAL_CATALOG
from ._exceptions import ConfigError, ConfigIssue
from ._model import MAX_VERSION, check_table_name
from ._model import ConfigModel as _Model
from ._plugins import load_for
from ._tablename import TableName
from ._yaml import MAX_FILE_BYTES, Path_, load_with_lines

# The trigger models live with their kinds; importable from here as before.
from .sources.selection import source_names
from .triggers import KINDS
from .triggers.http import HTTP_METHODS, LAKEFN_ROUTES, RESERVED_ENDPOINTS, HttpTrigger
from .triggers.timer import TimerTrigger
from .triggers.unity_table import TableTrigger

if TYPE_CHECKING:
    from .abc import TriggerKind

__all__ = [
    "MAX_ISSUES",
    "config_warnings",
    "HTTP_METHODS",
    "LAKEFN_ROUTES",
    "MAX_VERSION",
    "RESERVED_ENDPOINTS",
    "HttpTrigger",
    "TableTrigger",
    "TimerTrigger",
]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
#: a function's name becomes a file name (functions/<name>_function.py) and a job name
MAX_FUNCTION_NAME = 100
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: longest first wait between two attempts, in seconds
MAX_BACKOFF_SECONDS = 3600.0
#: retry waits double per attempt up to this many seconds (or backoff_seconds, if longer)
MAX_RETRY_WAIT = 300.0


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


def _trigger_union(kinds: Mapping[str, type[TriggerKind]]) -> Any:
    """`trigger:` in app.yaml: one of the kinds' models, picked by its `type`."""
    models = tuple(kind.config_model for kind in kinds.values())
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 - built at runtime


if TYPE_CHECKING:  # to type checkers, the built-in kinds (a registered one is another model)
    Trigger = HttpTrigger | TimerTrigger | TableTrigger
else:
    Trigger = _trigger_union(KINDS)


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
        return check_table_name(value)

    @model_validator(mode="after")
    def _table(self) -> FunctionConfig:
        trigger_table = getattr(self.trigger, "table_name", None)
        if not KINDS[self.kind].uses_table:
            if self.table_name is not None:
                raise ValueError(f"table_name is only for {_kinds_where('uses_table')} triggers")
            return self
        if self.table_name and trigger_table and self.table_name != trigger_table:
            raise ValueError("table_name is given twice with different values")
        name = self.table_name or trigger_table
        if not name:
            raise ValueError(f"a {self.kind} trigger needs table_name")
        return self

    @field_validator("run_on")
    @classmethod
    def _run_on(cls, value: str, info: ValidationInfo) -> str:
        kind = getattr(info.data.get("trigger"), "type", None)
        if value == "job" and kind in KINDS and not KINDS[kind].runs_as_job:
            article = "an" if kind[:1] in "aeiouh" else "a"
            because = KINDS[kind].not_a_job_because
            raise ValueError(
                f"{article} {kind} function cannot run_on: job"
                f"{f' ({because})' if because else ''}; "
                f"run_on: job is for {_kinds_where('runs_as_job')} functions"
            )
        return value

    @field_validator("job")
    @classmethod
    def _job(cls, value: JobSettings | None, info: ValidationInfo) -> JobSettings | None:
        if value is not None and info.data.get("run_on", "app") != "job":
            raise ValueError("`job:` settings apply only to a function with run_on: job")
        waits = value and (value.min_time_between_triggers or value.wait_after_last_change)
        kind = getattr(info.data.get("trigger"), "type", None)
        if waits and not (kind in KINDS and KINDS[kind].uses_table):
            raise ValueError(
                "min_time_between_triggers and wait_after_last_change are for "
                f"{_kinds_where('uses_table')} functions (a timer's job runs on its schedule)"
            )
        return value

    @property
    def table(self) -> TableName | None:
        name = self.table_name or getattr(self.trigger, "table_name", None)
        return TableName.parse(name) if name else None

    @property
    def kind(self) -> str:
        return self.trigger.type


def _kinds_where(flag: str) -> str:
    """The kinds with `flag` set, for messages: "timer and unity_table"."""
    names = [name for name, kind in KINDS.items() if getattr(kind, flag)]
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else "no"


def _source_names(names: tuple[str, ...]) -> Any:
    """`tables.source` in app.yaml: one of the table sources' names (or auto)."""
    return Literal[names]  # built at runtime from lakefn.sources.selection.SOURCES


if TYPE_CHECKING:  # to type checkers, any name (the sources are registered at runtime)
    SourceName = str
else:
    SourceName = _source_names(source_names())


class TablesConfig(_Model):
    source: SourceName = "auto"
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
    `max_age_days`), how many of an invocation's log lines go with it, and how many successful
    runs of one function per second it is given (`None`: every one; failures always are)."""

    keep: int = Field(default=10_000, ge=0)
    max_age_days: float = Field(default=7.0, gt=0)
    log_lines: int = Field(default=20, ge=0, le=1000)
    max_ok_per_second: float | None = Field(default=100.0, gt=0, allow_inf_nan=False)


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
        raise ConfigError([yaml_issue(exc, file, text)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(file, 1, "", "app.yaml must be a mapping of settings")])
    load_for(data)  # a kind or source an installed plug-in offers
    issues = cross_checks(data, file, lines)
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        issues = issues_from(exc, file, lines, data) + issues
    if issues:
        raise ConfigError(capped(sorted(issues, key=lambda i: i.line or 0)))
    return config, lines


def use_kinds(kinds: Mapping[str, type[TriggerKind]]) -> None:
    """Make app.yaml's `trigger:` accept exactly `kinds` (after `lakefn.triggers.register`)."""
    union = _trigger_union(kinds)
    FunctionConfig.model_fields["trigger"] = FieldInfo.from_annotation(union)
    FunctionConfig.model_rebuild(force=True)
    AppConfig.model_rebuild(force=True)


def use_sources(names: tuple[str, ...]) -> None:
    """Make app.yaml's `tables.source` accept exactly `names` (after `register_source`)."""
    TablesConfig.model_fields["source"] = FieldInfo.from_annotated_attribute(
        _source_names(names), "auto"
    )
    TablesConfig.model_rebuild(force=True)
    AppConfig.model_rebuild(force=True)
