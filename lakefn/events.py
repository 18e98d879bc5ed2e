"""The events handed to functions, one class per trigger kind, and `Commit`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._exceptions import HttpError

if TYPE_CHECKING:
    import pyarrow


@dataclass(frozen=True)
class Commit:
    """One row of DESCRIBE HISTORY, whatever source it came from."""

    version: int
    timestamp: datetime
    operation: str
    operation_parameters: dict[str, Any] = field(default_factory=dict)
    operation_metrics: dict[str, Any] = field(default_factory=dict)
    user_name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "timestamp": self.timestamp.isoformat(),
            "operation": self.operation,
            "operation_parameters": self.operation_parameters,
            "operation_metrics": self.operation_metrics,
            "user_name": self.user_name,
        }


@dataclass(frozen=True)
class SimulatedCommit:
    """A commit a unity_table function is handed by hand (`lakefn simulate`, `%lakefn simulate`,
    the fixture's `simulate_table_change`, a manual invoke): `operation` with `rows` as its
    changes, at `version` (default: the one after the table's latest); or, with `replay_from`,
    the table's real history from that version on, and nothing made up.

    Built by `lakefn._json_input.check_simulated_commit` from what a user typed or posted.
    """

    operation: str = "WRITE"
    rows: list[dict[str, Any]] | None = None
    version: int | None = None
    replay_from: int | None = None


@dataclass
class Event:
    """What every event carries."""

    function_name: str
    invocation_id: str = ""
    attempt: int = 1
    simulated: bool = False
    _log: logging.LoggerAdapter[logging.Logger] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    trigger = "manual"

    def bind(self, function_name: str, invocation_id: str, attempt: int) -> None:
        """Make this event one attempt of one invocation. A retry reuses the event object, so
        its logger is dropped too: the next `log` carries the new attempt's id."""
        self.function_name = function_name
        self.invocation_id = invocation_id
        self.attempt = attempt
        self._log = None

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry this invocation's id (made on first use: most
        invocations never log, and the HTTP path is measured per microsecond)."""
        if self._log is None:
            self._log = InvocationLogger(
                logging.getLogger(f"lakefn.functions.{self.function_name}"),
                {"invocation_id": self.invocation_id, "function": self.function_name},
            )
        return self._log


class InvocationLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """`event.log`: every record carries the invocation id, in the message and as an attribute."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"[{extra.get('invocation_id')}] {msg}", kwargs


@dataclass
class HttpEvent(Event):
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    user: str | None = None

    trigger = "http"

    def json(self) -> Any:
        """The body parsed as JSON; an empty body is `{}`. Not JSON: the caller gets a 400."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise HttpError(400, "request body is not valid JSON: nested too deeply") from None

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class TimerEvent(Event):
    scheduled_time: datetime | None = None
    past_due: bool = False

    trigger = "timer"


@dataclass
class TableChangeEvent(Event):
    table_name: str = ""
    commits: list[Commit] = field(default_factory=list)
    previous_version: int | None = None
    changes_loader: Callable[[], pyarrow.Table] | None = field(default=None, repr=False)
    #: makes `changes_df()`'s DataFrame; set by the watcher when its source is Spark
    frame_loader: Callable[[], Any] | None = field(default=None, repr=False)

    trigger = "unity_table"

    @property
    def first_version(self) -> int | None:
        return self.commits[0].version if self.commits else None

    @property
    def last_version(self) -> int | None:
        return self.commits[-1].version if self.commits else None

    def changes(self) -> pyarrow.Table:
        """The change-data-feed rows of this event's versions, read on demand and cached."""
        cached = getattr(self, "_changes", None)
        if cached is not None:
            return cached
        if self.changes_loader is None:
            from ._exceptions import ChangeDataFeedUnavailable

            raise ChangeDataFeedUnavailable(self.table_name, "no source to read changes from")
        result = self.changes_loader()
        object.__setattr__(self, "_changes", result)
        return result

    def changes_df(self) -> Any:
        """The change-data-feed rows of exactly this event's versions as a Spark DataFrame.

        Lazy: nothing is read until an action runs, and then on the cluster, never pulled into
        the driver, so it suits a MERGE of millions of rows in a Databricks Job. Needs a Spark
        table source (a Databricks notebook or job, or Databricks Connect); `changes()` is the
        pyarrow table everywhere else."""
        if self.frame_loader is None:
            from ._exceptions import ChangeDataFeedUnavailable

            raise ChangeDataFeedUnavailable(
                self.table_name,
                "changes_df() needs a Spark table source (a Databricks notebook or job, or "
                "Databricks Connect); use changes() for a pyarrow table",
            )
        return self.frame_loader()
