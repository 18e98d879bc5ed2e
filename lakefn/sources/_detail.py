"""A Databricks table's identity through `DESCRIBE DETAIL`, for the warehouse and Spark sources.

DESCRIBE DETAIL returns one row whose `id` column is the Delta metadata id of the latest
snapshot, a UUID that DROP TABLE + CREATE TABLE under the same name gives anew. It reads that
snapshot, so the watcher asks for it only when there is news, never on an idle check.

Caveat: open-source Delta's REPLACE TABLE / CREATE OR REPLACE TABLE commits metadata with a
fresh id too, while the versions go on (CreateDeltaTableCommand.replaceMetadataIfNecessary);
the watcher then takes the table for a recreated one. The local source reads the id of the
version-0 commit instead, which a REPLACE leaves alone.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .._tablename import TableName
from ._history import HistoryWindow


def detail_query(table: TableName) -> str:
    return f"DESCRIBE DETAIL {table.sql}"


class TableIds:
    """The id each table had when last asked, to notice the table under a name change."""

    def __init__(self, history: HistoryWindow) -> None:
        self._history = history
        self._seen: dict[TableName, str] = {}
        self._lock = threading.Lock()

    def note(self, table: TableName, rows: Sequence[Mapping[str, Any]]) -> str | None:
        """The id in DESCRIBE DETAIL's `rows`; None for a table that is not Delta (its id is
        null: DescribeDeltaDetailsCommand's describeNonDeltaTable)."""
        found = rows[0].get("id") if rows else None
        if found is None:
            return None
        table_id = str(found)
        with self._lock:
            before = self._seen.get(table)
            self._seen[table] = table_id
        if before is not None and before != table_id:
            # History rows kept ahead of a batch belong to the dropped table. Another table's
            # kept rows go too: a recreated table is rare, reading a window again is cheap.
            self._history.forget()
        return table_id
