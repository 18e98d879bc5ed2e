"""Reading new commits through `DESCRIBE HISTORY t LIMIT n`, the only way Databricks offers.

DESCRIBE HISTORY returns the newest commits first and takes no offset; `LIMIT n` makes Delta
read only the last n commit files (DeltaHistoryManager). So the commits after a checkpoint are
the newest `latest - after` rows, and three things follow:

- Commits landing between knowing `latest` and reading push the oldest wanted rows out of the
  window. A window that does not reach back to `after + 1` is read again, wider; it is never
  taken for a history gap. A gap is reported only when the history holds fewer rows than were
  asked for: the versions really are gone (log retention).
- A backlog read for one batch holds the next batches too. The oldest `keep` rows of a read are
  kept per table and later batches are served from them, so draining a backlog costs about its
  length in rows instead of its square.
- The row `latest_version` read (LIMIT 1) is the newest commit: a check that finds one new
  commit needs no second query, and a bigger one uses it to size the window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._exceptions import SourceUnavailable
from .._tablename import TableName
from ..events import Commit
from ._rows import commit_from_row

#: DESCRIBE HISTORY rows, newest first, as a source's driver hands them over
Describe = Callable[[TableName, int], Sequence[Mapping[str, Any]]]


@dataclass
class _Newest:
    commit: Commit
    read_at: float


class HistoryWindow:
    """`latest_version` and `commits_since` for one source, over its `describe(table, n)`.

    `keep` bounds the commits kept per table between calls; `attempts` bounds the reads of one
    call while commits keep landing; the newest commit read by `latest_version` stands in for a
    second LIMIT 1 for `fresh_for` seconds (measured with `clock`).
    """

    def __init__(
        self,
        source: str,
        describe: Describe,
        *,
        keep: int = 10_000,
        attempts: int = 6,
        fresh_for: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._describe = describe
        self.keep = max(1, keep)
        self.attempts = attempts
        self.fresh_for = fresh_for
        self.clock = clock
        self._lock = threading.Lock()
        self._newest: dict[TableName, _Newest] = {}
        self._kept: dict[TableName, list[Commit]] = {}  # ascending, contiguous versions

    def newest(self, table: TableName) -> Commit | None:
        """The table's newest commit (one LIMIT 1 query); None if it has no history."""
        rows = self._describe(table, 1)
        if not rows:
            return None
        commit = commit_from_row(rows[0])
        with self._lock:
            self._newest[table] = _Newest(commit, self.clock())
            kept = self._kept.get(table)
            if kept and not _consistent(kept, commit):
                # Versions went back, or a kept version now reads differently: the table was
                # dropped and created again. Nothing kept describes it any more.
                del self._kept[table]
        return commit

    def commits_since(self, table: TableName, after: int, limit: int | None) -> list[Commit]:
        with self._lock:
            served = self._serve(table, after, limit)
            hint = self._newest.pop(table, None)
        if served is not None:
            return served
        if hint is not None and self.clock() - hint.read_at <= self.fresh_for:
            newest = hint.commit
        else:
            found = self.newest(table)
            with self._lock:
                self._newest.pop(table, None)
            if found is None:
                return []
            newest = found
        if newest.version <= after:
            return []
        if newest.version == after + 1:
            return [newest]
        rows = self._read_back_to(table, after, newest.version)
        # Only the rows handed over or kept are parsed; the oldest are served next, newer
        # ones are read again when their turn comes.
        wanted = len(rows) if limit is None else max(limit, self.keep)
        window = [commit_from_row(row) for row in rows[:wanted]]
        with self._lock:
            self._kept[table] = window[: self.keep]
        return window if limit is None else window[:limit]

    def forget(self) -> None:
        with self._lock:
            self._newest.clear()
            self._kept.clear()

    def _serve(self, table: TableName, after: int, limit: int | None) -> list[Commit] | None:
        kept = self._kept.get(table)
        if not kept:
            return None
        if after >= kept[-1].version:
            del self._kept[table]  # all handed over: nothing worth its memory is left
            return None
        if after + 1 < kept[0].version:
            return None
        # Versions up to `after` were handed over: checkpoints only move forward.
        kept = self._kept[table] = kept[after + 1 - kept[0].version :]
        if limit is not None:
            return kept[:limit]
        # Everything is wanted: only the newest commit just read can say nothing came after.
        hint = self._newest.get(table)
        if hint is None or hint.commit.version > kept[-1].version:
            return None
        return list(kept)

    def _read_back_to(self, table: TableName, after: int, latest: int) -> list[Mapping[str, Any]]:
        """Every history row after `after`, ascending, reading newest-first windows until one
        reaches back to `after + 1` or to the oldest commit the history still holds."""
        # A big window takes a while to read, and a miss means reading all of it again: ask
        # for 1% more rows than known versions, room for the commits landing meanwhile.
        count = latest - after + (latest - after) // 100
        for attempt in range(self.attempts):
            rows = self._describe(table, count)
            if not rows:
                return []
            newest, oldest = int(rows[0]["version"]), int(rows[-1]["version"])
            if len(rows) < count or oldest <= after + 1:
                return [row for row in reversed(rows) if int(row["version"]) > after]
            # `newest - latest` commits landed while reading: ask for that many more again,
            # doubling each time, so a table committing steadily is still caught up with.
            landed = max(newest - latest, 1)
            latest = newest
            count = newest - after + landed * 2**attempt
        raise SourceUnavailable(
            self.source,
            f"{table} gets new commits faster than its history can be read back to version "
            f"{after + 1} ({self.attempts} reads); trying again on the next check",
        )


def _consistent(kept: list[Commit], newest: Commit) -> bool:
    if newest.version < kept[-1].version:
        return False
    if newest.version > kept[-1].version:
        return True
    same = kept[newest.version - kept[0].version]
    return same.timestamp == newest.timestamp and same.operation == newest.operation
