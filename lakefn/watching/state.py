"""What the watcher knows of one watched (function, table), and how often it looks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from .._tablename import TableName

#: most commits handed over in one call; a longer backlog arrives in several calls, in order
MAX_BATCH = 1000

#: longest wait between deliveries of a range its function keeps failing on
FAILURE_BACKOFF_CAP = 60.0


def next_check_in(interval: float, failures: int) -> float:
    """Seconds to the next check: the interval, doubled per consecutive failed delivery (up to
    a minute), so a function that keeps failing is retried, never skipped, and never flooded."""
    if not failures:
        return interval
    return min(max(interval, FAILURE_BACKOFF_CAP), interval * 2.0 ** min(failures, 20))


@dataclass
class WatchState:
    """What /lakefn/tables shows for one watched (function, table)."""

    function: str
    table: TableName
    check_interval: float
    last_processed: int | None = None
    latest_seen: int | None = None
    pending_since: datetime | None = None
    last_check: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    error_kind: str | None = None
    consecutive_failures: int = 0
    gaps: list[dict[str, int]] = field(default_factory=list)
    recreated: list[dict[str, Any]] = field(default_factory=list)
    #: the store's failure while it lasts (for /healthz), without the range it failed to record
    store_error: str | None = None
    #: wall-clock time until which this process surely holds the lease (0: not held)
    lease_until: float = 0.0
    #: the checkpoint as of the last load or save, valid only while the lease is held
    cached: int | None = None
    #: the identity of the table the checkpoint counts versions of (None: not known)
    table_id: str | None = None
    #: the checkpoint was (re)loaded: compare the table's identity on this check
    identity_due: bool = True
    #: checkpoint moves made from this process (the console), and how many there were when the
    #: running check began: a check that began before a move never saves over it
    moves: int = 0
    moves_at_check: int = 0

    @property
    def lease_ttl(self) -> float:
        # Long enough that a busy store or a slow check never loses it; short enough that a
        # restarted process after a crash takes over soon.
        return max(10.0, 3 * self.check_interval)

    @property
    def key(self) -> str:
        return f"{self.function}|{self.table}"

    def to_dict(self, source: str, now: datetime) -> dict[str, Any]:
        """The /lakefn/tables row, its lag measured at `now`."""
        lag_versions = (
            max(0, self.latest_seen - self.last_processed)
            if self.latest_seen is not None and self.last_processed is not None
            else None
        )
        # Never below 0: a commit stamped by a clock ahead of ours (a warehouse's, or a test's
        # clock set back) is owed, not owed from the future.
        lag_seconds = (
            max(0.0, round((now - self.pending_since).total_seconds(), 3))
            if self.pending_since is not None and lag_versions
            else 0.0
        )
        return {
            "function": self.function,
            "table": str(self.table),
            "source": source,
            "check_interval": self.check_interval,
            "last_processed_version": self.last_processed,
            "latest_version": self.latest_seen,
            "lag_versions": lag_versions,
            "lag_seconds": lag_seconds,
            "last_check": self.last_check.isoformat() if self.last_check else None,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "gaps": self.gaps,
            "recreated": self.recreated,
        }
