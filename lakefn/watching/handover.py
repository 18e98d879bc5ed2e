"""What a function is handed: the event for a range of versions, delivered or simulated.

A simulation is a delivery from another source: the table's real one for a replay of its
history, or the real one with a made-up commit laid over it (a `RecordedOverlay`) for a
simulated change, so the commit and its rows are made the way a recorded history makes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events import TableChangeEvent

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    import pyarrow

    from .._tablename import TableName
    from ..abc import TableSource
    from ..events import Commit
    from .state import WatchState

#: the change feed's own columns, which Delta puts after the table's
_CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


def delivery_event(
    source: TableSource, state: WatchState, last: int, commits: list[Commit], relevant: list[Commit]
) -> Callable[[], TableChangeEvent]:
    """The maker of the event for `relevant`, the commits among `commits` (all of those after
    checkpoint `last`) that the function's operations filter lets through."""
    table = state.table
    first, end = relevant[0].version, relevant[-1].version
    versions = [c.version for c in relevant]
    skipped = sum(first <= c.version <= end for c in commits) > len(relevant)

    def load_changes() -> pyarrow.Table:
        rows = source.changes(table, first, end)
        # Commits the operations filter left out are not this event's: neither are their rows.
        return _only_versions(rows, versions) if skipped else rows

    def make_event() -> TableChangeEvent:
        return TableChangeEvent(
            function_name=state.function,
            table_name=str(table),
            commits=list(relevant),
            previous_version=last if last >= 0 else None,  # None: nothing before
            changes_loader=load_changes,
            frame_loader=_frame_loader(source, table, versions, skipped),
        )

    return make_event


def simulated_event(
    source: TableSource, function: str, table: TableName, commits: list[Commit], overlaid: bool
) -> Callable[[], TableChangeEvent]:
    """The maker of a simulated event for `commits` read from `source`; `overlaid`: the
    commits are made up (see `with_simulated_commit`)."""
    first, end = commits[0].version, commits[-1].version

    def load_changes() -> pyarrow.Table:
        rows = source.changes(table, first, end)
        return _change_columns_last(rows) if overlaid else rows

    def make_event() -> TableChangeEvent:
        return TableChangeEvent(
            function_name=function,
            simulated=True,
            table_name=str(table),
            commits=list(commits),
            previous_version=first - 1 if first > 0 else None,
            changes_loader=load_changes,
        )

    return make_event


def with_simulated_commit(
    source: TableSource,
    table: TableName,
    operation: str,
    rows: list[dict[str, Any]] | None,
    version: int,
    now: datetime,
) -> TableSource:
    """`source` with one made-up commit, `version` of `table`, laid over it: `rows` are its
    changes, inserted (deleted, for a DELETE); nothing of the real table changes."""
    from ..sources.recorded import RecordedOverlay

    operation = operation.upper()
    change_type = "delete" if operation == "DELETE" else "insert"
    overlay = RecordedOverlay(source)
    overlay.recorded.append_commit(
        table,
        operation,
        rows=[{**row, "_change_type": change_type} for row in rows or []],
        parameters={"simulated": True},
        metrics={"numOutputRows": len(rows)} if rows is not None else {},
        timestamp=now,
        version=version,
        user_name="lakefn simulate",
        # As DESCRIBE HISTORY gives a row, plus the mark a function can tell a made-up one by.
        marks={"simulated": True},
    )
    return overlay


def _change_columns_last(rows: pyarrow.Table) -> pyarrow.Table:
    # A recorded history puts `_change_type` first; a simulated change reads as a real
    # table's feed does, the table's columns first.
    names = [n for n in rows.column_names if n not in _CHANGE_COLUMNS]
    return rows.select([*names, *_CHANGE_COLUMNS])


def _only_versions(rows: pyarrow.Table, versions: list[int]) -> pyarrow.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    return rows.filter(pc.is_in(rows.column("_commit_version"), pa.array(versions, pa.int64())))


def _frame_loader(
    source: Any, table: TableName, versions: list[int], skipped: bool
) -> Callable[[], Any] | None:
    """`event.changes_df()`'s maker, when the source can make DataFrames (Spark)."""
    make = getattr(source, "changes_frame", None)
    if make is None:
        return None
    only = versions if skipped else None
    return lambda: make(table, versions[0], versions[-1], only)
