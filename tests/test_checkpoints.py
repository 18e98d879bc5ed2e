"""One contract for every CheckpointStore: the watcher relies on exactly these behaviours."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakefn import CheckpointConflict, LakefnError
from lakefn.abc import CheckpointStore
from lakefn.checkpoints.memory import MemoryCheckpointStore
from lakefn.checkpoints.postgres import PostgresCheckpointStore
from lakefn.checkpoints.selection import open_store
from lakefn.checkpoints.sqlite import SQLiteCheckpointStore
from tests._postgres import PostgresServer, new_schema


class FakeTime:
    """Seconds that only move when a test says so, for lease expiry."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeTime
) -> Iterator[CheckpointStore]:
    if request.param == "memory":
        made: CheckpointStore = MemoryCheckpointStore(clock=clock)
    elif request.param == "sqlite":
        made = SQLiteCheckpointStore(tmp_path / "state" / "checkpoints.db", clock=clock)
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        made = PostgresCheckpointStore(server.conninfo(), schema=new_schema(), clock=clock)
    yield made
    made.close()


def test_unknown_key_loads_as_none(store: CheckpointStore) -> None:
    assert store.load("fn:a.b.c") is None
    assert store.items() == {}


def test_save_from_nothing_then_advance(store: CheckpointStore) -> None:
    store.save("fn:a.b.c", 3, expected=None)
    store.save("fn:a.b.c", 7, expected=3)
    assert store.load("fn:a.b.c") == 7
    assert store.items() == {"fn:a.b.c": 7}


def test_save_with_stale_expectation_conflicts_and_changes_nothing(store: CheckpointStore) -> None:
    store.save("k", 5, expected=None)
    with pytest.raises(CheckpointConflict) as caught:
        store.save("k", 9, expected=4)
    assert (caught.value.key, caught.value.expected, caught.value.found) == ("k", 4, 5)
    assert "checkpoint 'k' moved under us" in str(caught.value)  # the log names the table's key
    with pytest.raises(CheckpointConflict):
        store.save("k", 9, expected=None)
    assert store.load("k") == 5


def test_keys_are_independent(store: CheckpointStore) -> None:
    store.save("f1:a.b.c", 1, expected=None)
    store.save("f2:a.b.c", 10, expected=None)
    assert store.items() == {"f1:a.b.c": 1, "f2:a.b.c": 10}


def test_lease_taken_renewed_and_refused_to_another(
    store: CheckpointStore, clock: FakeTime
) -> None:
    assert store.acquire("k", "host-1", ttl=30)
    clock.now += 20
    assert store.acquire("k", "host-1", ttl=30)  # renew: now valid until +50
    clock.now += 20
    assert not store.acquire("k", "host-2", ttl=30)


def test_expired_lease_goes_to_another_owner(store: CheckpointStore, clock: FakeTime) -> None:
    assert store.acquire("k", "host-1", ttl=30)
    clock.now += 31
    assert store.acquire("k", "host-2", ttl=30)
    assert not store.acquire("k", "host-1", ttl=30)


def test_a_live_lease_is_taken_over_only_when_its_holder_is_gone(store: CheckpointStore) -> None:
    assert store.acquire("k", "host-1", ttl=30)
    asked: list[str] = []

    def alive(owner: str) -> bool:
        asked.append(owner)
        return False

    assert not store.acquire("k", "host-2", ttl=30, take_over=alive)
    assert asked == ["host-1"]
    assert store.acquire("k", "host-2", ttl=30, take_over=lambda owner: owner == "host-1")
    assert not store.acquire("k", "host-1", ttl=30)  # host-2 holds it now


def test_release_frees_the_lease_only_for_its_owner(store: CheckpointStore) -> None:
    assert store.acquire("k", "host-1", ttl=30)
    store.release("k", "host-2")
    assert not store.acquire("k", "host-2", ttl=30)
    store.release("k", "host-1")
    assert store.acquire("k", "host-2", ttl=30)


def test_leases_are_per_key(store: CheckpointStore) -> None:
    assert store.acquire("k1", "host-1", ttl=30)
    assert store.acquire("k2", "host-2", ttl=30)


def test_threads_racing_compare_and_set_each_step_has_one_winner(store: CheckpointStore) -> None:
    store.save("k", 0, expected=None)
    wins: list[int] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        for step in range(50):
            try:
                store.save("k", step + 1, expected=step)
            except CheckpointConflict:
                continue
            wins.append(step + 1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == list(range(1, 51))
    assert store.load("k") == 50


def test_sqlite_checkpoints_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SQLiteCheckpointStore(path)
    first.save("k", 12, expected=None)
    assert first.acquire("lease", "host-1", ttl=600)
    first.close()
    second = SQLiteCheckpointStore(path)
    try:
        assert second.load("k") == 12
        assert not second.acquire("lease", "host-2", ttl=600)
    finally:
        second.close()


def test_sqlite_state_file_opened_by_many_at_once_opens_for_all(tmp_path: Path) -> None:
    # Two `lakefn run`s started together on a fresh state file: switching it to WAL needs the
    # file's exclusive lock, and SQLite refuses at once ("database is locked") when another
    # opener holds any lock. Every opener must get a working store and journal all the same.
    from lakefn.checkpoints.sqlite_journal import SQLiteJournal

    failures: list[str] = []
    for round_ in range(40):
        path = tmp_path / f"state{round_}.db"
        start = threading.Barrier(4)

        def open_and_use(kind: type, path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                opened = kind(path)
                if isinstance(opened, SQLiteCheckpointStore):
                    opened.load("k")
                opened.close()
            except LakefnError as exc:
                failures.append(str(exc))

        kinds = [SQLiteCheckpointStore, SQLiteJournal] * 2
        threads = [threading.Thread(target=open_and_use, args=(kind,)) for kind in kinds]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


def test_sqlite_store_refuses_calls_once_closed_and_closes_twice_quietly(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteCheckpointStore(path)
    store.save("k", 3, expected=None)
    store.close()
    for call in (lambda: store.load("k"), lambda: store.acquire("k", "me", ttl=60)):
        with pytest.raises(LakefnError, match=f"the checkpoint store {path} is closed"):
            call()
    store.close()  # a second close (a runtime closing what a harness closed) is no error
    reopened = SQLiteCheckpointStore(path)
    try:
        assert reopened.load("k") == 3  # closing kept what was saved
    finally:
        reopened.close()


def test_sqlite_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    not_a_db = tmp_path / "state.db"
    not_a_db.write_bytes(b"this is not a database, it is a text file " * 100)
    with pytest.raises(LakefnError, match="checkpoint store"):
        SQLiteCheckpointStore(not_a_db)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LakefnError, match="checkpoint store"):
        SQLiteCheckpointStore(blocker / "sub" / "state.db")


_RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from lakefn import CheckpointConflict
    from lakefn.checkpoints.selection import open_store

    state, go, steps = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    store = open_store(state, ".")
    while not go.exists():
        time.sleep(0.001)
    won = []
    for step in range(steps):
        try:
            store.save("fn:a.b.c", step + 1, expected=step)
        except CheckpointConflict:
            continue
        won.append(step + 1)
    store.close()
    print(" ".join(map(str, won)))
    """
)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_state(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A `state:` setting two processes can share."""
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url(schema=new_schema())


def test_two_processes_racing_compare_and_set_each_step_has_one_winner(
    tmp_path: Path, shared_state: str
) -> None:
    go, steps = tmp_path / "go", 200
    first = open_store(shared_state, tmp_path)
    first.save("fn:a.b.c", 0, expected=None)
    first.close()  # left to the garbage collector, Python 3.13 warns (an error here)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, shared_state, str(go), str(steps)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    go.touch()
    outputs = [racer.communicate(timeout=60) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in outputs]
    wins = [[int(v) for v in out.split()] for out, _ in outputs]
    assert sorted(wins[0] + wins[1]) == list(range(1, steps + 1))
    reopened = open_store(shared_state, tmp_path)
    assert reopened.load("fn:a.b.c") == steps
    reopened.close()


def test_two_processes_only_one_holds_the_lease(tmp_path: Path, shared_state: str) -> None:
    here = open_store(shared_state, tmp_path)
    assert here.acquire("fn:a.b.c", "process-1", ttl=600)
    script = (
        "import sys; from lakefn.checkpoints.selection import open_store; "
        "s = open_store(sys.argv[1], '.'); print(s.acquire('fn:a.b.c', 'process-2', 600), "
        "s.acquire('other', 'process-2', 600)); s.close()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, shared_state],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.stdout.split() == ["False", "True"], done.stderr
    here.close()


def test_a_postgres_schema_name_is_1_to_63_characters_as_postgres_allows() -> None:
    # Refused when the store is made, before any connection: PostgreSQL would cut a longer name
    # to 63 characters, and two settings would then share one schema.
    from lakefn._exceptions import BadStateSchema

    nowhere = "postgresql://lakefn@127.0.0.1:1/none"
    PostgresCheckpointStore(nowhere, schema="s" * 63).close()
    for bad in ("", "s" * 64):
        with pytest.raises(BadStateSchema) as caught:
            PostgresCheckpointStore(nowhere, schema=bad)
        assert str(caught.value) == f"state schema {bad!r} must be 1 to 63 characters"
