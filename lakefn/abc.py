"""The interfaces behind which lakefn's pluggable parts live.

A `Runtime` is handed one instance of each (with in-process defaults), so tests swap them
without patching:

- `TableSource`: where unity_table triggers read a table's history and changes
  (`lakefn.sources.local`, `.warehouse`, `.spark`, `.recorded`).
- `CheckpointStore`: where the last processed version per (function, table) is kept
  (`lakefn.checkpoints.sqlite`, `.memory`).
- `Clock`: what time it is, for timers; `lakefn.testing.FakeClock` is one tests can advance.

Sources are synchronous (their clients are blocking); the watcher calls them from worker
threads, so an implementation must be safe to call from several threads at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow

    from ._tablename import TableName
    from .events import Commit


class TableSource(ABC):
    """Reads Delta history for Unity tables."""

    #: short name shown in /lakefn/tables and messages: "local", "warehouse", "spark", "recorded"
    name: str = "source"

    @abstractmethod
    def latest_version(self, table: TableName) -> int:
        """The table's current version. Raises TableNotFound or SourceUnavailable."""

    @abstractmethod
    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        """Commits with version > `after`, ascending, at most `limit` of them (oldest first).

        `after = -1` asks for the whole history still available. When versions right after
        `after` are gone from the history (log retention), the list simply starts later:
        the caller detects the gap.
        """

    @abstractmethod
    def changes(self, table: TableName, start: int, end: int) -> pyarrow.Table:
        """Change-data-feed rows for versions start..end inclusive, with `_change_type`,
        `_commit_version` and `_commit_timestamp`. Raises ChangeDataFeedUnavailable."""

    def table_id(self, table: TableName) -> str | None:
        """The table's identity, which a drop and create gives anew (the Delta metadata id).

        None means the source cannot tell; the watcher then notices a recreated table only when
        its versions go back. Called when there is news, never on an idle check, so it may cost
        a read.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional: most sources hold nothing to release
        """Release connections and handles. Called once when the runtime stops."""


class CheckpointStore(ABC):
    """Durable last-processed versions, keyed by (function, table).

    `save` is a compare-and-set: it moves a checkpoint only from the value the caller read,
    so two processes sharing a store can never both record the same delivery. A lease
    (`acquire`) lets one process at a time deliver a key's versions.
    """

    @abstractmethod
    def load(self, key: str) -> int | None:
        """The last processed version, or None if this key has never been processed."""

    @abstractmethod
    def save(self, key: str, version: int, *, expected: int | None) -> None:
        """Set the key to `version` if it currently holds `expected`, else CheckpointConflict."""

    @abstractmethod
    def load_table_id(self, key: str) -> str | None:
        """The identity of the table (`TableSource.table_id`) whose versions the key's
        checkpoint counts, or None if none was saved."""

    @abstractmethod
    def save_table_id(self, key: str, table_id: str) -> None:
        """Record the identity of the table the key's checkpoint counts versions of (an upsert,
        durable like `save`: a recreated table is detected across restarts)."""

    @abstractmethod
    def acquire(
        self, key: str, owner: str, ttl: float, *, take_over: Callable[[str], bool] | None = None
    ) -> bool:
        """Take or renew the lease on `key` for `ttl` seconds; False if another owner holds it,
        unless `take_over(that_owner)` says its holder is gone (a crashed process)."""

    @abstractmethod
    def release(self, key: str, owner: str) -> None:
        """Give up the lease if `owner` holds it."""

    def items(self) -> dict[str, int]:
        """Every key and its version (for status pages)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional: the memory store holds nothing
        """Release the store's resources."""


class Clock(ABC):
    """The time, as timers see it."""

    @abstractmethod
    def now(self) -> datetime:
        """The current time, timezone-aware."""


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(timezone.utc)
