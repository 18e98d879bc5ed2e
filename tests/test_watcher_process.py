"""Delivery across process lifetimes: real `lakefn serve` subprocesses on one project, its real
SQLite state file and real local Delta tables, stopped, killed and run side by side.

The table function appends every version it is handed to a file and fsyncs it before returning,
so the file is the ground truth of what was delivered, whatever happens to the process after.
Nothing here is timed: a test waits for what it expects (a line in a file, a check seen in
/lakefn/tables), and "nothing more happened" means "nothing more after two further checks".
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests._serving import (
    Served,
    commit,
    delivered,
    project_servers,
    ready,
    sink_project,
    versions,
    wait_for,
)
from tests.conftest import ProjectDir


@pytest.fixture
def proj(project: ProjectDir) -> ProjectDir:
    return sink_project(project)


@pytest.fixture
def servers() -> Iterator[Callable[..., Served]]:
    """`servers(proj)` starts `lakefn serve` on the project and waits until it serves."""
    yield from project_servers(log_level="warning")


def settled(server: Served) -> None:
    """Wait until `server` has started two more checks, so one whole check ran after the
    moment of calling: whatever it was going to deliver by then, it has."""
    for _ in range(2):
        seen = server.tables()["last_check"]
        wait_for(lambda seen=seen: server.tables()["last_check"] != seen)


def test_stopped_and_restarted_nothing_lost_nothing_replayed(
    proj: ProjectDir, servers: Callable[..., Served]
) -> None:
    first = servers(proj)
    ready(first)
    commit(proj, 3)
    wait_for(lambda: versions(proj) == [1, 2, 3])
    wait_for(lambda: first.tables()["last_processed_version"] == 3)
    first.stop(signal.SIGTERM)
    commit(proj, 2)  # while nobody watches
    second = servers(proj)
    wait_for(lambda: versions(proj)[-1:] == [5])
    commit(proj)
    wait_for(lambda: versions(proj)[-1:] == [6])
    settled(second)
    assert versions(proj) == [1, 2, 3, 4, 5, 6]
    assert {pid for _, pid in delivered(proj)} == {first.pid, second.pid}


def test_killed_while_idle_and_restarted_nothing_lost_nothing_replayed(
    proj: ProjectDir, servers: Callable[..., Served]
) -> None:
    first = servers(proj)
    ready(first)
    commit(proj, 2)
    wait_for(lambda: versions(proj) == [1, 2])
    # Idle means recorded too: killed between the call and its save, 2 would rightly come again.
    wait_for(lambda: first.tables()["last_processed_version"] == 2)
    first.stop(signal.SIGKILL)  # no shutdown: the lease is left behind, held by a dead pid
    # Left alone, that lease would run out in 10 s. Pushed an hour away, a delivery can only
    # mean the new server saw its holder is a dead process of this host and took over.
    db = sqlite3.connect(proj.root / "state.db", isolation_level=None)
    try:
        moved = db.execute("UPDATE leases SET expires_at = ?", (time.time() + 3600,)).rowcount
    finally:
        db.close()
    assert moved == 1
    commit(proj, 2)
    second = servers(proj)
    wait_for(lambda: versions(proj)[-1:] == [4])
    settled(second)
    assert versions(proj) == [1, 2, 3, 4]


def test_killed_during_a_function_that_range_is_delivered_again(
    proj: ProjectDir, servers: Callable[..., Served]
) -> None:
    first = servers(proj)
    ready(first)
    (proj.root / "slow").touch()
    # Frozen while both commits land, the server sees them together: one call, versions 1..2.
    freeze_outside_a_transaction(first, proj.root / "state.db")
    try:
        commit(proj, 2)
    finally:
        first.process.send_signal(signal.SIGCONT)
    started = proj.root / "started.log"
    # The function's own word that it is running, with the range this test is about.
    wait_for(lambda: started.exists() and started.read_text() == f"1..2 {first.pid}\n")
    first.stop(signal.SIGKILL)  # the function is still running: versions 1..2 never finished
    (proj.root / "slow").unlink()
    assert versions(proj) == []
    second = servers(proj)
    wait_for(lambda: versions(proj) == [1, 2])
    settled(second)
    starts = started.read_text().splitlines()
    assert starts == [f"1..2 {first.pid}", f"1..2 {second.pid}"]
    assert versions(proj) == [1, 2]


def test_two_servers_on_one_state_file_never_deliver_a_version_twice(
    proj: ProjectDir, servers: Callable[..., Served]
) -> None:
    one = servers(proj)
    ready(one)
    two = servers(proj)  # holds no lease yet, so it only waits its turn
    for _ in range(12):
        commit(proj)
        time.sleep(0.02)
    wait_for(lambda: versions(proj)[-1:] == [12])
    # The holder of the lease stops; the other takes over at once and carries on.
    [holder_pid] = {pid for _, pid in delivered(proj)}
    holder, other = (one, two) if holder_pid == one.pid else (two, one)
    holder.stop(signal.SIGTERM)
    for _ in range(8):
        commit(proj)
        time.sleep(0.02)
    wait_for(lambda: versions(proj)[-1:] == [20])
    settled(other)
    counts = Counter(versions(proj))
    assert sorted(counts) == list(range(1, 21)) and set(counts.values()) == {1}
    assert {pid for version, pid in delivered(proj) if version > 12} == {other.pid}


def freeze_outside_a_transaction(server: Served, state: Path) -> None:
    """SIGSTOP the server at a moment it holds no SQLite write lock. Frozen inside a write, it
    would block every process on the file until woken: a different failure from the one a
    stalled holder's test is about."""
    for _ in range(50):
        server.process.send_signal(signal.SIGSTOP)
        db = sqlite3.connect(state, timeout=0.2, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            server.process.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        finally:
            db.close()
    raise AssertionError("the server never left the state file's write lock")


def test_a_stalled_holder_gives_way_and_does_not_deliver_again_when_it_wakes(
    proj: ProjectDir, servers: Callable[..., Served]
) -> None:
    one = servers(proj)
    ready(one)
    two = servers(proj)
    commit(proj, 2)
    wait_for(lambda: versions(proj) == [1, 2])
    freeze_outside_a_transaction(one, proj.root / "state.db")  # its lease runs out: two takes over
    try:
        commit(proj, 2)
        wait_for(lambda: versions(proj) == [1, 2, 3, 4])
    finally:
        one.process.send_signal(signal.SIGCONT)
    # Woken, the first process must see the lease is gone rather than trust what it remembers.
    commit(proj, 2)
    wait_for(lambda: versions(proj)[-1:] == [6])
    settled(one)  # awake and checking: it has had its chance to deliver again
    settled(two)
    assert versions(proj) == [1, 2, 3, 4, 5, 6]
    assert {pid for version, pid in delivered(proj) if version > 2} == {two.pid}
