"""RecordedSource: DESCRIBE HISTORY exports replayed, and simulated commits."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from lakefn import ChangeDataFeedUnavailable, Commit, TableName, TableNotFound
from lakefn.sources.recorded import RecordedSource

DATA = Path(__file__).parent / "data"
TABLE = TableName.parse("main.sales.orders")


def test_csv_export_from_the_databricks_ui() -> None:
    source = RecordedSource.from_file(DATA / "orders_history.csv", table="main.sales.orders")
    assert source.latest_version(TABLE) == 12
    settings, write, delete = source.commits_since(TABLE, -1)
    assert [settings.version, write.version, delete.version] == [10, 11, 12]
    assert delete.timestamp == datetime(2024, 6, 3, 7, 45, tzinfo=timezone.utc)
    assert settings.timestamp == datetime(2024, 6, 1, 19, 2, 11, 123000, tzinfo=timezone.utc)
    assert delete.operation_parameters == {"predicate": ["(status#12 = cancelled)"]}
    assert delete.operation_metrics["numDeletedRows"] == 3
    assert settings.operation_parameters == {"properties": {"delta.enableChangeDataFeed": "true"}}
    assert (settings.user_name, write.user_name) == (None, "etl@example.com")
    assert write.raw["userMetadata"] == "nightly load"
    assert settings.operation_metrics == {}


def test_json_export_gives_the_same_commits_as_csv(tmp_path: Path) -> None:
    from_csv = RecordedSource.from_file(DATA / "orders_history.csv", table=TABLE)
    from_json = RecordedSource.from_file(DATA / "orders_history.json", table=TABLE)
    assert from_json.commits_since(TABLE, -1) == from_csv.commits_since(TABLE, -1)
    # Spark's df.write.json: one object per line.
    lines = tmp_path / "history.json"
    rows = json.loads((DATA / "orders_history.json").read_text())
    lines.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    from_lines = RecordedSource.from_file(lines, table=TABLE)
    assert from_lines.commits_since(TABLE, -1) == from_csv.commits_since(TABLE, -1)


def test_history_given_in_memory() -> None:
    row = {"version": 0, "timestamp": 1_714_560_000_000, "operation": "WRITE"}
    commit = Commit(1, datetime(2024, 5, 2, tzinfo=timezone.utc), "MERGE")
    source = RecordedSource({"main.sales.orders": [commit, row]})
    assert [c.operation for c in source.commits_since(TABLE, -1)] == ["WRITE", "MERGE"]
    assert source.commits_since(TABLE, -1)[0].timestamp == datetime(
        2024, 5, 1, 10, 40, tzinfo=timezone.utc
    )


def test_ranges_and_limits() -> None:
    source = RecordedSource.from_file(DATA / "orders_history.csv", table=TABLE)
    assert [c.version for c in source.commits_since(TABLE, 10)] == [11, 12]
    assert [c.version for c in source.commits_since(TABLE, 5, limit=1)] == [10]
    assert source.commits_since(TABLE, 12) == []


def test_unknown_table_is_not_found() -> None:
    source = RecordedSource()
    with pytest.raises(TableNotFound):
        source.latest_version(TABLE)
    with pytest.raises(TableNotFound):
        source.commits_since(TABLE, -1)
    with pytest.raises(TableNotFound):
        source.changes(TABLE, 0, 0)


def test_created_table_has_a_version_and_no_history() -> None:
    source = RecordedSource()
    source.create_table(TABLE)
    assert source.latest_version(TABLE) == 0
    assert source.commits_since(TABLE, -1) == []
    assert source.append_commit(TABLE).version == 1


def test_appended_commits_follow_the_recorded_history() -> None:
    source = RecordedSource.from_file(DATA / "orders_history.csv", table=TABLE)
    when = datetime(2024, 7, 1, tzinfo=timezone.utc)
    commit = source.append_commit(
        TABLE,
        "MERGE",
        parameters={"predicate": ["id = 1"]},
        metrics={"numOutputRows": 2},
        timestamp=when,
    )
    assert (commit.version, commit.operation, commit.timestamp) == (13, "MERGE", when)
    assert commit.operation_parameters == {"predicate": ["id = 1"]}
    assert commit.operation_metrics == {"numOutputRows": 2}
    assert source.latest_version(TABLE) == 13
    assert source.commits_since(TABLE, 12) == [commit]
    with pytest.raises(ValueError, match="not after"):
        source.append_commit(TABLE, version=13)


def test_appending_from_many_threads_gives_each_commit_its_own_version() -> None:
    source = RecordedSource()

    def append_some() -> None:
        for _ in range(25):
            source.append_commit(TABLE, rows=[{"id": 1}])

    threads = [threading.Thread(target=append_some) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [c.version for c in source.commits_since(TABLE, -1)] == list(range(100))


def test_changes_are_the_rows_appended() -> None:
    source = RecordedSource.from_file(DATA / "orders_history.csv", table=TABLE)
    inserted = source.append_commit(
        TABLE, rows=[{"id": 1, "item": "tea"}, {"id": 2, "item": "oil"}]
    )
    source.append_commit(TABLE, "OPTIMIZE")
    deleted = source.append_commit(
        TABLE, "DELETE", rows=[{"id": 1, "item": "tea", "_change_type": "delete"}]
    )
    assert inserted.operation_metrics == {"numOutputRows": 2}
    changes = source.changes(TABLE, 10, 15)
    assert changes.column_names == [
        "_change_type",
        "id",
        "item",
        "_commit_version",
        "_commit_timestamp",
    ]
    assert [(r["_commit_version"], r["_change_type"], r["id"]) for r in changes.to_pylist()] == [
        (13, "insert", 1),
        (13, "insert", 2),
        (15, "delete", 1),
    ]
    assert changes.to_pylist()[-1]["_commit_timestamp"] == deleted.timestamp


def test_no_rows_recorded_means_no_change_feed() -> None:
    source = RecordedSource.from_file(DATA / "orders_history.csv", table=TABLE)
    source.append_commit(TABLE, "OPTIMIZE")
    with pytest.raises(ChangeDataFeedUnavailable, match="10..13"):
        source.changes(TABLE, 10, 13)


def test_a_table_is_known_by_its_version_0_commit() -> None:
    created = datetime(2024, 5, 1, 10, 40, tzinfo=timezone.utc)
    first = [{"version": 0, "timestamp": created, "operation": "CREATE TABLE"}]
    source = RecordedSource({"main.sales.orders": first})
    identity = source.table_id(TABLE)
    assert identity is not None
    # More history, appended or re-exported, is the same table.
    source.append_commit(TABLE, "WRITE")
    assert source.table_id(TABLE) == identity
    source.load_rows(TABLE, [*first, {"version": 1, "timestamp": created, "operation": "WRITE"}])
    assert source.table_id(TABLE) == identity
    # Dropped and created again: a new version 0, so another table, even at a later version.
    recreated = datetime(2024, 6, 1, tzinfo=timezone.utc)
    source.load_rows(
        TABLE,
        [{"version": v, "timestamp": recreated, "operation": "WRITE"} for v in range(5)],
    )
    assert source.table_id(TABLE) not in (None, identity)


def test_without_its_version_0_commit_a_table_has_no_known_identity() -> None:
    # The UI export starts at version 10 (log retention): nothing tells one table from another.
    source = RecordedSource.from_file(DATA / "orders_history.csv", table=TABLE)
    assert source.table_id(TABLE) is None
    with pytest.raises(TableNotFound):
        source.table_id(TableName.parse("main.sales.other"))
