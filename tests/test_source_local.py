"""LocalDeltaSource on real Delta tables written with deltalake."""

from __future__ import annotations

import json
import os
import shutil
import threading
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lakefn import ChangeDataFeedUnavailable, TableError, TableName, TableNameError, TableNotFound
from lakefn.sources import local as local_module
from lakefn.sources.local import LocalDeltaSource, append, create_table, path_for

TABLE = TableName.parse("main.sales.orders")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "catalog"


def log_file(root: Path, version: int, table: TableName = TABLE) -> Path:
    return path_for(root, table) / "_delta_log" / f"{version:020d}.json"


def write_bare_commits(root: Path, first: int, count: int, table: TableName = TABLE) -> None:
    """Commits holding only commitInfo, as fast as files can be written: long histories."""
    for version in range(first, first + count):
        info = {"timestamp": 1_700_000_000_000 + version, "operation": "SET TBLPROPERTIES"}
        log_file(root, version, table).write_text(json.dumps({"commitInfo": info}) + "\n")


def test_helpers_create_append_overwrite(root: Path) -> None:
    assert create_table(root, "main.sales.orders", [{"id": 1}]) == 0
    assert append(root, "main.sales.orders", [{"id": 2}]) == 1
    assert append(root, TABLE, pa.table({"id": [7]}), mode="overwrite") == 2
    assert DeltaTable(str(path_for(root, TABLE))).to_pyarrow_table()["id"].to_pylist() == [7]
    source = LocalDeltaSource(root)
    commits = source.commits_since(TABLE, -1)
    assert [c.operation_parameters["mode"] for c in commits] == [
        "ErrorIfExists",
        "Append",
        "Overwrite",
    ]
    assert commits[1].operation_metrics["num_added_rows"] == 1


def test_helpers_refuse_what_would_go_wrong(root: Path) -> None:
    create_table(root, TABLE, [{"id": 1}])
    with pytest.raises(TableError, match="already exists"):
        create_table(root, TABLE, [{"id": 1}])
    with pytest.raises(TableNotFound):
        append(root, "main.sales.nope", [{"id": 1}])
    with pytest.raises(TableError, match="cannot append"):
        append(root, TABLE, [{"other": "text"}])
    for climbing in ("main.`..`.orders", "main.`a/b`.orders", "main.sales.`.`"):
        with pytest.raises(TableNameError):
            path_for(root, climbing)


def test_create_table_operation_as_deltalake_writes_it(root: Path) -> None:
    DeltaTable.create(str(path_for(root, TABLE)), pa.schema([("id", pa.int64())]))
    append(root, TABLE, [{"id": 1}])
    commits = LocalDeltaSource(root).commits_since(TABLE, -1)
    assert [(c.version, c.operation) for c in commits] == [(0, "CREATE TABLE"), (1, "WRITE")]


def test_new_versions_from_another_writer_are_seen(root: Path) -> None:
    create_table(root, TABLE, [{"id": 1}])
    source = LocalDeltaSource(root)
    assert source.latest_version(TABLE) == 0
    for n in range(2, 9):
        append(root, TABLE, [{"id": n}])
    assert source.latest_version(TABLE) == 7
    assert [c.version for c in source.commits_since(TABLE, 0)] == list(range(1, 8))
    assert [c.version for c in source.commits_since(TABLE, 0, limit=3)] == [1, 2, 3]


def test_missing_and_dropped_tables_are_not_found(root: Path) -> None:
    source = LocalDeltaSource(root)
    with pytest.raises(TableNotFound):
        source.latest_version(TABLE)
    create_table(root, TABLE, [{"id": 1}])
    assert source.latest_version(TABLE) == 0
    shutil.rmtree(path_for(root, TABLE))
    with pytest.raises(TableNotFound):
        source.latest_version(TABLE)
    with pytest.raises(TableNotFound):
        source.commits_since(TABLE, -1)


def test_recreated_table_starts_over(root: Path) -> None:
    create_table(root, TABLE, [{"id": 1}])
    for n in range(3):
        append(root, TABLE, [{"id": n}])
    source = LocalDeltaSource(root)
    assert source.latest_version(TABLE) == 3
    shutil.rmtree(path_for(root, TABLE))
    create_table(root, TABLE, [{"id": 1}])
    assert source.latest_version(TABLE) == 0


def test_changes_follow_new_commits(root: Path) -> None:
    create_table(root, TABLE, [{"id": 1, "item": "tea"}])
    source = LocalDeltaSource(root)
    assert source.changes(TABLE, 0, 0)["item"].to_pylist() == ["tea"]
    append(root, TABLE, [{"id": 2, "item": "rice"}])
    source.latest_version(TABLE)
    changes = source.changes(TABLE, 1, 1)
    assert changes.to_pylist()[0] | {"_commit_timestamp": None} == {
        "id": 2,
        "item": "rice",
        "_change_type": "insert",
        "_commit_version": 1,
        "_commit_timestamp": None,
    }


def test_changes_without_change_data_feed(root: Path) -> None:
    create_table(root, TABLE, [{"id": 1}], change_data_feed=False)
    append(root, TABLE, [{"id": 2}])
    with pytest.raises(ChangeDataFeedUnavailable, match="enableChangeDataFeed"):
        LocalDeltaSource(root).changes(TABLE, 0, 1)


def test_history_gap_after_log_cleanup(root: Path) -> None:
    create_table(root, TABLE, [{"id": 0}])
    for n in range(1, 6):
        append(root, TABLE, [{"id": n}])
    DeltaTable(str(path_for(root, TABLE))).create_checkpoint()
    assert (log_file(root, 5).parent / f"{5:020d}.checkpoint.parquet").exists()
    for version in range(4):
        log_file(root, version).unlink()
    source = LocalDeltaSource(root)
    assert source.latest_version(TABLE) == 5
    assert [c.version for c in source.commits_since(TABLE, -1)] == [4, 5]
    assert [c.version for c in source.commits_since(TABLE, 1)] == [4, 5]
    append(root, TABLE, [{"id": 6}])  # the table still works on from its checkpoint
    assert [c.version for c in source.commits_since(TABLE, 4)] == [5, 6]


def test_commit_without_commit_info_still_appears(root: Path) -> None:
    create_table(root, TABLE, [{"id": 0}])
    log_file(root, 1).write_text('{"txn":{"appId":"x","version":1}}\n')
    commit = LocalDeltaSource(root).commits_since(TABLE, 0)[0]
    assert (commit.version, commit.operation) == (1, "UNKNOWN")
    assert abs(commit.timestamp - datetime.now(timezone.utc)).total_seconds() < 60


def test_in_commit_timestamp_is_the_commit_time(root: Path) -> None:
    create_table(root, TABLE, [{"id": 0}])
    info = {"timestamp": 1, "inCommitTimestamp": 1_700_000_000_000, "operation": "WRITE"}
    log_file(root, 1).write_text(json.dumps({"commitInfo": info}) + "\n")
    commit = LocalDeltaSource(root).commits_since(TABLE, 0)[0]
    assert commit.timestamp == datetime.fromtimestamp(1_700_000_000, tz=timezone.utc)


class FileCalls:
    """Counts what the source asks of the filesystem, and forbids reloading the table."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.exists = self.scandir = self.opened = 0
        real_exists, real_scandir, real_open = Path.exists, os.scandir, Path.open

        def exists(path: Path, *args: object, **kwargs: object) -> bool:
            self.exists += 1
            return real_exists(path, *args, **kwargs)  # type: ignore[arg-type]

        def scandir(path: object) -> object:
            self.scandir += 1
            return real_scandir(path)  # type: ignore[call-overload]

        def opened(path: Path, *args: object, **kwargs: object) -> object:
            self.opened += 1
            return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

        def no_reload(*args: object, **kwargs: object) -> None:
            raise AssertionError("a check loaded the whole table")

        monkeypatch.setattr(Path, "exists", exists)
        monkeypatch.setattr(Path, "open", opened)
        monkeypatch.setattr(local_module.os, "scandir", scandir)
        monkeypatch.setattr(local_module, "DeltaTable", no_reload)

    def reset(self) -> tuple[int, int, int]:
        counts = (self.exists, self.scandir, self.opened)
        self.exists = self.scandir = self.opened = 0
        return counts


def _check_costs(root: Path, history: int, monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    table = TableName("main", "bench", f"h{history}")
    create_table(root, table, [{"id": 0}])
    write_bare_commits(root, 1, history - 1, table)
    source = LocalDeltaSource(root)
    assert source.latest_version(table) == history - 1  # first look may list the log
    with monkeypatch.context() as patch:
        calls = FileCalls(patch)
        assert source.latest_version(table) == history - 1
        idle = calls.reset()
        write_bare_commits(root, history, 3, table)
        assert source.latest_version(table) == history + 2
        new = calls.reset()
        assert len(source.commits_since(table, history - 1)) == 3
        read = calls.reset()
    return [idle, new, read]


def test_checking_costs_the_same_whatever_the_history_length(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    costs = {n: _check_costs(root, n, monkeypatch) for n in (1, 1_000, 10_000)}
    assert costs[1] == costs[1_000] == costs[10_000]
    idle, new, read = costs[10_000]
    assert idle == (2, 0, 0)  # this version's file still there, the next one not yet
    assert read[1:] == (0, 3)  # three new commits: three files read, no listing


def test_checks_from_many_threads_while_a_writer_commits(root: Path) -> None:
    create_table(root, TABLE, [{"id": 0}])
    source = LocalDeltaSource(root)
    seen: list[list[int]] = [[] for _ in range(4)]
    done = threading.Event()

    def check(mine: list[int]) -> None:
        while not done.is_set():
            mine.append(source.latest_version(TABLE))

    threads = [threading.Thread(target=check, args=(mine,)) for mine in seen]
    for thread in threads:
        thread.start()
    for n in range(1, 11):
        write_deltalake(str(path_for(root, TABLE)), pa.table({"id": [n]}), mode="append")
    done.set()
    for thread in threads:
        thread.join()
    assert all(mine == sorted(mine) for mine in seen)
    assert source.latest_version(TABLE) == 10
    assert [c.version for c in source.commits_since(TABLE, -1)] == list(range(11))
