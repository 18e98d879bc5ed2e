"""History kept in memory: recorded from Databricks (a DESCRIBE HISTORY export) or simulated.

`lakefn simulate` and the pytest fixture append commits here to run a unity_table function as
if its table had changed; a history exported from the Databricks UI (CSV) or as JSON replays
what really happened to a table, without a workspace.
"""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import ChangeDataFeedUnavailable, TableNotFound
from .._tablename import TableName
from ..abc import TableSource
from ..events import Commit
from ._rows import HISTORY_COLUMNS, commit_from_row, normalize_changes

if TYPE_CHECKING:
    import pyarrow as pa

    from ..project import Project


class _History:
    """One table's commits (ascending) and the change rows recorded with some of them."""

    def __init__(self, version: int | None = None) -> None:
        self.commits: list[Commit] = []
        self.rows: dict[int, list[dict[str, Any]]] = {}
        self.created_version = version

    @property
    def latest(self) -> int | None:
        return self.commits[-1].version if self.commits else self.created_version

    @property
    def table_id(self) -> str | None:
        """The table's identity, from its version-0 commit (a table created again has a new
        one); None when that commit is not in the recorded history."""
        if not self.commits or self.commits[0].version != 0:
            return None
        first = self.commits[0]
        return f"recorded:{first.timestamp.isoformat()}:{first.operation}"

    def add(self, commit: Commit) -> None:
        latest = self.latest
        if latest is not None and commit.version <= latest:
            raise ValueError(f"version {commit.version} is not after the latest, {latest}")
        self.commits.append(commit)


def _as_commit(entry: Commit | Mapping[str, Any]) -> Commit:
    return entry if isinstance(entry, Commit) else commit_from_row(entry)


class RecordedSource(TableSource):
    """DESCRIBE HISTORY rows per table name, in memory. Safe to use from several threads."""

    name = "recorded"

    def __init__(self, history: Mapping[str, Iterable[Commit | Mapping[str, Any]]] | None = None):
        self._tables: dict[TableName, _History] = {}
        self._lock = threading.Lock()
        for name, entries in (history or {}).items():
            self.load_rows(name, entries)

    @classmethod
    def from_project(cls, project: Project) -> RecordedSource:
        """`tables.source: recorded`: no table yet; tests and the harness record commits."""
        return cls()

    @classmethod
    def from_file(cls, path: str | Path, *, table: str | TableName) -> RecordedSource:
        """A source holding one table whose history is the export at `path` (CSV or JSON)."""
        source = cls()
        source.load(table, path)
        return source

    def load(self, table: str | TableName, path: str | Path) -> list[Commit]:
        """Replace `table`'s history with a DESCRIBE HISTORY export; returns its commits."""
        return self.load_rows(table, read_history_file(path))

    def load_rows(
        self, table: str | TableName, entries: Iterable[Commit | Mapping[str, Any]]
    ) -> list[Commit]:
        """Replace `table`'s history with these rows, given in any order."""
        history = _History()
        for commit in sorted((_as_commit(entry) for entry in entries), key=lambda c: c.version):
            history.add(commit)
        with self._lock:
            self._tables[TableName.parse(table)] = history
        return list(history.commits)

    def create_table(self, table: str | TableName, version: int = 0) -> None:
        """Make `table` exist at `version` with no history kept (as if its log had been cleaned
        up); the next appended commit is `version + 1`. An existing table is left alone."""
        with self._lock:
            self._tables.setdefault(TableName.parse(table), _History(version))

    def append_commit(
        self,
        table: str | TableName,
        operation: str = "WRITE",
        *,
        rows: Sequence[Mapping[str, Any]] | None = None,
        parameters: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
        version: int | None = None,
        user_name: str | None = None,
        marks: Mapping[str, Any] | None = None,
    ) -> Commit:
        """Record a new commit (the table is created if needed) and, with `rows`, its changes.

        A row may carry its own `_change_type` ("delete", "update_postimage", ...); the
        default is "insert".
        `marks` are added to the raw history row (`Commit.raw`).
        """
        name = TableName.parse(table)
        with self._lock:
            history = self._tables.setdefault(name, _History())
            latest = history.latest
            number = version if version is not None else (-1 if latest is None else latest) + 1
            if metrics is None and rows is not None:
                metrics = {"numOutputRows": str(len(rows))}
            row = _history_row(number, operation, parameters, metrics, timestamp, user_name)
            row.update(marks or {})
            commit = commit_from_row(row)
            history.add(commit)
            if rows is not None:
                history.rows[number] = [dict(r) for r in rows]
        return commit

    def tables(self) -> list[TableName]:
        with self._lock:
            return sorted(self._tables)

    def has(self, table: str | TableName) -> bool:
        """Whether `table` has a recorded history here."""
        with self._lock:
            return TableName.parse(table) in self._tables

    def latest_version(self, table: TableName) -> int:
        with self._lock:
            latest = self._history(table).latest
        if latest is None:
            raise TableNotFound(str(table), "the recorded history (it has no versions)")
        return latest

    def table_id(self, table: TableName) -> str | None:
        with self._lock:
            return self._history(table).table_id

    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        with self._lock:
            found = [c for c in self._history(table).commits if c.version > after]
        return found if limit is None else found[:limit]

    def changes(self, table: TableName, start: int, end: int) -> pa.Table:
        """The rows appended with versions start..end.

        Versions recorded without rows (a loaded export, a simulated OPTIMIZE) add nothing; if
        none in the range has rows, there is no change feed to read.
        """
        with self._lock:
            history = self._history(table)
            recorded = [c for c in history.commits if start <= c.version <= end]
            with_rows = [c for c in recorded if c.version in history.rows]
            if not with_rows:
                raise ChangeDataFeedUnavailable(
                    str(table), f"no rows were recorded for versions {start}..{end}"
                )
            rows = [_change_row(row, c) for c in with_rows for row in history.rows[c.version]]
        import pyarrow as pa  # here: a simulation that never reads its rows does without it

        if not rows:  # commits recorded with an empty list of rows: they changed nothing
            return _no_changes()
        return normalize_changes(pa.Table.from_pylist(rows))

    def _history(self, table: TableName) -> _History:
        history = self._tables.get(TableName.parse(table))
        if history is None:
            raise TableNotFound(str(table), "the recorded history")
        return history


class RecordedOverlay(TableSource):
    """`base`'s tables, except those with a history in `recorded`, which are read from there.

    How a test layers recorded histories over its local catalog, and how a simulation lays
    one made-up commit over a real table without touching it.
    """

    def __init__(self, base: TableSource, recorded: RecordedSource | None = None) -> None:
        self.base = base
        self.recorded = recorded if recorded is not None else RecordedSource()
        self.name = base.name

    def _for(self, table: TableName) -> TableSource:
        return self.recorded if self.recorded.has(table) else self.base

    def latest_version(self, table: TableName) -> int:
        return self._for(table).latest_version(table)

    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        return self._for(table).commits_since(table, after, limit)

    def changes(self, table: TableName, start: int, end: int) -> pa.Table:
        return self._for(table).changes(table, start, end)

    def table_id(self, table: TableName) -> str | None:
        return self._for(table).table_id(table)

    def close(self) -> None:
        self.base.close()
        self.recorded.close()


def _no_changes() -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "_change_type": pa.array([], pa.string()),
            "_commit_version": pa.array([], pa.int64()),
            "_commit_timestamp": pa.array([], pa.timestamp("us", tz="UTC")),
        }
    )


def _change_row(row: Mapping[str, Any], commit: Commit) -> dict[str, Any]:
    meta = {"_commit_version": commit.version, "_commit_timestamp": commit.timestamp}
    return {"_change_type": "insert", **row, **meta}


def _history_row(
    version: int,
    operation: str,
    parameters: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    timestamp: datetime | None,
    user_name: str | None,
) -> dict[str, Any]:
    """A DESCRIBE HISTORY row as Databricks shapes it (map values are strings there)."""

    def as_text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    return {
        "version": version,
        "timestamp": timestamp or datetime.now(timezone.utc),
        "userId": None,
        "userName": user_name,
        "operation": operation,
        "operationParameters": {k: as_text(v) for k, v in (parameters or {}).items()},
        "job": None,
        "notebook": None,
        "clusterId": None,
        "readVersion": version - 1 if version > 0 else None,
        "isolationLevel": "Serializable",
        "isBlindAppend": operation == "WRITE",
        "operationMetrics": {k: as_text(v) for k, v in (metrics or {}).items()},
        "userMetadata": None,
        "engineInfo": "lakefn-simulated",
    }


def read_history_file(path: str | Path) -> list[dict[str, Any]]:
    """DESCRIBE HISTORY rows from an export: CSV (Databricks UI download) or JSON.

    JSON may be a list of rows, one row per line (Spark's `df.write.json`), or an object with
    the rows under "rows" or "history".
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8-sig")
    if file.suffix.lower() == ".csv":
        return [_csv_row(row) for row in csv.DictReader(text.splitlines())]
    stripped = text.strip()
    if stripped.startswith("[") or (stripped.startswith("{") and "\n{" not in stripped):
        data = json.loads(stripped)
        if isinstance(data, dict):
            data = data.get("rows", data.get("history", [data]))
        return [dict(row) for row in data]
    return [json.loads(line) for line in stripped.splitlines() if line.strip()]


def _csv_row(row: Mapping[str, str | None]) -> dict[str, Any]:
    """A CSV row keeps its text; empty cells and the literal "null" are missing values."""
    out: dict[str, Any] = {}
    for column in HISTORY_COLUMNS:
        cell = row.get(column)
        out[column] = None if cell is None or cell.strip() in ("", "null") else cell
    for extra, cell in row.items():
        out.setdefault(extra, cell)
    return out
