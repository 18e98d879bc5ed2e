"""Table triggers against a careless operator: a state file that cannot be written, is corrupt or
is deleted while serving, and a table dropped and created again behind the watcher's back.

Real everything: the `lakefn serve` CLI or uvicorn on loopback, local Delta tables, SQLite state.
Where the pace of the watcher's loop matters, the runtime is handed a `sleep` that notes each
wait instead of taking it, so no assertion depends on how fast this machine is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lakefn.checkpoints.sqlite import SQLiteCheckpointStore
from lakefn.runtime import Runtime
from lakefn.sources.local import append, path_for
from tests._serving import (
    TABLE,
    Pace,
    Served,
    Servers,
    new_table,
    runtimes_for_a_test,
    servers_for_a_test,
    wait_for,
)
from tests.conftest import ProjectDir

KEY = f"watch|{TABLE}"

#: appends the versions of each call to deliveries.jsonl, fsynced before returning
SINK = """\
import json, os, pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "deliveries.jsonl"

def main(event):
    with open(OUT, "a") as out:
        out.write(json.dumps([c.version for c in event.commits]) + "\\n")
        out.flush()
        os.fsync(out.fileno())
"""


def app_yaml(start: str = "earliest") -> str:
    return f"""\
tables: {{local_root: catalog, source: local}}
state: state.db
functions:
  - name: watch
    trigger: {{type: unity_table, check_interval: 0.05, start: {start}}}
    table_name: {TABLE}
"""


@pytest.fixture
def proj(project: ProjectDir) -> ProjectDir:
    project.config(app_yaml())
    project.function("watch", SINK)
    return project


@pytest.fixture
def catalog(proj: ProjectDir) -> Path:
    return proj.root / "catalog"


@pytest.fixture
def runtime(proj: ProjectDir) -> Iterator[Callable[..., Runtime]]:
    yield from runtimes_for_a_test(proj)


@pytest.fixture
def spawn() -> Iterator[Servers]:
    yield from servers_for_a_test()


@pytest.fixture
def servers(proj: ProjectDir, spawn: Servers) -> Callable[[], Served]:
    return lambda: spawn.lakefn(proj.root)


def deliveries(proj: ProjectDir) -> list[list[int]]:
    path = proj.root / "deliveries.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def checkpoint_on_disk(state: Path) -> int | None:
    """The checkpoint in the state file at `state`, read as a restarted server would."""
    if not state.exists():
        return None
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT version FROM checkpoints WHERE key = ?", (KEY,)).fetchone()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return None if row is None else int(row[0])


# -- a state store that cannot save ----------------------------------------------------------


async def test_a_state_file_that_cannot_be_written_fails_the_delivery_with_backoff_and_one_error(
    proj: ProjectDir,
    catalog: Path,
    runtime: Callable[..., Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lakefn")
    new_table(catalog, 1)
    state = proj.root / "state.db"
    pace = Pace(stop_after=5)
    rt = runtime(checkpoints=SQLiteCheckpointStore(state, busy_timeout=0.05), sleep=pace)
    await rt.watcher.check("watch")
    assert deliveries(proj) == [[0]]
    append(catalog, TABLE, [{"id": 1}])
    append(catalog, TABLE, [{"id": 2}])
    # Another program holds the state file's write lock: every save fails, reads still work.
    locker = sqlite3.connect(state, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        await rt.start()
        await asyncio.wait_for(pace.done.wait(), 60)
        await rt.stop()
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    # Each check handed versions 1..2 over again (never recorded), each wait twice the last.
    assert pace.waits == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert deliveries(proj) == [[0]] + [[1, 2]] * 5
    [status] = rt.watcher.status()
    assert status["consecutive_failures"] == 5 and status["last_processed_version"] == 0
    said = status["last_error"]
    assert said.startswith("versions 1..2 were handed over, but the checkpoint store failed: ")
    assert said.endswith("; they will be delivered again") and "database is locked" in said
    assert any("database is locked" in problem for problem in rt.health())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None  # one line, no traceback
    assert "checkpoint store" in errors[0].getMessage()

    # Writable again: the next check delivers, records it, and says so once.
    await rt.watcher.check("watch")
    assert deliveries(proj)[-1] == [1, 2] and rt.checkpoints.load(KEY) == 2
    [status] = rt.watcher.status()
    assert status["last_error"] is None and status["consecutive_failures"] == 0
    assert rt.health() == []
    assert any("works again" in r.getMessage() for r in caplog.records)
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_a_corrupt_state_file_makes_healthz_degraded_with_the_reason(
    proj: ProjectDir, catalog: Path, serve: Any
) -> None:
    new_table(catalog, 1)
    (proj.root / "state.db").write_text("this is not a SQLite database\n" * 100)
    server = serve(proj)
    answer = server.client.get("/healthz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "degraded"
    [problem] = body["problems"]
    assert "state.db" in problem and "not a database" in problem
    status = wait_for(lambda: server.client.get("/lakefn/tables").json()[0]["last_error"])
    assert "checkpoint store" in status and "not a database" in status
    assert deliveries(proj) == []  # nothing handed over that could not be recorded


async def test_a_state_file_repaired_while_serving_lets_table_triggers_run_again(
    proj: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    new_table(catalog, 1)
    state = proj.root / "state.db"
    state.write_text("this is not a SQLite database\n" * 100)
    rt = runtime()
    await rt.start()
    try:
        assert rt.health() and "not a database" in rt.health()[0]
        assert await rt.watcher.check("watch") is None
        state.unlink()  # the operator removes the broken file
        await rt.watcher.check("watch")
        assert rt.health() == []
        assert rt.checkpoints.load(KEY) == 0
    finally:
        await rt.stop()


# -- a state file deleted while serving ------------------------------------------------------


def test_a_state_file_deleted_while_serving_is_recreated_and_a_restart_delivers_nothing_again(
    proj: ProjectDir, catalog: Path, servers: Callable[[], Served]
) -> None:
    new_table(catalog, 1)
    state = proj.root / "state.db"
    first = servers()
    wait_for(lambda: deliveries(proj) == [[0]])
    append(catalog, TABLE, [{"id": 1}])
    wait_for(lambda: deliveries(proj) == [[0], [1]])
    for leftover in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
        leftover.unlink(missing_ok=True)
    append(catalog, TABLE, [{"id": 2}])
    wait_for(lambda: deliveries(proj)[-1:] == [[2]])
    # The server noticed, made the file again and wrote its checkpoint there.
    wait_for(lambda: checkpoint_on_disk(state) == 2)
    first.stop(signal.SIGTERM)
    assert "was deleted while in use" in (proj.root / f"serve-{first.port}.log").read_text()

    servers()
    append(catalog, TABLE, [{"id": 3}])
    wait_for(lambda: deliveries(proj)[-1:] == [[3]])
    assert deliveries(proj) == [[0], [1], [2], [3]]  # no version handed over twice


async def test_a_state_file_deleted_while_idle_is_recreated_by_the_next_lease_renewal(
    proj: ProjectDir, catalog: Path, runtime: Callable[..., Runtime], caplog
) -> None:
    from lakefn.testing import FakeClock

    new_table(catalog, 2)
    state = proj.root / "state.db"
    clock = FakeClock()
    rt = runtime(clock=clock)
    await rt.watcher.check("watch")
    assert deliveries(proj) == [[0, 1]]
    for leftover in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
        leftover.unlink(missing_ok=True)
    clock.advance(6)  # no new version: only the lease renewal (due after half its 10 s) looks
    with caplog.at_level(logging.ERROR, logger="lakefn"):
        assert await rt.watcher.check("watch") is None
    assert checkpoint_on_disk(state) == 1
    # The old file's lease came over too, still this process's: it goes on delivering.
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        [(owner,)] = db.execute("SELECT owner FROM leases WHERE key = ?", (KEY,)).fetchall()
    finally:
        db.close()
    assert owner == rt.watcher.owner
    [said] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert said == (
        f"checkpoint store {state} was deleted while in use: opened it anew and wrote the 1 "
        "checkpoint(s) the old file held into it, so nothing is delivered again"
    )
    rt.checkpoints.release(KEY, rt.watcher.owner)  # as a server's shutdown does
    rt.close()

    restarted = runtime()
    await restarted.watcher.check("watch")
    assert deliveries(proj) == [[0, 1]]  # nothing handed over again


# -- a table dropped and created again -------------------------------------------------------


def test_a_recreated_table_that_caught_up_with_the_checkpoint_is_delivered_from_version_0(
    proj: ProjectDir, catalog: Path, servers: Callable[[], Served]
) -> None:
    new_table(catalog, 3)
    first = servers()
    wait_for(lambda: deliveries(proj) == [[0, 1, 2]])
    first.stop(signal.SIGTERM)  # the checkpoint is 2
    shutil.rmtree(path_for(catalog, TABLE))
    new_table(catalog, 6)  # another table, already past version 2
    second = servers()
    wait_for(lambda: deliveries(proj)[-1:] and deliveries(proj)[-1][-1] == 5)
    assert deliveries(proj) == [[0, 1, 2], [0, 1, 2, 3, 4, 5]]
    [status] = httpx.get(f"{second.url}/lakefn/tables", timeout=10).json()
    [recreated] = status["recreated"]
    assert recreated["versions"] == {"was": 2, "now": 5}
    assert recreated["table_ids"]["was"] != recreated["table_ids"]["now"]
    notes = httpx.get(f"{second.url}/lakefn/invocations", timeout=10).json()
    assert any("created again" in (note.get("error") or "") for note in notes)
    assert "created again" in (proj.root / f"serve-{second.port}.log").read_text()


async def test_a_recreated_table_at_the_very_version_of_the_checkpoint_is_delivered_again(
    proj: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    new_table(catalog, 3)
    before = runtime()
    await before.watcher.check("watch")
    before.checkpoints.release(KEY, before.watcher.owner)  # as a server's shutdown does
    before.close()
    shutil.rmtree(path_for(catalog, TABLE))
    new_table(catalog, 3)  # nothing newer than the checkpoint: only its identity tells
    after = runtime()
    await after.watcher.check("watch")
    assert deliveries(proj) == [[0, 1, 2], [0, 1, 2]]
    [report] = [n for n in after.journal.entries() if "created again" in (n.error or "")]
    assert report.detail["recreated"] == {"was": 2, "now": 2}
    ids = report.detail["table_ids"]
    assert report.error == (
        f"{TABLE} has a new table id ({ids['was']} before, {ids['now']} now): the table was "
        "dropped and created again; delivering its new history from version 0"
    )
    assert after.checkpoints.load(KEY) == 2


async def test_a_recreated_table_behind_the_checkpoint_says_so(
    proj: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    new_table(catalog, 3)
    before = runtime()
    await before.watcher.check("watch")
    before.checkpoints.release(KEY, before.watcher.owner)
    before.close()
    shutil.rmtree(path_for(catalog, TABLE))
    new_table(catalog, 2)  # version 1, behind the checkpoint (2)
    after = runtime()
    await after.watcher.check("watch")
    assert deliveries(proj) == [[0, 1, 2], [0, 1]]
    [report] = [n for n in after.journal.entries() if "created again" in (n.error or "")]
    assert (report.trigger, report.detail["recreated"]) == ("unity_table", {"was": 2, "now": 1})
    assert report.error == (
        f"{TABLE} is at version 1, behind version 2 already handed over: the table was dropped "
        "and created again; delivering its new history from version 0"
    )


async def test_a_table_recreated_while_watched_is_delivered_from_version_0(
    proj: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    new_table(catalog, 2)
    rt = runtime()
    await rt.watcher.check("watch")
    shutil.rmtree(path_for(catalog, TABLE))
    new_table(catalog, 4)
    await rt.watcher.check("watch")
    assert deliveries(proj) == [[0, 1], [0, 1, 2, 3]]
    assert rt.watcher.status()[0]["recreated"][0]["versions"] == {"was": 1, "now": 3}
