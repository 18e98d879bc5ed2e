"""Local Delta tables on disk, read with `deltalake`: `<root>/<catalog>/<schema>/<table>`.

Seeing a new version costs two `stat` calls whatever the table's history length: the Delta log
names every commit `_delta_log/<version, 20 digits>.json` and versions are contiguous, so the
next commit exists exactly when the next file does. History is read from those commit files
directly, only the ones asked for; a `DeltaTable` handle is kept per table for the change
data feed and brought up to date incrementally.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError

from .._exceptions import (
    BadTableRows,
    ChangeDataFeedUnavailable,
    TableExists,
    TableNameError,
    TableNotFound,
    TableWriteFailed,
)
from .._tablename import TableName
from ..abc import TableSource
from ..events import Commit
from ._rows import commit_from_row, normalize_changes

if TYPE_CHECKING:
    from ..project import Project

_LOG = "_delta_log"


def path_for(root: str | Path, name: str | TableName) -> Path:
    """Where a table lives under `root`; refuses names that would leave it."""
    table = TableName.parse(name)
    for part in table.parts:
        # A quoted part may hold any character; as a folder name it must not climb out.
        if part in (".", "..") or any(c in part for c in "/\\\0") or part != part.strip():
            raise TableNameError(str(table), f"part {part!r} cannot be a folder name")
    return Path(root).joinpath(*table.parts)


def _commit_file(log: Path, version: int) -> Path:
    return log / f"{version:020d}.json"


def _log_versions(log: Path) -> list[int]:
    """Every commit still in the log, by listing it: used only at discovery and at gaps."""
    versions = []
    for entry in os.scandir(log):
        stem, dot, ext = entry.name.partition(".")
        if ext == "json" and stem.isdigit() and len(stem) == 20:
            versions.append(int(stem))
    return sorted(versions)


def _last_checkpoint(log: Path) -> int | None:
    try:
        return int(json.loads((log / "_last_checkpoint").read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _gallop(log: Path, known: int) -> int:
    """The newest version, given that `known` exists: double the step, then bisect."""
    step = 1
    while _commit_file(log, known + step).exists():
        known, step = known + step, step * 2
    low, high = known, known + step  # low exists, high does not
    while high - low > 1:
        middle = (low + high) // 2
        if _commit_file(log, middle).exists():
            low = middle
        else:
            high = middle
    return low


def _read_commit_info(path: Path) -> dict[str, Any] | None:
    """The `commitInfo` action of one commit file; None if the file is gone."""
    try:
        with path.open("rb") as handle:
            for line in handle:
                # commitInfo comes first in files written by Spark and delta-rs, so this
                # normally parses a single short line.
                if line.lstrip().startswith(b'{"commitInfo"'):
                    info = json.loads(line)["commitInfo"]
                    return info if isinstance(info, dict) else {}
            return {}
    except FileNotFoundError:
        return None


def _metadata_id(path: Path) -> str | None:
    """The table id in the `metaData` action of one commit file; None if the file is gone or
    holds none. Version 0 always has one (the table's creation), near its top."""
    try:
        with path.open("rb") as handle:
            for line in handle:
                if line.lstrip().startswith(b'{"metaData"'):
                    found = json.loads(line)["metaData"].get("id")
                    return str(found) if found else None
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return None


def history_row(version: int, info: dict[str, Any], mtime: float) -> dict[str, Any]:
    """A Delta `commitInfo` as the DESCRIBE HISTORY row Databricks would show for it."""
    # inCommitTimestamp is the commit time when the table has that feature; Databricks
    # shows it. Without commitInfo at all, the file's modification time is the best guess.
    millis = info.get("inCommitTimestamp", info.get("timestamp"))
    when = millis / 1000 if isinstance(millis, (int, float)) else mtime
    return {
        "version": version,
        "timestamp": datetime.fromtimestamp(when, tz=timezone.utc),
        "userId": info.get("userId"),
        "userName": info.get("userName"),
        "operation": info.get("operation", "UNKNOWN"),
        "operationParameters": info.get("operationParameters") or {},
        "job": info.get("job"),
        "notebook": info.get("notebook"),
        "clusterId": info.get("clusterId"),
        "readVersion": info.get("readVersion"),
        "isolationLevel": info.get("isolationLevel"),
        "isBlindAppend": info.get("isBlindAppend"),
        "operationMetrics": info.get("operationMetrics") or {},
        "userMetadata": info.get("userMetadata"),
        "engineInfo": info.get("engineInfo"),
    }


@dataclass
class _TableState:
    """What the source remembers about one table; `lock` guards the rest."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    version: int | None = None
    handle: DeltaTable | None = None
    table_id: str | None = None


class LocalDeltaSource(TableSource):
    """Delta tables under a folder, one `<catalog>/<schema>/<table>` folder each."""

    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._tables: dict[TableName, _TableState] = {}
        self._tables_lock = threading.Lock()

    @classmethod
    def from_project(cls, project: Project) -> LocalDeltaSource:
        """`tables.source: local`: the tables under `tables.local_root`."""
        return cls(project.local_root)

    def path(self, table: TableName) -> Path:
        return path_for(self.root, table)

    def latest_version(self, table: TableName) -> int:
        state = self._state(table)
        with state.lock:
            return self._refresh(table, state)

    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        latest = self.latest_version(table)
        log = self.path(table) / _LOG
        wanted = range(max(after + 1, 0), latest + 1)
        if wanted and not _commit_file(log, wanted.start).exists():
            # The oldest versions asked for are gone (log retention): list the log once to
            # find where it starts now, rather than probing every missing version.
            remaining = [v for v in _log_versions(log) if v > after]
            wanted = range(remaining[0] if remaining else latest + 1, latest + 1)
        commits: list[Commit] = []
        for version in wanted:
            if limit is not None and len(commits) >= limit:
                break
            commit = self._read_commit(log, version)
            if commit is not None:
                commits.append(commit)
        return commits

    def changes(self, table: TableName, start: int, end: int) -> pa.Table:
        state = self._state(table)
        with state.lock:
            self._refresh(table, state)
            handle = self._handle(table, state)
            # delta-rs checks only the starting version's settings: on a table without the
            # feed it would hand back rows guessed from the data files. Databricks refuses.
            settings = handle.metadata().configuration
            if settings.get("delta.enableChangeDataFeed", "false").lower() != "true":
                raise ChangeDataFeedUnavailable(str(table), "delta.enableChangeDataFeed is off")
            try:
                reader = handle.load_cdf(starting_version=start, ending_version=end)
                result = pa.table(reader)
            except DeltaError as exc:
                raise ChangeDataFeedUnavailable(str(table), str(exc).splitlines()[0]) from exc
        return normalize_changes(result)

    def table_id(self, table: TableName) -> str | None:
        """The Delta metadata id: read from the version-0 commit (one short read), or from
        the whole log when retention removed that commit."""
        state = self._state(table)
        with state.lock:
            path = self.path(table)
            found = _metadata_id(_commit_file(path / _LOG, 0))
            if found is None:
                try:
                    found = str(DeltaTable(str(path)).metadata().id)
                except DeltaError as exc:
                    raise TableNotFound(str(table), f"local catalog {self.root}") from exc
            if state.table_id is not None and state.table_id != found:
                # Another table under the same name: the kept handle belongs to the old one.
                state.handle = None
            state.table_id = found
            return found

    def close(self) -> None:
        with self._tables_lock:
            self._tables.clear()

    def _state(self, table: TableName) -> _TableState:
        with self._tables_lock:
            return self._tables.setdefault(table, _TableState())

    def _refresh(self, table: TableName, state: _TableState) -> int:
        """The newest version, from the remembered one: two stats when nothing changed."""
        log = self.path(table) / _LOG
        if state.version is not None and _commit_file(log, state.version).exists():
            state.version = _gallop(log, state.version)
            return state.version
        # First look, or the remembered commit vanished (table dropped or recreated).
        state.version, state.handle = None, None
        state.version = self._discover(table, log)
        return state.version

    def _discover(self, table: TableName, log: Path) -> int:
        if not log.is_dir():
            raise TableNotFound(str(table), f"local catalog {self.root}")
        start = _last_checkpoint(log)
        if start is None or not _commit_file(log, start).exists():
            versions = _log_versions(log)
            if not versions:
                raise TableNotFound(str(table), f"local catalog {self.root} (empty Delta log)")
            return versions[-1]
        return _gallop(log, start)

    def _handle(self, table: TableName, state: _TableState) -> DeltaTable:
        """The table's DeltaTable, brought up to the newest version seen, never reloaded."""
        if state.handle is None:
            try:
                state.handle = DeltaTable(str(self.path(table)))
            except DeltaError as exc:
                raise TableNotFound(str(table), f"local catalog {self.root}") from exc
        elif state.version is not None and state.handle.version() < state.version:
            state.handle.update_incremental()
        return state.handle

    def _read_commit(self, log: Path, version: int) -> Commit | None:
        path = _commit_file(log, version)
        info = _read_commit_info(path)
        if info is None:
            return None  # removed between listing and reading: same as a gap
        try:
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        return commit_from_row(history_row(version, info, mtime))


# Helpers behind `lakefn tables create|append|history`.


def _as_arrow(data: pa.Table | Sequence[dict[str, Any]]) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    rows = list(data)
    if not rows:
        raise BadTableRows()
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise BadTableRows(exc) from None


def create_table(
    root: str | Path,
    name: str | TableName,
    data: pa.Table | Sequence[dict[str, Any]],
    *,
    change_data_feed: bool = True,
    partition_by: list[str] | None = None,
) -> int:
    """Create a local Delta table holding `data`; returns its version (0)."""
    path = path_for(root, name)
    if (path / _LOG).is_dir():
        raise TableExists(TableName.parse(name), path)
    path.mkdir(parents=True, exist_ok=True)
    config = {"delta.enableChangeDataFeed": "true"} if change_data_feed else None
    write_deltalake(
        str(path), _as_arrow(data), mode="error", configuration=config, partition_by=partition_by
    )
    return DeltaTable(str(path)).version()


def append(
    root: str | Path,
    name: str | TableName,
    rows: pa.Table | Sequence[dict[str, Any]],
    mode: Literal["append", "overwrite"] = "append",
) -> int:
    """Add (or replace with) `rows` as a new commit; returns the new version."""
    path = path_for(root, name)
    if not (path / _LOG).is_dir():
        raise TableNotFound(str(TableName.parse(name)), f"local catalog {root}")
    table = DeltaTable(str(path))
    try:
        write_deltalake(table, _as_arrow(rows), mode=mode)
    except Exception as exc:  # noqa: BLE001 - deltalake raises a bare Exception for cast errors
        raise TableWriteFailed(TableName.parse(name), mode, exc) from exc
    table.update_incremental()
    return table.version()
