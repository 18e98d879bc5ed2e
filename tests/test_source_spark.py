"""SparkSource against a SparkSession double (tests/fakes/spark.py)."""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from lakefn import ChangeDataFeedUnavailable, SourceUnavailable, TableName, TableNotFound
from lakefn.sources.spark import SparkSource, active_spark_session
from tests.fakes.catalog import Failure, FakeCatalog, FakeTable, history_row
from tests.fakes.spark import AnalysisException, SparkSession

TABLE = TableName.parse("main.sales.orders")
START = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def commits(count: int) -> list[dict]:
    return [
        history_row(
            v,
            "MERGE" if v % 2 else "WRITE",
            timestamp=START + timedelta(minutes=v),
            parameters={"predicate": '["(id = 1)"]'},
            metrics={"numOutputRows": v},
            job={"jobId": "77", "runId": "1"} if v == 1 else None,
        )
        for v in range(count)
    ]


@pytest.fixture
def catalog() -> FakeCatalog:
    catalog = FakeCatalog()
    versions = [0, 1, 2]
    changes = pa.table(
        {
            "id": versions,
            "_change_type": ["insert"] * 3,
            "_commit_version": versions,
            "_commit_timestamp": [START] * 3,
        }
    )
    catalog.add(TABLE.parts, FakeTable(commits(3), changes))
    return catalog


@pytest.fixture
def spark(catalog: FakeCatalog) -> SparkSession:
    return SparkSession(catalog)


@pytest.fixture
def source(spark: SparkSession) -> SparkSource:
    return SparkSource(spark)


def test_history_through_spark_sql(source: SparkSource, spark: SparkSession) -> None:
    assert source.latest_version(TABLE) == 2
    found = source.commits_since(TABLE, 0)
    assert [c.version for c in found] == [1, 2]
    assert found[0].operation == "MERGE"
    assert found[0].operation_parameters == {"predicate": ["(id = 1)"]}
    assert found[0].raw["job"] == {"jobId": "77", "runId": "1"}  # struct Row -> dict
    assert spark.queries == [
        "DESCRIBE HISTORY `main`.`sales`.`orders` LIMIT 1",
        "DESCRIBE HISTORY `main`.`sales`.`orders` LIMIT 2",
    ]
    assert [c.version for c in source.commits_since(TABLE, -1, limit=2)] == [0, 1]


@pytest.fixture
def new_york() -> Iterator[None]:
    import os

    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("new_york")
def test_local_time_from_pyspark_becomes_utc(source: SparkSource) -> None:
    # pyspark hands back naive local times; on a laptop in New York that is not UTC.
    assert source.commits_since(TABLE, -1)[0].timestamp == START


def test_missing_table_is_table_not_found(source: SparkSource) -> None:
    with pytest.raises(TableNotFound):
        source.latest_version(TableName.parse("main.sales.nope"))
    with pytest.raises(TableNotFound):
        source.changes(TableName.parse("main.sales.nope"), 0, 1)


def test_changes_through_the_change_feed_reader(source: SparkSource, spark: SparkSession) -> None:
    changes = source.changes(TABLE, 1, 2)
    assert changes.column("_commit_version").to_pylist() == [1, 2]
    assert changes.schema.field("_commit_timestamp").type == pa.timestamp("us", tz="UTC")
    assert spark.queries[-1] == "read.table(`main`.`sales`.`orders`)"


def test_changes_without_change_data_feed(source: SparkSource, catalog: FakeCatalog) -> None:
    catalog.tables[TABLE.parts].changes = None
    with pytest.raises(ChangeDataFeedUnavailable):
        source.changes(TABLE, 0, 2)


def test_other_spark_failures_are_source_unavailable(spark: SparkSession) -> None:
    def broken(query: str) -> None:
        failure = Failure(
            "INSUFFICIENT_PERMISSIONS",
            "42501",
            "Insufficient privileges: User does not have USE CATALOG on Catalog 'main'.",
        )
        raise AnalysisException(failure, "4.0")

    spark.sql = broken  # type: ignore[method-assign]
    with pytest.raises(SourceUnavailable, match="INSUFFICIENT_PERMISSIONS"):
        SparkSource(spark).latest_version(TABLE)
    with pytest.raises(SourceUnavailable, match="INSUFFICIENT_PERMISSIONS"):
        SparkSource(spark).table_id(TABLE)


def test_strange_names_reach_spark_only_quoted(catalog: FakeCatalog, source: SparkSource) -> None:
    name = TableName.parse("a.b.`c`` ; --`")
    catalog.add(name.parts, FakeTable(commits(2)))
    assert [c.version for c in source.commits_since(name, -1)] == [0, 1]
    assert source.table_id(name) == catalog.tables[name.parts].table_id


def test_notebook_spark_is_found(monkeypatch: pytest.MonkeyPatch, spark: SparkSession) -> None:
    shell = types.SimpleNamespace(user_ns={"spark": spark})
    fake_ipython = types.SimpleNamespace(get_ipython=lambda: shell)
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert active_spark_session(connect=False) is spark
    source = SparkSource.from_environment(connect=False)
    assert source is not None and source.spark is spark


def test_no_session_anywhere_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.delitem(sys.modules, "pyspark.sql", raising=False)
    assert active_spark_session(connect=False) is None
    assert SparkSource.from_environment(connect=False) is None


def test_databricks_connect_session_when_installed(
    monkeypatch: pytest.MonkeyPatch, spark: SparkSession
) -> None:
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.delitem(sys.modules, "pyspark.sql", raising=False)
    builder = types.SimpleNamespace(getOrCreate=lambda: spark)
    module = types.SimpleNamespace(DatabricksSession=types.SimpleNamespace(builder=builder))
    monkeypatch.setitem(sys.modules, "databricks.connect", module)
    assert active_spark_session() is spark


def test_databricks_connect_not_installed_or_not_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.delitem(sys.modules, "pyspark.sql", raising=False)
    monkeypatch.setitem(sys.modules, "databricks.connect", None)  # import fails
    assert active_spark_session() is None

    def unconfigured() -> None:
        raise ValueError("cannot configure default credentials")

    builder = types.SimpleNamespace(getOrCreate=unconfigured)
    module = types.SimpleNamespace(DatabricksSession=types.SimpleNamespace(builder=builder))
    monkeypatch.setitem(sys.modules, "databricks.connect", module)
    assert active_spark_session() is None


@pytest.mark.parametrize("version", ["3.5", "4.0"])
@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Asia/Kolkata", "+02:00"])
def test_change_timestamps_are_utc_whatever_the_session_time_zone(
    catalog: FakeCatalog, version: str, zone: str
) -> None:
    # pyspark 3.5 has no toArrow: toPandas() hands TIMESTAMP columns back as naive wall-clock
    # times of spark.sql.session.timeZone. Read as UTC they would shift by the zone's offset.
    instants = [START, START + timedelta(days=180, minutes=7), START + timedelta(hours=5)]
    wall_clock = [datetime(2024, 5, 1, 8, 30), datetime(2024, 6, 2, 9, 0), datetime(2024, 7, 3)]
    catalog.tables[TABLE.parts].changes = pa.table(
        {
            "id": [0, 1, 2],
            "happened": pa.array(instants, pa.timestamp("us", tz="UTC")),  # TIMESTAMP
            "local_day": pa.array(wall_clock, pa.timestamp("us")),  # TIMESTAMP_NTZ
            "_change_type": ["insert"] * 3,
            "_commit_version": [0, 1, 2],
            "_commit_timestamp": pa.array(instants, pa.timestamp("us", tz="UTC")),
        }
    )
    spark = SparkSession(catalog, version=version, time_zone=zone)  # type: ignore[arg-type]
    changes = SparkSource(spark).changes(TABLE, 0, 2)
    assert changes.column("_commit_timestamp").to_pylist() == instants
    happened = changes.column("happened").cast(pa.timestamp("us", tz="UTC"))
    assert happened.to_pylist() == instants
    assert changes.column("local_day").cast(pa.timestamp("us")).to_pylist() == wall_clock


def test_pyspark_3_5_has_no_to_arrow_and_4_has(catalog: FakeCatalog) -> None:
    # What makes the test above meaningful: the 3.5 double really takes the toPandas() road.
    old = SparkSession(catalog, version="3.5").read.format("delta")
    frame = (
        old.option("readChangeFeed", "true")
        .option("startingVersion", 0)
        .option("endingVersion", 1)
        .table(TABLE.sql)
    )
    assert not hasattr(frame, "toArrow")
    assert hasattr(SparkSession(catalog).frame(rows=[]), "toArrow")


@pytest.mark.parametrize("version", ["3.5", "4.0"])
def test_the_condition_is_read_the_way_each_pyspark_offers_it(
    catalog: FakeCatalog, version: str
) -> None:
    # pyspark 4 deprecates getErrorClass() with a FutureWarning (an error in this test run):
    # the source asks getCondition() first. 3.5 has only getErrorClass().
    spark = SparkSession(catalog, version=version)  # type: ignore[arg-type]
    with pytest.raises(TableNotFound) as raised:
        SparkSource(spark).latest_version(TableName.parse("main.sales.nope"))
    cause = raised.value.__cause__
    assert hasattr(cause, "getCondition") == (version == "4.0")
