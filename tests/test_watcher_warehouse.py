"""A table trigger end to end on a SQL warehouse: the real server, watcher and WarehouseSource,
with the faithful double of databricks-sql-connector standing in for the workspace (and, for a
recreated table, the Spark source on the SparkSession double too)."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from lakefn.abc import TableSource
from lakefn.sources.selection import choose
from lakefn.sources.spark import SparkSource
from lakefn.sources.warehouse import WarehouseSource
from tests.fakes.catalog import FakeCatalog, FakeTable, history_row
from tests.fakes.databricks_sql import FakeWarehouse
from tests.fakes.spark import SparkSession
from tests.test_source_warehouse import FakeSdkConfig

START = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
PARTS = ("main", "sales", "orders")

APP = """\
tables: {source: warehouse}
state: state.db
functions:
  - name: orders
    trigger:
      type: unity_table
      check_interval: 0.05
      operations: [WRITE, MERGE]
    table_name: main.sales.orders
"""

FUNCTION = """\
import json, pathlib

def main(event):
    changes = event.changes()
    record = {
        "versions": [c.version for c in event.commits],
        "operations": [c.operation for c in event.commits],
        "rows": changes.column("_commit_version").to_pylist(),
        "metrics": [c.operation_metrics.get("numOutputRows") for c in event.commits],
        "previous": event.previous_version,
    }
    with open(pathlib.Path(__file__).parent.parent / "seen.jsonl", "a") as out:
        out.write(json.dumps(record) + "\\n")
"""


def row(version: int, operation: str) -> dict:
    return history_row(
        version,
        operation,
        timestamp=START + timedelta(minutes=version),
        parameters={"mode": "Append"},
        metrics={"numOutputRows": 10 * version},
    )


def changes(versions: list[int]) -> pa.Table:
    return pa.table(
        {
            "order_id": versions,
            "_change_type": ["insert"] * len(versions),
            "_commit_version": versions,
            "_commit_timestamp": [START + timedelta(minutes=v) for v in versions],
        }
    )


@pytest.fixture(params=["pairs", "json"])
def warehouse(request) -> FakeWarehouse:
    catalog = FakeCatalog()
    catalog.add(PARTS, FakeTable([row(0, "CREATE TABLE"), row(1, "WRITE")], changes([1])))
    return FakeWarehouse(catalog, maps=request.param)


def commit(warehouse: FakeWarehouse, version: int, operation: str) -> None:
    table = warehouse.catalog.tables[PARTS]
    table.history.append(row(version, operation))
    versions = [*table.changes.column("_commit_version").to_pylist(), version]  # type: ignore[union-attr]
    table.changes = changes(versions)


def seen(project) -> list[dict]:
    import json

    path = project.root / "seen.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_new_versions_on_the_warehouse_reach_the_function_once(project, serve, warehouse) -> None:
    project.config(APP)
    project.function("orders", FUNCTION)
    source = WarehouseSource(
        "/sql/1.0/warehouses/abc", config=FakeSdkConfig(), connect=warehouse.connect
    )
    server = serve(project, table_source=source)
    wait_for(lambda: server.client.get("/lakefn/tables").json()[0]["last_processed_version"] == 1)
    commit(warehouse, 2, "WRITE")
    commit(warehouse, 3, "OPTIMIZE")  # not wanted: advances the checkpoint, not in the call
    commit(warehouse, 4, "MERGE")
    wait_for(lambda: len(seen(project)) == 1)
    wait_for(lambda: server.client.get("/lakefn/tables").json()[0]["last_processed_version"] == 4)
    [delivery] = seen(project)
    assert delivery == {
        "versions": [2, 4],
        "operations": ["WRITE", "MERGE"],
        "rows": [2, 4],
        "metrics": [20, 40],
        "previous": 1,
    }
    status = server.client.get("/lakefn/tables").json()[0]
    assert status["source"] == "warehouse" and status["lag_versions"] == 0
    assert all("`main`.`sales`.`orders`" in q for q in warehouse.queries)
    assert warehouse.rejected == []
    assert len(warehouse.connect_calls) == 1  # one connection for every check
    time.sleep(0.2)
    assert len(seen(project)) == 1  # nothing delivered twice


def test_an_unreachable_warehouse_is_logged_once_and_then_recovers(
    project, serve, warehouse, caplog
) -> None:
    project.config(APP)
    project.function("orders", FUNCTION)
    warehouse.unreachable = True
    source = WarehouseSource(
        "/sql/1.0/warehouses/abc", config=FakeSdkConfig(), connect=warehouse.connect
    )
    with caplog.at_level(logging.ERROR, logger="lakefn.tables"):
        server = serve(project, table_source=source)
        wait_for(lambda: len(warehouse.connect_calls) >= 5)
        status = server.client.get("/lakefn/tables").json()[0]
        assert (
            "unavailable" in status["last_error"] and "Connection refused" in status["last_error"]
        )
        errors = [r for r in caplog.records if r.name == "lakefn.tables"]
        assert len(errors) == 1
        warehouse.unreachable = False
        wait_for(lambda: server.client.get("/lakefn/tables").json()[0]["last_error"] is None)
    commit(warehouse, 2, "WRITE")
    wait_for(lambda: [d["versions"] for d in seen(project)] == [[2]])


def test_auto_picks_the_warehouse_when_one_is_configured(monkeypatch) -> None:
    for name in (
        "DATABRICKS_RUNTIME_VERSION",
        "DATABRICKS_WAREHOUSE_PATH",
        "DATABRICKS_CONFIG_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    monkeypatch.setenv("DATABRICKS_WAREHOUSE_ID", "abc")
    assert choose("auto") == "local"  # a warehouse id without a workspace host is not enough
    monkeypatch.setenv("DATABRICKS_HOST", "https://example.cloud.databricks.com")
    assert choose("auto") == "warehouse"
    assert choose("local") == "local"


EARLIEST = """\
tables: {source: warehouse}
state: state.db
functions:
  - name: orders
    trigger:
      type: unity_table
      check_interval: 0.02
      start: earliest
    table_name: main.sales.orders
"""

VERSIONS = """\
import json, pathlib

def main(event):
    with open(pathlib.Path(__file__).parent.parent / "seen.jsonl", "a") as out:
        out.write(json.dumps({"versions": [c.version for c in event.commits]}) + "\\n")
"""


def table_with(commits: int) -> tuple[FakeWarehouse, FakeTable]:
    catalog = FakeCatalog()
    table = catalog.add(PARTS)
    for _ in range(commits):
        table.commit("WRITE")
    return FakeWarehouse(catalog), table


def test_a_backlog_longer_than_history_limit_arrives_once_while_commits_keep_landing(
    project, serve
) -> None:
    # 2,500 versions behind, history_limit 1,000, the watcher's batches of 1,000, and a commit
    # landing between every two queries: no version may be lost to a window that fell short.
    project.config(EARLIEST)
    project.function("orders", VERSIONS)
    warehouse, table = table_with(2_500)
    warehouse.after_query = lambda _: table.commit() if len(table.history) < 2_700 else None
    source = WarehouseSource(
        "/sql/1.0/warehouses/abc",
        config=FakeSdkConfig(),
        connect=warehouse.connect,
        history_limit=1_000,
    )
    server = serve(project, table_source=source)

    def status() -> dict:
        return server.client.get("/lakefn/tables").json()[0]

    wait_for(lambda: status()["last_processed_version"] == 2_699, timeout=60)
    delivered = [v for record in seen(project) for v in record["versions"]]
    assert delivered == list(range(2_700))  # every version, once, in order
    assert status()["gaps"] == [] and status()["last_error"] is None


def test_versions_gone_from_the_log_are_still_reported_as_a_gap(project, serve) -> None:
    project.config(EARLIEST)
    project.function("orders", VERSIONS)
    warehouse, table = table_with(50)
    table.expire_log(before=20)  # delta.logRetentionDuration passed for versions 0..19
    source = WarehouseSource(
        "/sql/1.0/warehouses/abc", config=FakeSdkConfig(), connect=warehouse.connect
    )
    server = serve(project, table_source=source)
    wait_for(lambda: server.client.get("/lakefn/tables").json()[0]["last_processed_version"] == 49)
    status = server.client.get("/lakefn/tables").json()[0]
    assert status["gaps"] == [{"after": -1, "resumed_at": 20}]
    assert [v for record in seen(project) for v in record["versions"]] == list(range(20, 50))


# -- a table dropped and created again, told by its DESCRIBE DETAIL id -----------------------

KEY = "orders|main.sales.orders"


def source_on(kind: str, catalog: FakeCatalog) -> tuple[TableSource, FakeWarehouse | SparkSession]:
    if kind == "warehouse":
        warehouse = FakeWarehouse(catalog)
        source = WarehouseSource(
            "/sql/1.0/warehouses/abc", config=FakeSdkConfig(), connect=warehouse.connect
        )
        return source, warehouse
    spark = SparkSession(catalog, version=kind.removeprefix("spark-"))  # type: ignore[arg-type]
    return SparkSource(spark), spark


def kinds_of(queries: list[str]) -> list[str]:
    return [" ".join(q.split()[:2]) if q.startswith("DESCRIBE") else q for q in queries]


@pytest.mark.parametrize("kind", ["warehouse", "spark-3.5", "spark-4.0"])
@pytest.mark.parametrize("restart", [True, False], ids=["after-a-restart", "while-watched"])
async def test_a_recreated_table_that_caught_up_with_the_checkpoint_is_delivered_from_version_0(
    project, kind: str, restart: bool
) -> None:
    project.config(EARLIEST)
    project.function("orders", VERSIONS)
    catalog = FakeCatalog()
    old = catalog.add(PARTS)
    for _ in range(3):
        old.commit("WRITE")
    source, _ = source_on(kind, catalog)
    runtime = project.runtime(table_source=source)
    await runtime.watcher.check("orders")
    assert [d["versions"] for d in seen(project)] == [[0, 1, 2]]  # the checkpoint is 2
    if restart:
        runtime.checkpoints.release(KEY, runtime.watcher.owner)  # as a server's shutdown does
        runtime.close()
    new = catalog.recreate(PARTS, commits=6)  # another table, already past version 2
    if restart:
        source, _ = source_on(kind, catalog)
        runtime = project.runtime(table_source=source)
    try:
        await runtime.watcher.check("orders")
        assert [d["versions"] for d in seen(project)] == [[0, 1, 2], [0, 1, 2, 3, 4, 5]]
        [status] = runtime.watcher.status()
        [recreated] = status["recreated"]
        assert recreated["versions"] == {"was": 2, "now": 5}
        assert recreated["table_ids"] == {"was": old.table_id, "now": new.table_id}
        assert runtime.checkpoints.load(KEY) == 5
        assert runtime.checkpoints.load_table_id(KEY) == new.table_id
    finally:
        runtime.close()


@pytest.mark.parametrize("kind", ["warehouse", "spark-3.5"])
async def test_create_or_replace_table_gives_a_new_id_but_the_history_goes_on(
    project, kind: str
) -> None:
    project.config(EARLIEST)
    project.function("orders", VERSIONS)
    catalog = FakeCatalog()
    table = catalog.add(PARTS)
    for _ in range(3):
        table.commit("WRITE")
    source, _ = source_on(kind, catalog)
    runtime = project.runtime(table_source=source)
    try:
        await runtime.watcher.check("orders")
        old_id = table.table_id
        # Delta's REPLACE writes new table metadata, with a new id, as version 3 of the same log.
        table.commit("CREATE OR REPLACE TABLE AS SELECT")
        table.table_id = str(uuid.uuid4())
        table.commit("WRITE")
        await runtime.watcher.check("orders")
        assert [d["versions"] for d in seen(project)] == [[0, 1, 2], [3, 4]]
        [status] = runtime.watcher.status()
        assert status["recreated"] == []
        assert runtime.checkpoints.load_table_id(KEY) == table.table_id != old_id
    finally:
        runtime.close()


@pytest.mark.parametrize("kind", ["warehouse", "spark-4.0"])
async def test_an_idle_check_sends_no_describe_detail(project, kind: str) -> None:
    project.config(EARLIEST)
    project.function("orders", VERSIONS)
    catalog = FakeCatalog()
    table = catalog.add(PARTS)
    for _ in range(3):
        table.commit("WRITE")
    source, double = source_on(kind, catalog)
    runtime = project.runtime(table_source=source)
    try:
        await runtime.watcher.check("orders")  # loads the checkpoint: the identity is read
        assert "DESCRIBE DETAIL" in kinds_of(double.queries)
        double.queries.clear()
        for _ in range(5):
            await runtime.watcher.check("orders")
        assert kinds_of(double.queries) == ["DESCRIBE HISTORY"] * 5  # one LIMIT 1 each
        table.commit("WRITE")
        await runtime.watcher.check("orders")  # news: the identity is read again
        assert kinds_of(double.queries[5:]).count("DESCRIBE DETAIL") == 1
        assert [d["versions"] for d in seen(project)] == [[0, 1, 2], [3]]
    finally:
        runtime.close()
