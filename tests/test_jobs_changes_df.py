"""`event.changes_df()`: the changed rows as a lazy Spark DataFrame of exactly the event's
versions, through the watcher, with the SparkSession double (reads recorded here)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from lakefn import ChangeDataFeedUnavailable, TableChangeEvent, TableName, TableNotFound
from lakefn.sources.spark import SparkSource
from tests.fakes.catalog import FakeCatalog, FakeTable, history_row
from tests.fakes.spark import DataFrame, DataFrameReader, SparkSession

TABLE = TableName.parse("main.sales.orders")
START = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


class LazyFrame:
    """A DataFrame that records what is asked of it and never materializes by itself."""

    def __init__(self, read: dict[str, Any], inner: DataFrame) -> None:
        self.read = read
        self.conditions: list[str] = []
        self.actions: list[str] = []
        self._inner = inner

    def where(self, condition: str) -> LazyFrame:
        self.conditions.append(condition)
        return self

    def collect(self) -> Any:  # an action: the test checks none ran
        self.actions.append("collect")
        return self._inner.collect()

    def toArrow(self) -> pa.Table:  # noqa: N802 - pyspark's name
        self.actions.append("toArrow")
        return self._inner.toArrow()


class RecordingReader(DataFrameReader):
    def table(self, name: str) -> Any:
        inner = super().table(name)
        frame = LazyFrame(
            {"format": self._format, "options": dict(self._options), "table": name}, inner
        )
        self._session.frames.append(frame)  # type: ignore[attr-defined]
        return frame


class RecordingSession(SparkSession):
    def __init__(self, catalog: FakeCatalog) -> None:
        super().__init__(catalog)
        self.frames: list[LazyFrame] = []

    @property
    def read(self) -> RecordingReader:
        return RecordingReader(self)


def _catalog(operations: list[str]) -> FakeCatalog:
    versions = list(range(len(operations)))
    rows = [
        history_row(v, op, timestamp=START + timedelta(minutes=v))
        for v, op in enumerate(operations)
    ]
    changes = pa.table(
        {
            "id": versions,
            "_change_type": ["insert"] * len(versions),
            "_commit_version": versions,
            "_commit_timestamp": [START] * len(versions),
        }
    )
    catalog = FakeCatalog()
    catalog.add(TABLE.parts, FakeTable(rows, changes))
    return catalog


def _project(project, operations: str = "") -> Any:
    project.config(
        f"""\
        functions:
          - name: etl
            trigger: {{type: unity_table, start: earliest{operations}}}
            table_name: main.sales.orders
            run_on: job
        """
    )
    project.function("etl", "def main(event):\n    return event.changes_df()\n")
    return project


def _deliver(project, session: SparkSession) -> Any:
    runtime = project.runtime(table_source=SparkSource(session))
    try:
        invocation = runtime.run_sync(runtime.watcher.check("etl"))
    finally:
        runtime.close()
    assert invocation is not None and invocation.ok, invocation
    return invocation.result


def test_changes_df_reads_exactly_the_events_versions_lazily(project) -> None:
    session = RecordingSession(_catalog(["WRITE", "MERGE", "WRITE"]))
    frame = _deliver(_project(project), session)
    assert session.frames == [frame]
    assert frame.read == {
        "format": "delta",
        "options": {"readChangeFeed": "true", "startingVersion": "0", "endingVersion": "2"},
        "table": TABLE.sql,
    }
    assert frame.conditions == [] and frame.actions == []  # nothing pulled into the driver


def test_changes_df_leaves_out_versions_the_operations_filter_skipped(project) -> None:
    session = RecordingSession(_catalog(["WRITE", "MERGE", "WRITE", "MERGE"]))
    frame = _deliver(_project(project, ", operations: [MERGE]"), session)
    assert frame.read["options"]["startingVersion"] == "1"
    assert frame.read["options"]["endingVersion"] == "3"
    assert frame.conditions == ["_commit_version IN (1, 3)"]
    assert frame.actions == []


def test_changes_df_without_a_spark_source_says_what_it_needs(project) -> None:
    event = TableChangeEvent(function_name="etl", table_name="main.sales.orders")
    with pytest.raises(
        ChangeDataFeedUnavailable, match="changes_df\\(\\) needs a Spark table source"
    ):
        event.changes_df()
    # Through the watcher on local Delta tables: the function's failure carries the message.
    _project(project)
    from deltalake import write_deltalake

    from lakefn.sources.local import path_for

    table = path_for(project.root / ".lakefn" / "catalog", TABLE)
    write_deltalake(str(table), pa.table({"id": [1]}))
    runtime = project.runtime()
    try:
        invocation = runtime.run_sync(runtime.watcher.check("etl"))
    finally:
        runtime.close()
    assert invocation is not None and not invocation.ok
    assert "use changes() for a pyarrow table" in (invocation.error or "")


def test_changes_frame_of_a_missing_table_is_table_not_found() -> None:
    source = SparkSource(RecordingSession(FakeCatalog()))
    with pytest.raises(TableNotFound):
        source.changes_frame(TABLE, 0, 1)
