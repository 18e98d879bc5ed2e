"""A table's lease is judged on one clock: the one its store expires it by.

A runtime on a FakeClock opens its store (app.yaml's `state:`) on that clock, so the store and
the watcher agree on when the lease runs out. Had the store kept real time, a lease taken at
real time would run out there while the watcher, counting on a clock that stands still, still
took itself for the holder: two owners delivering the same table. Where a test below needs
"real time has passed", it gives the runtime a clock already past it instead of sleeping: the
same disagreement, without a wait. Real SQLite stores, real Delta tables, the real Runtime.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lakefn.checkpoints.memory import MemoryCheckpointStore
from lakefn.checkpoints.sqlite import SQLiteCheckpointStore
from lakefn.checkpoints.tools import list_checkpoints
from lakefn.runtime import Runtime
from lakefn.sources.local import append, create_table
from lakefn.testing import FakeClock
from tests._serving import TABLE, runtimes_for_a_test
from tests.conftest import ProjectDir

KEY = f"watch|{TABLE}"
TTL = 10.0  # the watcher's lease for a check_interval under 10/3 s

RECORDER = """\
import json, pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "deliveries.jsonl"

def main(event):
    with OUT.open("a") as out:
        out.write(json.dumps([c.version for c in event.commits]) + "\\n")
"""


@pytest.fixture
def runtime(project: ProjectDir) -> Iterator[Callable[..., Runtime]]:
    yield from runtimes_for_a_test(project)


@pytest.fixture
def watched(project: ProjectDir) -> ProjectDir:
    """One function watching TABLE (at version 0) from the latest version; state in state.db."""
    project.config(
        "tables: {local_root: catalog, source: local}\n"
        "state: state.db\n"
        "functions:\n"
        "  - name: watch\n"
        "    trigger: {type: unity_table, check_interval: 0.05, start: latest}\n"
        f"    table_name: {TABLE}\n"
    )
    project.function("watch", RECORDER)
    create_table(project.root / "catalog", TABLE, [{"id": 0}])
    return project


def delivered(project: ProjectDir) -> list[list[int]]:
    path = project.root / "deliveries.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def seconds(clock: FakeClock) -> Callable[[], float]:
    return lambda: clock.now().timestamp()


async def test_the_store_a_fake_clock_runtime_opens_keeps_its_lease_past_real_expiry(
    watched: ProjectDir, runtime: Callable[..., Runtime]
) -> None:
    # The runtime's time is a minute past real time and stands still: for a store counting
    # real time, the lease it takes now (10 s) would already be over on the runtime's clock.
    clock = FakeClock(datetime.now(timezone.utc) + timedelta(minutes=1))
    one = runtime(clock=clock)  # its store: app.yaml's state.db, opened by the runtime
    assert isinstance(one.checkpoints, SQLiteCheckpointStore)
    await one.watcher.check("watch")  # takes the lease, records version 0
    # Another process on the same clock and file asks for the table: the lease is held.
    other = SQLiteCheckpointStore(watched.root / "state.db", clock=seconds(clock))
    try:
        assert other.acquire(KEY, "host:1:other", TTL) is False
    finally:
        other.close()
    append(watched.root / "catalog", TABLE, [{"id": 1}])
    await one.watcher.check("watch")
    assert delivered(watched) == [[1]]
    # The lease shows as held, by the runtime's watcher, in `lakefn checkpoints`' list.
    [row] = list_checkpoints(one.project, one.checkpoints)
    assert row.leased and row.lease_holder == one.watcher.owner


async def test_moving_the_fake_clock_runs_out_the_lease_of_the_store_the_runtime_opened(
    watched: ProjectDir, runtime: Callable[..., Runtime]
) -> None:
    clock = FakeClock()
    one = runtime(clock=clock)
    two = runtime(clock=clock)  # a second process on the same state file, each opening it
    await one.watcher.check("watch")
    assert await two.watcher.check("watch") is None  # one holds the lease: two waits
    clock.advance(TTL + 1)  # one went quiet past its lease, on the only clock there is
    append(watched.root / "catalog", TABLE, [{"id": 1}])
    taken = await two.watcher.check("watch")
    assert taken is not None and taken.ok and delivered(watched) == [[1]]
    assert await one.watcher.check("watch") is None  # two holds it now


async def test_a_store_handed_in_on_its_own_clock_is_renewed_on_that_clock(
    watched: ProjectDir, runtime: Callable[..., Runtime]
) -> None:
    # The store counts its own time (here one the test moves: "real time"); the runtime's
    # FakeClock stands still. The watcher must renew by the store's time, or the lease runs
    # out under it while it still delivers.
    store_time = FakeClock()
    state = watched.root / "state.db"
    one = runtime(
        checkpoints=SQLiteCheckpointStore(state, clock=seconds(store_time)), clock=FakeClock()
    )
    other = SQLiteCheckpointStore(state, clock=seconds(store_time))
    try:
        await one.watcher.check("watch")
        store_time.advance(TTL * 0.6)  # past half the lease: the next check renews it
        await one.watcher.check("watch")
        store_time.advance(TTL * 0.6)  # past the first lease, within the renewed one
        assert other.acquire(KEY, "host:1:other", TTL) is False
    finally:
        other.close()


class ClocklessStore(MemoryCheckpointStore):
    """A store that shows no `lease_clock` (a plug-in's, judging leases on its own time)."""

    def __getattribute__(self, name: str) -> object:
        if name == "lease_clock":
            raise AttributeError(name)
        return super().__getattribute__(name)


async def test_a_store_with_no_clock_to_show_is_asked_at_every_check_on_a_fake_clock(
    watched: ProjectDir, runtime: Callable[..., Runtime]
) -> None:
    store_time = FakeClock()
    store = ClocklessStore(clock=seconds(store_time))
    one = runtime(checkpoints=store, clock=FakeClock())
    await one.watcher.check("watch")
    store_time.advance(TTL + 1)  # the store let the lease run out; the runtime's time stood
    assert store.acquire(KEY, "host:1:other", TTL) is True  # someone else took it
    append(watched.root / "catalog", TABLE, [{"id": 1}])
    # The watcher cannot count on a clock of its own: it asks, is refused, delivers nothing.
    assert await one.watcher.check("watch") is None
    assert delivered(watched) == []
    store_time.advance(TTL + 1)  # the other went quiet: the watcher takes over and delivers
    taken = await one.watcher.check("watch")
    assert taken is not None and taken.ok and delivered(watched) == [[1]]
    assert store.acquire(KEY, "host:1:other", TTL) is False  # the watcher holds it now
    assert one.watcher.states["watch"].lease_until > 0  # held: given back when it stops


def test_a_runtime_on_a_fake_clock_refuses_a_store_that_cannot_follow_it(
    watched: ProjectDir, tmp_path: Path
) -> None:
    from lakefn._exceptions import BadStateSetting
    from lakefn.checkpoints.selection import open_store, register_store, unregister_store

    class OwnTime(MemoryCheckpointStore):
        @classmethod
        def from_state(cls, state: str, project_root: Path) -> OwnTime:  # type: ignore[override]
            return cls()

    register_store("owntime", OwnTime)
    try:
        assert isinstance(open_store("owntime://x", tmp_path), OwnTime)  # on the system clock
        with pytest.raises(BadStateSetting, match="owntime store cannot take the runtime's clock"):
            open_store("owntime://x", tmp_path, clock=seconds(FakeClock()))
    finally:
        unregister_store("owntime")


async def test_the_checkpoint_list_judges_a_lease_on_the_stores_clock(
    watched: ProjectDir, runtime: Callable[..., Runtime]
) -> None:
    clock = FakeClock(datetime(2020, 1, 1, tzinfo=timezone.utc))  # long before real time
    one = runtime(clock=clock)
    await one.watcher.check("watch")
    [row] = list_checkpoints(one.project, one.checkpoints)
    # Held until 2020-01-01 00:00:10 by the clock the store and the watcher both live by.
    assert row.leased and row.to_dict()["lease_holder"] == one.watcher.owner
    clock.advance(TTL + 1)
    [row] = list_checkpoints(one.project, one.checkpoints)
    assert not row.leased and row.to_dict()["lease_holder"] is None
