"""WarehouseSource against a faithful SQL warehouse double (tests/fakes/databricks_sql.py)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from lakefn import (
    ChangeDataFeedUnavailable,
    SourceUnavailable,
    TableName,
    TableNameError,
    TableNotFound,
)
from lakefn.sources.warehouse import WarehouseSource, sql_string
from tests.fakes.catalog import FakeCatalog, FakeTable, history_row
from tests.fakes.databricks_sql import FakeWarehouse

TABLE = TableName.parse("main.sales.orders")
START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


class FakeSdkConfig:
    """The two members of databricks.sdk.core.Config the source uses."""

    host = "https://example.cloud.databricks.com/"

    def __init__(self) -> None:
        self.token = "dapi-first"

    def authenticate(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def commits(count: int, first: int = 0) -> list[dict]:
    return [
        history_row(
            v,
            "WRITE" if v else "CREATE TABLE",
            timestamp=START + timedelta(minutes=v),
            parameters={"mode": "Append", "partitionBy": []},
            metrics={"numOutputRows": 10 * v, "numFiles": 1},
        )
        for v in range(first, first + count)
    ]


def changes_for(versions: list[int]) -> pa.Table:
    return pa.table(
        {
            "id": versions,
            "_change_type": ["insert"] * len(versions),
            "_commit_version": versions,
            "_commit_timestamp": [START + timedelta(minutes=v) for v in versions],
        }
    )


@pytest.fixture
def catalog() -> FakeCatalog:
    catalog = FakeCatalog()
    catalog.add(TABLE.parts, FakeTable(commits(4), changes_for([0, 1, 2, 3])))
    return catalog


@pytest.fixture
def warehouse(catalog: FakeCatalog) -> FakeWarehouse:
    return FakeWarehouse(catalog)


@pytest.fixture
def config() -> FakeSdkConfig:
    return FakeSdkConfig()


@pytest.fixture
def source(warehouse: FakeWarehouse, config: FakeSdkConfig) -> WarehouseSource:
    return WarehouseSource("/sql/1.0/warehouses/abc", config=config, connect=warehouse.connect)


def test_connects_with_sdk_credentials_and_bounded_retries(
    source: WarehouseSource, warehouse: FakeWarehouse, config: FakeSdkConfig
) -> None:
    assert source.latest_version(TABLE) == 3
    (kwargs,) = warehouse.connect_calls
    assert kwargs["server_hostname"] == "example.cloud.databricks.com"
    assert kwargs["http_path"] == "/sql/1.0/warehouses/abc"
    assert kwargs["_retry_stop_after_attempts_count"] <= 5
    assert kwargs["_retry_stop_after_attempts_duration"] <= 120
    assert kwargs["_socket_timeout"] <= 120
    # The header factory asks the SDK each time, so refreshed OAuth tokens are used.
    headers = kwargs["credentials_provider"]()
    config.token = "dapi-refreshed"
    assert headers() == {"Authorization": "Bearer dapi-refreshed"}


def test_http_path_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_WAREHOUSE_PATH", raising=False)
    monkeypatch.setenv("DATABRICKS_WAREHOUSE_ID", "f00d")
    assert WarehouseSource(config=FakeSdkConfig()).http_path == "/sql/1.0/warehouses/f00d"
    monkeypatch.setenv("DATABRICKS_WAREHOUSE_PATH", "/sql/1.0/warehouses/beef")
    assert WarehouseSource(config=FakeSdkConfig()).http_path == "/sql/1.0/warehouses/beef"
    assert WarehouseSource("/explicit").http_path == "/explicit"
    monkeypatch.delenv("DATABRICKS_WAREHOUSE_PATH")
    monkeypatch.delenv("DATABRICKS_WAREHOUSE_ID")
    with pytest.raises(SourceUnavailable, match="DATABRICKS_WAREHOUSE_ID"):
        WarehouseSource()


def test_no_credentials_anywhere_is_source_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, warehouse: FakeWarehouse
) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("DATABRICKS_", "ARM_", "AZURE_", "GOOGLE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    source = WarehouseSource("/sql/1.0/warehouses/abc", connect=warehouse.connect)
    with pytest.raises(SourceUnavailable, match="credentials"):
        source.latest_version(TABLE)
    assert warehouse.connect_calls == []


def test_one_connection_serves_every_call(
    source: WarehouseSource, warehouse: FakeWarehouse
) -> None:
    source.latest_version(TABLE)
    source.commits_since(TABLE, 1)
    source.changes(TABLE, 1, 2)
    assert len(warehouse.connect_calls) == 1
    source.close()
    assert not warehouse.connections[0].open


def test_expired_session_is_reopened_once(
    source: WarehouseSource, warehouse: FakeWarehouse
) -> None:
    source.latest_version(TABLE)
    warehouse.drop_session_on_next_query = True
    assert source.latest_version(TABLE) == 3
    assert len(warehouse.connect_calls) == 2
    assert not warehouse.connections[0].open


def test_refused_credentials_are_source_unavailable(
    source: WarehouseSource, warehouse: FakeWarehouse
) -> None:
    warehouse.refuse_auth = True
    with pytest.raises(SourceUnavailable, match="403"):
        source.latest_version(TABLE)
    warehouse.refuse_auth = False
    assert source.latest_version(TABLE) == 3  # the next poll connects afresh


def test_unreachable_warehouse_is_source_unavailable(
    source: WarehouseSource, warehouse: FakeWarehouse
) -> None:
    warehouse.unreachable = True
    with pytest.raises(SourceUnavailable, match="Connection refused"):
        source.commits_since(TABLE, -1)


def test_missing_table_is_table_not_found(source: WarehouseSource) -> None:
    with pytest.raises(TableNotFound, match="main.sales.nope"):
        source.latest_version(TableName.parse("main.sales.nope"))


def test_history_rows_become_commits(source: WarehouseSource, warehouse: FakeWarehouse) -> None:
    first, *_ = source.commits_since(TABLE, -1)
    assert first.operation == "CREATE TABLE"
    assert first.timestamp == START
    assert first.user_name == "ada@example.com"
    assert first.operation_parameters == {"mode": "Append", "partitionBy": []}
    assert first.raw["clusterId"] == "0101-123456-abcdefgh"
    assert warehouse.queries[-1] == "DESCRIBE HISTORY `main`.`sales`.`orders` LIMIT 4"


def test_complex_columns_as_json_text(catalog: FakeCatalog, config: FakeSdkConfig) -> None:
    # Without pyarrow's native complex types the connector hands every MAP and STRUCT column
    # over as JSON text: the maps, and the job / notebook structs too.
    catalog.tables[TABLE.parts].commit("MERGE", job={"jobId": "77", "jobRunId": "9"})
    warehouse = FakeWarehouse(catalog, maps="json")
    source = WarehouseSource("/p", config=config, connect=warehouse.connect)
    third, merge = source.commits_since(TABLE, 2)
    assert isinstance(third.raw["operationMetrics"], str)
    assert third.operation_metrics == {"numOutputRows": 30, "numFiles": 1}
    assert third.raw["notebook"] == '{"notebookId":"1234"}'
    assert merge.raw["job"] == '{"jobId":"77","jobRunId":"9"}' and merge.raw["notebook"] is None
    assert merge.operation == "MERGE" and merge.version == 4


def test_cloud_fetch_is_off_unless_asked_for(
    warehouse: FakeWarehouse, config: FakeSdkConfig
) -> None:
    WarehouseSource("/p", config=config, connect=warehouse.connect).latest_version(TABLE)
    WarehouseSource(
        "/p", config=config, connect=warehouse.connect, use_cloud_fetch=True
    ).latest_version(TABLE)
    assert [call["use_cloud_fetch"] for call in warehouse.connect_calls] == [False, True]


@pytest.mark.parametrize(("setting", "expected"), [("", False), ("use_cloud_fetch: true", True)])
def test_tables_use_cloud_fetch_reaches_the_warehouse_source(
    project, monkeypatch: pytest.MonkeyPatch, setting: str, expected: bool
) -> None:
    from lakefn.sources.selection import select_source

    monkeypatch.setenv("DATABRICKS_WAREHOUSE_PATH", "/sql/1.0/warehouses/abc")
    project.config(f"tables: {{source: warehouse, {setting}}}\nfunctions: []\n")
    source = select_source(project.runtime().project)
    assert isinstance(source, WarehouseSource) and source.use_cloud_fetch is expected


def test_idle_poll_is_one_small_query(source: WarehouseSource, warehouse: FakeWarehouse) -> None:
    assert source.commits_since(TABLE, 3) == []
    assert warehouse.queries == ["DESCRIBE HISTORY `main`.`sales`.`orders` LIMIT 1"]


def test_commits_landing_between_queries_are_not_lost(
    source: WarehouseSource, warehouse: FakeWarehouse, catalog: FakeCatalog
) -> None:
    table = catalog.tables[TABLE.parts]

    def commit_three_more(statement: str) -> None:
        if statement.endswith("LIMIT 1") and len(table.history) == 4:
            table.history.extend(commits(3, first=4))

    warehouse.after_query = commit_three_more
    assert [c.version for c in source.commits_since(TABLE, 1)] == [2, 3, 4, 5, 6]


def test_changes_through_table_changes(source: WarehouseSource, warehouse: FakeWarehouse) -> None:
    changes = source.changes(TABLE, 1, 2)
    assert changes.column("_commit_version").to_pylist() == [1, 2]
    assert warehouse.queries[-1] == ("SELECT * FROM table_changes('`main`.`sales`.`orders`', 1, 2)")


def test_changes_without_change_data_feed(source: WarehouseSource, catalog: FakeCatalog) -> None:
    catalog.tables[TABLE.parts].changes = None
    with pytest.raises(ChangeDataFeedUnavailable, match="DELTA_MISSING_CHANGE_DATA"):
        source.changes(TABLE, 0, 3)


@pytest.mark.parametrize("text", ["a.b.c; DROP TABLE x", "a.b.c --", "a.b.'c'", "a.b"])
def test_injection_attempts_are_not_table_names(text: str) -> None:
    with pytest.raises(TableNameError):
        TableName.parse(text)


@pytest.mark.parametrize(
    "text",
    ["a.b.`c`` ; --`", "a.b.`it's`", "a.b.`back\\slash`", "a.b.`x'); DROP TABLE y; --`"],
)
def test_strange_names_reach_sql_only_quoted(
    text: str, catalog: FakeCatalog, source: WarehouseSource, warehouse: FakeWarehouse
) -> None:
    name = TableName.parse(text)
    catalog.add(name.parts, FakeTable(commits(2), changes_for([0, 1])))
    assert source.latest_version(name) == 1
    assert [c.version for c in source.commits_since(name, -1)] == [0, 1]
    assert source.changes(name, 0, 1).num_rows == 2
    assert source.table_id(name) == catalog.tables[name.parts].table_id
    assert warehouse.rejected == []


def test_sql_string_escapes_quotes_and_backslashes() -> None:
    assert sql_string("`a`.`b`.`it's \\ x`") == "'`a`.`b`.`it\\'s \\\\ x`'"


def test_calls_from_many_threads_share_the_connection(
    source: WarehouseSource, warehouse: FakeWarehouse
) -> None:
    results: list[int] = []

    def poll() -> None:
        for _ in range(20):
            results.append(len(source.commits_since(TABLE, 0)))

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [3] * 80
    assert len(warehouse.connect_calls) == 1


def test_the_double_refuses_unquoted_names(warehouse: FakeWarehouse) -> None:
    # What makes the quoting tests above meaningful: the double is as strict as promised.
    cursor = warehouse.connect(credentials_provider=lambda: FakeSdkConfig().authenticate).cursor()
    from databricks.sql.exc import ServerOperationError

    with pytest.raises(ServerOperationError, match="PARSE_SYNTAX_ERROR"):
        cursor.execute("DESCRIBE HISTORY main.sales.orders LIMIT 1")
    with pytest.raises(AssertionError, match="unquoted"):
        cursor.execute("SELECT * FROM table_changes('main.sales.orders', 0, 1)")
