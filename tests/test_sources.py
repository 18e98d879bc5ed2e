"""One contract for every TableSource, on one history.

The history is made by real writes to a local Delta table; the warehouse and Spark doubles then
serve the DESCRIBE HISTORY rows and change feed Databricks would show for it, and the recorded
source replays it. A function must see the same commits whichever source read them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakefn import (
    ChangeDataFeedUnavailable,
    Commit,
    SourceUnavailable,
    TableName,
    TableNotFound,
)
from lakefn.abc import TableSource
from lakefn.sources._errors import KNOWN_ERRORS, error_class, sqlstate
from lakefn.sources._rows import HISTORY_COLUMNS
from lakefn.sources.local import LocalDeltaSource, append, create_table, path_for
from lakefn.sources.recorded import RecordedSource
from lakefn.sources.spark import SparkSource
from lakefn.sources.warehouse import WarehouseSource
from lakefn.watching import MAX_BATCH
from tests.fakes.catalog import FakeCatalog, FakeTable, missing_change_data_message
from tests.fakes.databricks_sql import FakeWarehouse
from tests.fakes.spark import SparkSession

TABLE = TableName.parse("main.sales.orders")
OPERATIONS = ["WRITE", "WRITE", "DELETE", "MERGE", "WRITE", "OPTIMIZE"]


class FakeSdkConfig:
    """The two members of databricks.sdk.core.Config the warehouse source uses."""

    host = "https://example.cloud.databricks.com"

    def authenticate(self) -> dict[str, str]:
        return {"Authorization": "Bearer dapi-test-token"}


@dataclass
class History:
    root: Path
    commits: list[Commit]
    changes: pa.Table


def write_history(root: Path) -> History:
    """Six real commits, with the change data feed on."""
    create_table(root, TABLE, [{"id": 1, "item": "tea"}, {"id": 2, "item": "rice"}])
    append(root, TABLE, [{"id": 3, "item": "salt"}])
    table = DeltaTable(str(path_for(root, TABLE)))
    table.delete("id = 2")
    source = pa.table({"id": [3, 4], "item": ["sea salt", "oil"]})
    (
        table.merge(source, "t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )
    append(root, TABLE, [{"id": 5, "item": "milk"}])
    table.update_incremental()
    table.optimize.compact()
    local = LocalDeltaSource(root)
    commits = local.commits_since(TABLE, -1)
    return History(root, commits, local.changes(TABLE, 0, commits[-1].version))


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    return write_history(tmp_path_factory.mktemp("catalog"))


def _local(history: History) -> TableSource:
    return LocalDeltaSource(history.root)


def _catalog(history: History) -> FakeCatalog:
    catalog = FakeCatalog()
    real_id = DeltaTable(str(path_for(history.root, TABLE))).metadata().id
    catalog.mirror(
        TABLE.parts, [dict(c.raw) for c in history.commits], history.changes, table_id=real_id
    )
    return catalog


def _warehouse(maps: str) -> Callable[[History], TableSource]:
    def make(history: History) -> TableSource:
        warehouse = FakeWarehouse(_catalog(history), maps=maps)  # type: ignore[arg-type]
        return WarehouseSource(
            "/sql/1.0/warehouses/abc", config=FakeSdkConfig(), connect=warehouse.connect
        )

    return make


def _spark(history: History) -> TableSource:
    return SparkSource(SparkSession(_catalog(history)))


def _recorded(history: History) -> TableSource:
    source = RecordedSource()
    for commit in history.commits:
        versions = history.changes.column("_commit_version").to_pylist()
        mine = history.changes.filter(pa.array([v == commit.version for v in versions]))
        rows = mine.drop_columns(["_commit_version", "_commit_timestamp"]).to_pylist()
        source.append_commit(
            TABLE,
            commit.operation,
            rows=rows,
            parameters=commit.raw["operationParameters"],
            metrics=commit.raw["operationMetrics"],
            timestamp=commit.timestamp,
            version=commit.version,
        )
    return source


SOURCES = {
    "local": _local,
    "warehouse-pairs": _warehouse("pairs"),
    "warehouse-json": _warehouse("json"),
    "spark": _spark,
    "recorded": _recorded,
}


@pytest.fixture(params=list(SOURCES))
def source(request: pytest.FixtureRequest, history: History) -> Iterator[TableSource]:
    made = SOURCES[request.param](history)
    yield made
    made.close()


def test_the_history_has_the_operations_delta_writes(history: History) -> None:
    assert [c.operation for c in history.commits] == OPERATIONS
    assert [c.version for c in history.commits] == list(range(6))


def test_latest_version(source: TableSource) -> None:
    assert source.latest_version(TABLE) == 5


def test_whole_history_is_the_same_commits(source: TableSource, history: History) -> None:
    commits = source.commits_since(TABLE, -1)
    assert commits == history.commits
    assert all(c.timestamp.tzinfo == timezone.utc for c in commits)
    assert all(set(HISTORY_COLUMNS) <= set(c.raw) for c in commits)


def test_commits_after_a_version_oldest_first_with_limit(source: TableSource) -> None:
    assert [c.version for c in source.commits_since(TABLE, 2)] == [3, 4, 5]
    assert [c.version for c in source.commits_since(TABLE, 2, limit=2)] == [3, 4]
    assert source.commits_since(TABLE, 5) == []


def test_parameters_and_metrics_are_python_values(source: TableSource) -> None:
    delete, merge = source.commits_since(TABLE, 1, limit=2)
    assert delete.operation_parameters == {"predicate": "id = 2"}
    assert delete.operation_metrics["num_deleted_rows"] == 1
    # Delta stores JSON inside map values as text; it arrives decoded.
    assert merge.operation_parameters["matchedPredicates"] == [{"actionType": "update"}]
    assert merge.operation_metrics["num_target_rows_inserted"] == 1


def test_changes_are_the_change_feed_rows(source: TableSource) -> None:
    changes = source.changes(TABLE, 2, 3)
    assert changes.schema.field("_commit_version").type == pa.int64()
    assert changes.schema.field("_commit_timestamp").type == pa.timestamp("us", tz="UTC")
    seen = sorted(
        zip(
            changes.column("_commit_version").to_pylist(),
            changes.column("_change_type").to_pylist(),
            changes.column("item").to_pylist(),
            strict=True,
        )
    )
    assert seen == [
        (2, "delete", "rice"),
        (3, "insert", "oil"),
        (3, "update_postimage", "sea salt"),
        (3, "update_preimage", "salt"),
    ]


def test_unknown_table_is_table_not_found(source: TableSource) -> None:
    other = TableName.parse("main.sales.nope")
    with pytest.raises(TableNotFound):
        source.latest_version(other)
    with pytest.raises(TableNotFound):
        source.commits_since(other, -1)
    if not isinstance(source, RecordedSource):  # it knows no identity of a table it never saw
        with pytest.raises(TableNotFound):
            source.table_id(other)


@pytest.mark.parametrize("name", ["local", "warehouse-pairs", "warehouse-json", "spark"])
def test_the_table_id_is_the_delta_table_id(name: str, history: History) -> None:
    # What a recreated table is recognised by: the same id whichever source reads it.
    source = SOURCES[name](history)
    assert source.table_id(TABLE) == DeltaTable(str(path_for(history.root, TABLE))).metadata().id


# -- Databricks sources: history through DESCRIBE HISTORY ... LIMIT n only ------------------
#
# Both Databricks sources share one way of reading history (lakefn/sources/_history.py); these
# tests run it through every double: the warehouse with either map encoding, Spark as pyspark
# 3.5 (Databricks Runtime 15.x) and as pyspark 4.


@dataclass
class Databricks:
    """A source on a double of one table, and the double to look at."""

    source: WarehouseSource | SparkSource
    double: FakeWarehouse | SparkSession
    table: FakeTable

    def history_queries(self) -> list[str]:
        return [q for q in self.double.queries if q.startswith("DESCRIBE HISTORY")]

    def detail_queries(self) -> list[str]:
        return [q for q in self.double.queries if q.startswith("DESCRIBE DETAIL")]

    def on_each_query(self, hook: Callable[[str], None]) -> None:
        self.double.after_query = hook

    def drain(self, after: int, batch: int = MAX_BATCH) -> list[int]:
        """What the watcher does, check after check, until nothing is new: the versions got."""
        got: list[int] = []
        while True:
            if self.source.latest_version(TABLE) <= after:
                return got
            commits = self.source.commits_since(TABLE, after, batch)
            got += [c.version for c in commits]
            after = commits[-1].version


DOUBLES = ["warehouse-pairs", "warehouse-json", "spark-3.5", "spark-4.0"]


def databricks(kind: str, commits: int, *, history_limit: int = 10_000) -> Databricks:
    catalog = FakeCatalog()
    table = catalog.add(TABLE.parts)
    for _ in range(commits):
        table.commit("WRITE", metrics={"numOutputRows": 1})
    if kind.startswith("warehouse"):
        warehouse = FakeWarehouse(catalog, maps=kind.split("-")[1])  # type: ignore[arg-type]
        source: WarehouseSource | SparkSource = WarehouseSource(
            "/sql/1.0/warehouses/abc",
            config=FakeSdkConfig(),
            connect=warehouse.connect,
            history_limit=history_limit,
        )
        return Databricks(source, warehouse, table)
    spark = SparkSession(catalog, version=kind.split("-")[1])  # type: ignore[arg-type]
    return Databricks(SparkSource(spark, history_limit=history_limit), spark, table)


@pytest.fixture(params=DOUBLES)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_an_idle_check_reads_one_row(kind: str) -> None:
    db = databricks(kind, 10)
    assert db.drain(after=9) == []
    assert db.history_queries() == ["DESCRIBE HISTORY `main`.`sales`.`orders` LIMIT 1"]
    assert db.double.history_rows == 1


def test_a_check_with_one_new_commit_is_one_query(kind: str) -> None:
    db = databricks(kind, 10)
    assert db.source.latest_version(TABLE) == 9
    assert [c.version for c in db.source.commits_since(TABLE, 8, MAX_BATCH)] == [9]
    assert db.history_queries() == ["DESCRIBE HISTORY `main`.`sales`.`orders` LIMIT 1"]


def test_history_is_never_read_without_limit(kind: str) -> None:
    db = databricks(kind, 50, history_limit=10)
    db.on_each_query(lambda _: db.table.commit() if len(db.table.history) < 60 else None)
    assert db.drain(after=-1, batch=7) == list(range(60))
    assert db.source.commits_since(TABLE, -1)[-1].version == 59  # no limit: all of it
    queries = db.history_queries()
    assert queries and all(re.fullmatch(r".* LIMIT [1-9][0-9]*", q) for q in queries), queries


def test_a_backlog_longer_than_history_limit_with_commits_landing_between_queries(
    kind: str,
) -> None:
    # A backlog over history_limit and a commit landing after every query (LIMIT 1 included)
    # used to end in a window that stopped short of after + 1: a false gap, versions lost.
    db = databricks(kind, 350, history_limit=100)
    db.on_each_query(lambda _: db.table.commit() if len(db.table.history) < 500 else None)
    got = db.drain(after=-1, batch=40)
    assert got == list(range(len(db.table.history)))  # each version once, in order, from 0
    assert len(got) == 500


@pytest.mark.parametrize("kind", ["warehouse-pairs", "spark-3.5"])
def test_draining_a_20000_commit_backlog_reads_at_most_twice_its_length(kind: str) -> None:
    db = databricks(kind, 20_000)
    assert db.drain(after=-1) == list(range(20_000))
    assert db.double.history_rows <= 2 * 20_000
    assert len(db.history_queries()) <= 2 * 20_000 // MAX_BATCH + 5


def test_versions_gone_from_the_log_are_a_real_gap(kind: str) -> None:
    db = databricks(kind, 30)
    db.table.expire_log(before=20)  # delta.logRetentionDuration passed for versions 0..19
    assert db.source.latest_version(TABLE) == 29
    assert [c.version for c in db.source.commits_since(TABLE, 5, MAX_BATCH)] == list(range(20, 30))


def test_commits_landing_faster_than_the_history_is_read_is_source_unavailable(
    kind: str,
) -> None:
    db = databricks(kind, 20)
    db.source.history.attempts = 2
    landed = [10]

    def flood(_: str) -> None:
        for _ in range(landed[0]):
            db.table.commit()
        landed[0] *= 10

    db.on_each_query(flood)
    with pytest.raises(SourceUnavailable, match="faster than its history can be read"):
        db.source.commits_since(TABLE, 0, MAX_BATCH)


def test_kept_rows_of_a_dropped_and_recreated_table_are_not_served(kind: str) -> None:
    db = databricks(kind, 30, history_limit=30)
    assert db.source.latest_version(TABLE) == 29
    assert len(db.source.commits_since(TABLE, 5, 3)) == 3  # versions 6..29 kept
    read = db.double.history_rows
    db.table.history = []
    for _ in range(12):
        db.table.commit("CREATE TABLE" if not db.table.history else "MERGE")
    assert db.source.latest_version(TABLE) == 11
    assert [c.operation for c in db.source.commits_since(TABLE, 5, 3)] == ["MERGE"] * 3
    # LIMIT 1, then the new table's rows: read again, not served from the old table's.
    assert db.double.history_rows > read + 1


def test_a_dropped_and_created_table_has_a_new_table_id(kind: str) -> None:
    db = databricks(kind, 5)
    first = db.source.table_id(TABLE)
    assert first == db.table.table_id and re.fullmatch(r"[0-9a-f-]{36}", first)
    assert db.source.table_id(TABLE) == first  # the same table, the same id
    db.double.catalog.recreate(TABLE.parts, commits=8)
    second = db.source.table_id(TABLE)
    assert second is not None and second != first
    assert db.detail_queries() == ["DESCRIBE DETAIL `main`.`sales`.`orders`"] * 3
    assert db.double.history_rows == 0  # the identity costs no history read


def test_rows_kept_for_a_table_dropped_and_created_are_not_served_after_its_new_id(
    kind: str,
) -> None:
    # The old table's rows kept ahead of a batch must not pass for the new table's: its versions
    # went up, not back, so only the new id tells them apart.
    db = databricks(kind, 0, history_limit=30)
    for _ in range(30):
        db.table.commit("MERGE")
    assert db.source.latest_version(TABLE) == 29
    assert len(db.source.commits_since(TABLE, 1, 1)) == 1  # versions 2..29 kept
    db.source.table_id(TABLE)
    new = db.double.catalog.recreate(TABLE.parts, commits=40)  # CREATE TABLE, then WRITEs
    assert db.source.latest_version(TABLE) == 39
    assert db.source.table_id(TABLE) == new.table_id
    assert [c.operation for c in db.source.commits_since(TABLE, 2, 3)] == ["WRITE"] * 3


def test_a_table_that_is_not_delta_has_no_table_id(kind: str) -> None:
    db = databricks(kind, 1)
    db.table.delta = False  # DESCRIBE DETAIL answers, with a null id
    assert db.source.table_id(TABLE) is None


@pytest.mark.parametrize(
    ("break_it", "condition"),
    [
        (lambda t: setattr(t, "changes", None), "DELTA_MISSING_CHANGE_DATA"),
        (lambda t: setattr(t, "change_files_from", 3), "DELTA_CHANGE_DATA_FILE_NOT_FOUND"),
        (
            lambda t: (setattr(t, "change_files_from", 3), setattr(t, "vacuumed_condition", "")),
            "FAILED_READ_FILE",
        ),
        (None, "DELTA_INVALID_CDC_RANGE"),
    ],
)
def test_change_feed_failures_are_change_data_feed_unavailable(
    kind: str, break_it: Callable[[FakeTable], object] | None, condition: str
) -> None:
    db = databricks(kind, 5)
    db.table.changes = pa.table(
        {
            "id": [1, 2, 3, 4],
            "_change_type": ["insert"] * 4,
            "_commit_version": [1, 2, 3, 4],
            "_commit_timestamp": [row["timestamp"] for row in db.table.history[1:]],
        }
    )
    start, end = (2, 4) if break_it else (4, 2)
    if break_it:
        break_it(db.table)
    with pytest.raises(ChangeDataFeedUnavailable, match=condition) as raised:
        db.source.changes(TABLE, start, end)
    # The double raised it as Databricks would, with the SQLSTATE lakefn's table lists.
    driver_error = raised.value.__cause__
    assert driver_error is not None
    assert error_class(driver_error) == condition
    assert sqlstate(driver_error) == KNOWN_ERRORS[condition].sqlstate


@pytest.mark.parametrize("read", ["latest_version", "table_id"])
def test_a_missing_table_raises_what_the_error_table_lists(kind: str, read: str) -> None:
    db = databricks(kind, 1)
    with pytest.raises(TableNotFound) as raised:
        getattr(db.source, read)(TableName.parse("main.sales.nope"))
    driver_error = raised.value.__cause__
    assert driver_error is not None and error_class(driver_error) == "TABLE_OR_VIEW_NOT_FOUND"
    assert sqlstate(driver_error) == KNOWN_ERRORS["TABLE_OR_VIEW_NOT_FOUND"].sqlstate == "42P01"


def test_delta_missing_change_data_has_deltas_sqlstate() -> None:
    # delta-error-classes.json says KD002; the double used to say 42K03.
    assert KNOWN_ERRORS["DELTA_MISSING_CHANGE_DATA"].sqlstate == "KD002"
    assert missing_change_data_message(0, 1).endswith("SQLSTATE: KD002")


def test_a_stale_newest_commit_is_asked_again(kind: str) -> None:
    # The LIMIT 1 row stands in for a second LIMIT 1 only within the same check; a caller
    # coming back later (a replay, `lakefn run`) must see the commits that landed meanwhile.
    db = databricks(kind, 10)
    now = [100.0]
    db.source.history.clock = lambda: now[0]
    assert db.source.latest_version(TABLE) == 9
    db.table.commit()
    now[0] += db.source.history.fresh_for + 1
    assert [c.version for c in db.source.commits_since(TABLE, 8, MAX_BATCH)] == [9, 10]
