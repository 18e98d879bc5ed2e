"""The journal's history in the state store: SQLite and PostgreSQL alike, across restarts and
processes, with retention, and never in the way of a function when the store is gone."""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from lakefn import ConfigError
from lakefn.abc import CheckpointStore
from lakefn.checkpoints.selection import open_store
from lakefn.checkpoints.sqlite_journal import SQLiteJournal
from lakefn.config import parse_config
from lakefn.journal import Invocation, Journal, JournalStore, journal_store_for
from tests._postgres import PostgresServer, new_schema
from tests.conftest import ProjectDir


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url(schema=new_schema())


@pytest.fixture
def state_store(state: str, tmp_path: Path) -> Iterator[CheckpointStore]:
    store = open_store(state, tmp_path)
    yield store
    store.close()


@pytest.fixture
def journal_store(state_store: CheckpointStore) -> Iterator[JournalStore]:
    """The journal's side of `state_store` (closed before it)."""
    journal, owned = journal_store_for(state_store)
    assert journal is not None
    yield journal
    if owned:
        journal.close()


def entry(
    n: int, function: str = "f", recorded_at: float | None = None, **changes: Any
) -> Invocation:
    inv = Invocation(
        id=f"id-{n}",
        function=function,
        trigger="http",
        started_at=datetime.now(timezone.utc),
        status="ok",
        duration=0.001 * n,
        logs=[f"INFO line {n}"],
        recorded_at=recorded_at or 1000.0 + n,
        process="h:1",
    )
    return dataclasses.replace(inv, **changes)


def test_store_keeps_entries_newest_first_by_function_once_each(
    journal_store: JournalStore,
) -> None:
    journal_store.append_invocations([entry(1), entry(2, "g"), entry(3)])
    journal_store.append_invocations([entry(3)])  # written again after a lost reply
    assert [e["id"] for e in journal_store.recent_invocations()] == ["id-3", "id-2", "id-1"]
    assert [e["id"] for e in journal_store.recent_invocations(1)] == ["id-3"]
    assert [e["id"] for e in journal_store.recent_invocations(None, "f")] == ["id-3", "id-1"]
    back = Invocation.from_dict(journal_store.recent_invocations(1, "g")[0])
    assert (back.function, back.status, back.logs, back.process) == (
        "g",
        "ok",
        ["INFO line 2"],
        "h:1",
    )


def test_an_entry_reads_back_as_it_was_recorded(journal_store: JournalStore) -> None:
    recorded = entry(
        4,
        started_at=datetime(2026, 3, 29, 1, 59, 59, 123456, tzinfo=timezone.utc),
        duration=0.0123456,
        status="error",
        attempt=3,
        simulated=True,
        error='ValueError: "quoted" \u00e9',
        detail={"commits": [4, 5], "table": "main.s.t"},
        logs=["WARNING one", "ERROR two"],
    )
    plain = entry(5, detail={}, logs=[], duration=None)
    journal_store.append_invocations([recorded, plain])
    assert journal_store.recent_invocations() == [
        plain.to_dict(recorded=True),
        recorded.to_dict(recorded=True),
    ]


def test_retention_by_count_and_by_age(journal_store: JournalStore) -> None:
    now = time.time()
    journal_store.append_invocations([entry(n, recorded_at=now - 100 + n) for n in range(10)])
    journal_store.prune_invocations(keep=6, older_than=now - 97)  # 0..2 too old, 3 past keep
    assert [e["id"] for e in journal_store.recent_invocations()] == [
        f"id-{n}" for n in range(9, 3, -1)
    ]


def test_each_attempt_of_a_retried_invocation_is_kept(journal_store: JournalStore) -> None:
    # A retry keeps the invocation's id: the store keyed entries by id alone and kept only the
    # first attempt, so after a restart an invocation that succeeded showed as failed.
    failed = entry(7, attempt=1, status="error", error="boom")
    succeeded = entry(7, recorded_at=1010.0, attempt=2)
    journal_store.append_invocations([failed])
    journal_store.append_invocations([succeeded])
    journal_store.append_invocations([succeeded])  # written again after a lost reply
    stored = journal_store.recent_invocations()
    assert [(e["id"], e["attempt"], e["status"]) for e in stored] == [
        ("id-7", 2, "ok"),
        ("id-7", 1, "error"),
    ]


def test_a_burst_leaves_the_store_at_most_twice_keep(
    state_store: CheckpointStore, journal_store: JournalStore
) -> None:
    # Pruned once a minute, a busy server's journal grew by up to a minute of entries (on the
    # order of a million rows) between passes.
    settings = parse_config("journal: {keep: 100, max_ok_per_second: null}\n").journal
    journal = Journal(persist_to=lambda: state_store, settings=settings)
    sizes = []
    try:
        for burst in range(10):
            for n in range(100):
                journal.record(_ran(f"b{burst}-{n}"))
            assert journal.flush(timeout=30)
            sizes.append(len(journal_store.recent_invocations()))
    finally:
        journal.close()
    # `keep`, plus what one write added before the pass that follows it
    assert min(sizes[1:]) >= 100 and max(sizes) <= 200, sizes


def test_a_busy_function_keeps_its_failures_and_a_sample_of_its_successes(
    state_store: CheckpointStore, journal_store: JournalStore
) -> None:
    # Written whole, a function called thousands of times a second pushed every other
    # function's history out of `keep` within a second (and cost a fifth of the throughput).
    settings = parse_config("journal: {max_ok_per_second: 50}\n").journal
    journal = Journal(persist_to=lambda: state_store, settings=settings)
    started = time.monotonic()
    try:
        journal.record(_ran("quiet-0", function="quiet"))
        for n in range(2000):
            journal.record(_ran(f"busy-{n}", function="busy"))
            if n % 500 == 250:
                journal.record(dataclasses.replace(_ran(f"failed-{n}", "busy"), status="error"))
        journal.record(_ran("quiet-1", function="quiet"))
        assert journal.flush(timeout=30)
        elapsed = time.monotonic() - started
        stored = [(e["function"], e["status"], e["id"]) for e in journal_store.recent_invocations()]
    finally:
        journal.close()
    assert [i for f, _, i in stored if f == "quiet"] == ["quiet-1", "quiet-0"]
    assert [i for _, s, i in stored if s == "error"] == [
        f"failed-{n}" for n in (1750, 1250, 750, 250)
    ]
    busy_ok = [int(i.split("-")[1]) for f, s, i in stored if f == "busy" and s == "ok"]
    assert 50 <= len(busy_ok) <= 50 + 50 * elapsed + 1  # a second's burst, then 50 a second
    assert busy_ok[-50:] == list(range(49, -1, -1))  # the burst: its first second's worth
    # and this process's own journal still shows every run (its newest 1000, quiet-1 included)
    assert len(journal.entries(function="busy")) == 999


def test_the_sample_follows_when_the_runs_happened_not_when_they_are_written() -> None:
    # A writer that comes late (a store slow to open, a failed write tried again) must keep
    # what the runs' own rate allows, not a second's worth of a longer stretch.
    from lakefn._journal_store import OkBudget

    budget = OkBudget(50)
    steady = [entry(n, recorded_at=1000 + n / 50) for n in range(500)]  # 10 s at 50 a second
    assert len(budget.kept(steady)) == 500
    twice = [entry(n, recorded_at=2000 + n / 100) for n in range(500)]  # 5 s at 100 a second
    kept = budget.kept(twice)
    assert 295 <= len(kept) <= 301  # 50 at once, then 50 a second
    failed = [entry(n, recorded_at=3000 + n / 1000, status="error") for n in range(500)]
    assert len(budget.kept(failed)) == 500


def test_an_entry_sqlite_refuses_costs_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A batch goes in as one statement: one entry SQLite will never take must not fail the
    # batch again and again (stopping the journal). SQLite before 3.42 takes no NaN in JSON.
    journal = SQLiteJournal(tmp_path / "state.db")
    try:
        journal.append_invocations([entry(1), entry(2, detail={"x": float("nan")}), entry(3)])
        journal.append_invocations([entry(4)])
        stored = [e["id"] for e in journal.recent_invocations()]
    finally:
        journal.close()
    refuses_nan = tuple(map(int, sqlite3.sqlite_version.split("."))) < (3, 42)
    if refuses_nan:
        assert stored == ["id-4", "id-3", "id-1"]
        assert "the journal dropped 1 entries SQLite refused" in caplog.text
    else:
        assert stored == ["id-4", "id-3", "id-2", "id-1"]


def test_a_state_file_with_the_journal_keyed_by_id_is_carried_over(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE invocations (
            id TEXT PRIMARY KEY, function TEXT NOT NULL, recorded_at REAL NOT NULL,
            entry TEXT NOT NULL);
        CREATE INDEX invocations_recent ON invocations (recorded_at DESC);
        CREATE INDEX invocations_function ON invocations (function, recorded_at DESC);
        """
    )
    db.executemany(
        "INSERT INTO invocations VALUES (?, ?, ?, ?)",
        [
            (e["id"], e["function"], e["recorded_at"], json.dumps(e))
            for e in (entry(n).to_dict(recorded=True) for n in (1, 2))
        ],
    )
    db.commit()
    db.close()
    store = open_store(str(path), tmp_path)
    journal, owned = journal_store_for(store)
    assert journal is not None and owned
    try:
        journal.append_invocations([entry(2, recorded_at=1005.0, attempt=2)])
        assert [(e["id"], e["attempt"]) for e in journal.recent_invocations()] == [
            ("id-2", 2),
            ("id-2", 1),
            ("id-1", 1),
        ]
    finally:
        journal.close()
        store.close()
    # An earlier lakefn still running on the file adds its indexes when it starts, and writes
    # entries as it always did: the next start drops the indexes and reads its entries.
    older = sqlite3.connect(path)
    older.executescript(
        """
        CREATE INDEX IF NOT EXISTS invocations_recent ON invocations (recorded_at DESC);
        CREATE INDEX IF NOT EXISTS invocations_function ON invocations (function, recorded_at DESC);
        """
    )
    old_entry = entry(9).to_dict(recorded=True)
    older.execute(
        "INSERT OR IGNORE INTO invocations (id, function, recorded_at, entry) VALUES (?, ?, ?, ?)",
        (old_entry["id"], "f", old_entry["recorded_at"], json.dumps(old_entry)),
    )
    older.commit()
    older.close()
    reopened = SQLiteJournal(path)
    try:
        assert [e["id"] for e in reopened.recent_invocations()][:1] == ["id-9"]
        indexes = reopened._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'invocations' "
            "AND sql IS NOT NULL"
        ).fetchall()
        assert indexes == []
    finally:
        reopened.close()


def test_history_survives_a_restart_and_merges_with_new_entries(state: str, tmp_path: Path) -> None:
    store = open_store(state, tmp_path)
    first = Journal(persist_to=lambda: store)
    for n in range(3):
        first.record(_ran(f"before-{n}"))
    first.close()
    second = Journal(persist_to=lambda: store)
    second.record(_ran("after"))
    try:
        assert [i.id for i in second.entries()] == ["after", "before-2", "before-1", "before-0"]
        assert [i.id for i in second.entries(limit=2, function="f")] == ["after", "before-2"]
    finally:
        second.close()
        store.close()


def test_a_store_that_is_down_never_fails_a_function_and_gets_the_entries_later(
    postgres: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = postgres.url(schema=new_schema())
    store = open_store(state, tmp_path)
    journal = Journal(persist_to=lambda: store)
    postgres.stop()
    try:
        for n in range(3):
            journal.record(_ran(f"while-down-{n}"))
        assert [i.id for i in journal.entries()][:1] == ["while-down-2"]
        assert not journal.flush(timeout=1.5)
    finally:
        postgres.start()
    assert journal.flush(timeout=30)
    journal.close()
    reader = open_store(state, tmp_path)
    stored = [e["id"] for e in reader.recent_invocations()]  # type: ignore[attr-defined]
    reader.close()
    store.close()
    assert stored == ["while-down-2", "while-down-1", "while-down-0"]
    warned = [r for r in caplog.records if r.name == "lakefn.journal"]
    assert len([r for r in warned if "cannot reach" in r.getMessage()]) == 1
    assert postgres.password not in caplog.text


def test_journal_settings_in_app_yaml_bound_what_a_runtime_keeps(project: ProjectDir) -> None:
    project.config(
        """\
        state: state.db
        journal: {keep: 2, max_age_days: 30, log_lines: 1}
        functions:
          - name: hi
            trigger: {type: http, method: POST, endpoint: /hi}
        """
    )
    project.function(
        "hi",
        """\
        def main(event):
            event.log.warning("first")
            event.log.warning("second")
            return "hi"
        """,
    )
    runtime = project.runtime()
    for _ in range(4):
        runtime.invoke_sync("hi")
    assert runtime.journal.entries()[0].logs == [
        "WARNING [" + runtime.journal.entries()[0].id + "] second"
    ]
    runtime.close()
    later = project.runtime()
    try:
        assert len(later.journal.entries()) == 2  # pruned to `keep` when it started
    finally:
        later.close()


def test_bad_journal_settings_are_refused_with_the_field() -> None:
    with pytest.raises(ConfigError, match="journal.keep"):
        parse_config("journal: {keep: -1}\n")
    for bad in ("0", "-5", ".inf", ".nan", "lots"):
        with pytest.raises(ConfigError, match="journal.max_ok_per_second"):
            parse_config(f"journal: {{max_ok_per_second: {bad}}}\n")


def test_memory_store_keeps_no_history(caplog: pytest.LogCaptureFixture) -> None:
    from lakefn.checkpoints.memory import MemoryCheckpointStore

    journal = Journal(persist_to=MemoryCheckpointStore)
    journal.record(_ran("one"))
    assert [i.id for i in journal.entries()] == ["one"]
    journal.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _ran(invocation_id: str, function: str = "f") -> Invocation:
    return Invocation(
        id=invocation_id,
        function=function,
        trigger="http",
        started_at=datetime.now(timezone.utc),
        status="ok",
        duration=0.001,
    )
