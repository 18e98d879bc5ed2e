"""One contract for every TableSource, on one history.

The history is made by real writes to a local Delta table; the warehouse and Spark doubles then
serve the DESCRIBE HISTORY rows and change feed Databricks would show for it, and the recorded
source replays it. A function must see the same commits whichever source read them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakefn import Commit, TableName, TableNotFound
from lakefn.abc import TableSource
from lakefn.sources._rows import HISTORY_COLUMNS
from lakefn.sources.local import LocalDeltaSource, append, create_table, path_for
from lakefn.sources.recorded import RecordedSource
from lakefn.sources.spark import SparkSource
from lakefn.sources.warehouse import WarehouseSource
from tests.fakes.catalog import FakeCatalog
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
    catalog.mirror(TABLE.parts, [dict(c.raw) for c in history.commits], history.changes)
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
