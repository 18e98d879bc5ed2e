"""The table identity a CheckpointStore keeps beside each checkpoint: the watcher compares it with
the table's own (Delta metadata id) to notice a table dropped and created again, across restarts.

One contract, run on every store through the `store` fixture (more backends join its params).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lakefn.abc import CheckpointStore
from lakefn.checkpoints.memory import MemoryCheckpointStore
from lakefn.checkpoints.postgres import PostgresCheckpointStore
from lakefn.checkpoints.sqlite import SQLiteCheckpointStore
from tests._postgres import PostgresServer, new_schema

KEY = "watch|main.sales.orders"


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CheckpointStore]:
    if request.param == "memory":
        made: CheckpointStore = MemoryCheckpointStore()
    elif request.param == "sqlite":
        made = SQLiteCheckpointStore(tmp_path / "state.db")
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        made = PostgresCheckpointStore(server.conninfo(), schema=new_schema())
    yield made
    made.close()


def test_a_key_without_a_saved_identity_has_none(store: CheckpointStore) -> None:
    assert store.load_table_id(KEY) is None


def test_a_saved_identity_is_read_back(store: CheckpointStore) -> None:
    store.save_table_id(KEY, "a6e90f84-b171-47f4-8116-5eb982421397")
    assert store.load_table_id(KEY) == "a6e90f84-b171-47f4-8116-5eb982421397"


def test_saving_again_replaces_the_identity(store: CheckpointStore) -> None:
    store.save_table_id(KEY, "old-table")
    store.save_table_id(KEY, "new-table")
    assert store.load_table_id(KEY) == "new-table"


def test_identities_are_per_key(store: CheckpointStore) -> None:
    store.save_table_id(KEY, "one")
    store.save_table_id("other|main.sales.orders", "two")
    assert store.load_table_id(KEY) == "one"
    assert store.load_table_id("other|main.sales.orders") == "two"
    assert store.load_table_id("third|main.sales.orders") is None


def test_an_identity_is_not_a_checkpoint(store: CheckpointStore) -> None:
    # Saving the identity first must not make the key look processed, nor break the
    # compare-and-set of its first checkpoint.
    store.save_table_id(KEY, "one")
    assert store.load(KEY) is None
    assert store.items() == {}
    store.save(KEY, 4, expected=None)
    assert store.load(KEY) == 4 and store.load_table_id(KEY) == "one"


def test_sqlite_identities_survive_reopening(tmp_path: Path) -> None:
    first = SQLiteCheckpointStore(tmp_path / "state.db")
    first.save(KEY, 2, expected=None)
    first.save_table_id(KEY, "a6e90f84")
    first.close()
    again = SQLiteCheckpointStore(tmp_path / "state.db")
    try:
        assert again.load_table_id(KEY) == "a6e90f84" and again.load(KEY) == 2
    finally:
        again.close()


def test_sqlite_state_file_from_before_identities_gains_them(tmp_path: Path) -> None:
    import sqlite3

    # A state file written by an older lakefn: checkpoints, no table_ids table.
    db = sqlite3.connect(tmp_path / "state.db")
    db.executescript(
        "CREATE TABLE checkpoints (key TEXT PRIMARY KEY, version INTEGER NOT NULL, "
        "updated_at REAL NOT NULL);"
        f"INSERT INTO checkpoints VALUES ('{KEY}', 7, 0);"
    )
    db.close()
    store = SQLiteCheckpointStore(tmp_path / "state.db")
    try:
        assert store.load(KEY) == 7 and store.load_table_id(KEY) is None
        store.save_table_id(KEY, "now-known")
        assert store.load_table_id(KEY) == "now-known"
    finally:
        store.close()
