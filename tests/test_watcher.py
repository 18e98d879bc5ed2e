"""unity_table triggers end to end: real local Delta tables, the real SQLite checkpoint store, the
real Runtime (and, where the polling loop matters, the real server under uvicorn).

Most tests drive `watcher.check(name)` by hand so every step is deterministic; the ones about
what happens between checks (missing tables, concurrency, /lakefn/tables) let the watcher's own
tasks run at a small check_interval. Where time itself is the subject (backoff, lease expiry),
the runtime is handed a `sleep` or a `FakeClock` the test controls: no assertion here depends
on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakefn._exceptions import ConfigError, NothingToReplay
from lakefn._tablename import TableName
from lakefn.checkpoints.sqlite import SQLiteCheckpointStore
from lakefn.journal import Invocation, Journal
from lakefn.runtime import Runtime
from lakefn.sources.local import LocalDeltaSource, append, create_table, path_for
from lakefn.testing import FakeClock
from tests._serving import TABLE, Pace, runtimes_for_a_test, wait_for
from tests.conftest import ProjectDir

KEY = f"watch|{TABLE}"

#: appends one JSON line per call: what a user's function would see of the event
RECORDER = """\
import json, pathlib, time

OUT = pathlib.Path(__file__).resolve().parent.parent / "deliveries.jsonl"

def main(event):
    record = {
        "function": event.function_name,
        "table": event.table_name,
        "versions": [c.version for c in event.commits],
        "operations": [c.operation for c in event.commits],
        "previous": event.previous_version,
        "simulated": event.simulated,
        "attempt": event.attempt,
        "started": time.time(),
    }
    with OUT.open("a") as out:
        out.write(json.dumps(record) + "\\n")
    return record
"""

#: fails while a `fail` file exists in the project, noting when each attempt started
FLAKY = """\
import json, pathlib, time

ROOT = pathlib.Path(__file__).resolve().parent.parent

def main(event):
    versions = [c.version for c in event.commits]
    if (ROOT / "fail").exists():
        with (ROOT / "attempts.jsonl").open("a") as out:
            out.write(json.dumps({"at": time.monotonic(), "attempt": event.attempt}) + "\\n")
        raise RuntimeError(f"downstream is down (versions {versions})")
    with (ROOT / "deliveries.jsonl").open("a") as out:
        out.write(json.dumps({"versions": versions, "previous": event.previous_version}) + "\\n")
"""

CHANGES = """\
from lakefn import ChangeDataFeedUnavailable

def main(event):
    try:
        changes = event.changes()
    except ChangeDataFeedUnavailable as exc:
        return {"error": str(exc)}
    return {"columns": changes.column_names, "rows": changes.to_pylist()}
"""

SHOW_EVENT = """\
def main(event):
    return {
        "simulated": event.simulated,
        "commits": [c.to_dict() for c in event.commits],
        "rows": event.changes().to_pylist(),
    }
"""


def app_yaml(functions: str, *, concurrency: int | None = None) -> str:
    tables = "{local_root: catalog, source: local" + (
        f", concurrency: {concurrency}}}" if concurrency else "}"
    )
    return f"tables: {tables}\nstate: state.db\nfunctions:\n{functions}"


def table_function(
    name: str = "watch",
    table: str = TABLE,
    *,
    interval: float = 0.05,
    start: str = "earliest",
    operations: list[str] | None = None,
    retry: str = "",
) -> str:
    ops = f", operations: {json.dumps(operations)}" if operations else ""
    lines = [
        f"  - name: {name}",
        f"    trigger: {{type: unity_table, check_interval: {interval}, start: {start}{ops}}}",
        f"    table_name: {json.dumps(table)}",
    ]
    if retry:
        lines.append(f"    retry: {retry}")
    return "\n".join(lines) + "\n"


def rows(*ids: int) -> list[dict[str, Any]]:
    return [{"id": i, "amount": i * 10.0} for i in ids]


def deliveries(project: ProjectDir, function: str | None = None) -> list[dict[str, Any]]:
    path = project.root / "deliveries.jsonl"
    if not path.exists():
        return []
    found = [json.loads(line) for line in path.read_text().splitlines()]
    return [d for d in found if function is None or d.get("function") == function]


def more_checks(last_check: Callable[[], Any], count: int = 2) -> None:
    """Wait until the watcher has started `count` more checks (so all but the last finished)."""
    for _ in range(count):
        seen = last_check()
        wait_for(lambda seen=seen: last_check() != seen)


def store_seconds(clock: FakeClock) -> Callable[[], float]:
    """`clock`'s time as a checkpoint store reads it for leases: seconds since the epoch."""
    return lambda: clock.now().timestamp()


@pytest.fixture
def catalog(project: ProjectDir) -> Path:
    return project.root / "catalog"


@pytest.fixture
def runtime(project: ProjectDir) -> Iterator[Callable[..., Runtime]]:
    yield from runtimes_for_a_test(project)


def recording(project: ProjectDir, functions: str, **kwargs: Any) -> ProjectDir:
    project.config(app_yaml(functions, **kwargs))
    for line in functions.splitlines():
        if line.strip().startswith("- name:"):
            project.function(line.split(":", 1)[1].strip(), RECORDER)
    return project


# -- where a function starts ---------------------------------------------------------------


async def test_start_latest_records_the_current_version_and_calls_nothing(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    create_table(catalog, TABLE, rows(1))
    append(catalog, TABLE, rows(2))
    recording(project, table_function(start="latest"))
    rt = runtime()
    assert await rt.watcher.check("watch") is None
    assert deliveries(project) == []
    assert rt.checkpoints.load(KEY) == 1
    [status] = rt.watcher.status()
    assert status["last_processed_version"] == 1 and status["latest_version"] == 1
    assert status["lag_versions"] == 0
    assert await rt.watcher.check("watch") is None  # nothing new: still nothing
    append(catalog, TABLE, rows(3))
    await rt.watcher.check("watch")
    [only] = deliveries(project)
    assert only["versions"] == [2] and only["previous"] == 1 and only["simulated"] is False
    assert rt.checkpoints.load(KEY) == 2


async def test_start_earliest_delivers_the_whole_history_in_one_call(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    recording(project, table_function(start="earliest"))
    create_table(catalog, TABLE, rows(1))
    append(catalog, TABLE, rows(2))
    append(catalog, TABLE, rows(3))
    rt = runtime()
    invocation = await rt.watcher.check("watch")
    assert invocation is not None and invocation.ok
    [only] = deliveries(project)
    # Nothing was processed before version 0: previous_version says so with None.
    assert only["versions"] == [0, 1, 2] and only["previous"] is None
    assert rt.checkpoints.load(KEY) == 2


async def test_start_at_a_version_delivers_from_that_version(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    recording(project, table_function(start="2"))
    create_table(catalog, TABLE, rows(1))
    for i in (2, 3, 4):
        append(catalog, TABLE, rows(i))
    rt = runtime()
    await rt.watcher.check("watch")
    [only] = deliveries(project)
    assert only["versions"] == [2, 3] and only["previous"] == 1


# -- once per version, across every kind of commit ------------------------------------------


def _optimize(catalog: Path) -> None:
    DeltaTable(str(path_for(catalog, TABLE))).optimize.compact()


def _delete(catalog: Path) -> None:
    DeltaTable(str(path_for(catalog, TABLE))).delete("id = 1")


def _merge(catalog: Path) -> None:
    (
        DeltaTable(str(path_for(catalog, TABLE)))
        .merge(pa.Table.from_pylist(rows(2, 9)), "t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


async def test_each_version_once_across_write_overwrite_delete_merge_optimize(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    functions = table_function("every", start="latest") + table_function(
        "edits", start="latest", operations=["delete", "MERGE"]
    )
    recording(project, functions)
    create_table(catalog, TABLE, rows(1))
    rt = runtime()
    assert await rt.watcher.check("every") is None and await rt.watcher.check("edits") is None
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("WRITE", lambda: append(catalog, TABLE, rows(2))),
        ("WRITE", lambda: append(catalog, TABLE, rows(1, 2, 3), mode="overwrite")),
        ("DELETE", lambda: _delete(catalog)),
        ("MERGE", lambda: _merge(catalog)),
        ("WRITE", lambda: append(catalog, TABLE, rows(4))),
        ("OPTIMIZE", lambda: _optimize(catalog)),
    ]
    for version, (operation, step) in enumerate(steps, start=1):
        step()
        for name in ("every", "edits"):
            await rt.watcher.check(name)
            await rt.watcher.check(name)  # a second look at the same version calls nothing
        assert deliveries(project, "every")[-1]["operations"] == [operation]
        # Commits the filter leaves out still move its checkpoint, without a call.
        assert rt.checkpoints.load(f"edits|{TABLE}") == version
    assert [d["versions"] for d in deliveries(project, "every")] == [[v] for v in range(1, 7)]
    edits = deliveries(project, "edits")
    assert [(d["versions"], d["operations"]) for d in edits] == [
        ([3], ["DELETE"]),
        ([4], ["MERGE"]),
    ]


async def test_a_backlog_arrives_in_one_ascending_call_with_only_the_wanted_operations(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    functions = table_function("every", start="latest") + table_function(
        "merges", start="latest", operations=["MERGE"]
    )
    recording(project, functions)
    create_table(catalog, TABLE, rows(1, 2))
    rt = runtime()
    await rt.watcher.check("every")
    await rt.watcher.check("merges")
    append(catalog, TABLE, rows(3))
    _merge(catalog)
    append(catalog, TABLE, rows(5))
    _merge(catalog)
    append(catalog, TABLE, rows(6))
    await rt.watcher.check("every")
    await rt.watcher.check("merges")
    [every] = deliveries(project, "every")
    assert every["versions"] == [1, 2, 3, 4, 5] and every["previous"] == 0
    assert every["operations"] == ["WRITE", "MERGE", "WRITE", "MERGE", "WRITE"]
    [merges] = deliveries(project, "merges")
    assert merges["versions"] == [2, 4] and merges["previous"] == 0
    assert rt.checkpoints.load(f"merges|{TABLE}") == 5


# -- the rows that changed -------------------------------------------------------------------


async def test_changes_are_the_change_data_feed_rows_of_the_event(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    project.config(
        app_yaml(
            table_function("all", start="latest")
            + table_function("deletes", start="latest", operations=["DELETE"])
        )
    )
    project.function("all", CHANGES)
    project.function("deletes", CHANGES)
    create_table(catalog, TABLE, rows(1))
    rt = runtime()
    await rt.watcher.check("all")
    await rt.watcher.check("deletes")
    append(catalog, TABLE, rows(2, 3))
    _delete(catalog)
    everything = await rt.watcher.check("all")
    assert everything is not None and everything.ok
    result = everything.result
    assert {"_change_type", "_commit_version", "_commit_timestamp"} <= set(result["columns"])
    seen = [(r["id"], r["_change_type"], r["_commit_version"]) for r in result["rows"]]
    assert seen == [(2, "insert", 1), (3, "insert", 1), (1, "delete", 2)]
    assert all(r["_commit_timestamp"].tzinfo is not None for r in result["rows"])
    # The filtered function's event holds only the DELETE commit, and so do its rows.
    deletes = await rt.watcher.check("deletes")
    assert deletes is not None
    assert [(r["id"], r["_change_type"]) for r in deletes.result["rows"]] == [(1, "delete")]


async def test_changes_without_a_change_data_feed_is_a_clear_error(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    project.config(app_yaml(table_function(start="latest")))
    project.function("watch", CHANGES)
    create_table(catalog, TABLE, rows(1), change_data_feed=False)
    rt = runtime()
    await rt.watcher.check("watch")
    append(catalog, TABLE, rows(2))
    invocation = await rt.watcher.check("watch")
    assert invocation is not None
    message = invocation.result["error"]
    assert TABLE in message and "delta.enableChangeDataFeed = true" in message


# -- failures ---------------------------------------------------------------------------------


async def test_a_failure_is_retried_with_backoff_recorded_and_delivered_again_later(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    project.config(
        app_yaml(table_function(start="latest", retry="{max_attempts: 3, backoff_seconds: 0.1}"))
    )
    project.function("watch", FLAKY)
    create_table(catalog, TABLE, rows(1))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    rt = runtime(sleep=sleep)
    await rt.watcher.check("watch")
    append(catalog, TABLE, rows(2))
    (project.root / "fail").touch()

    failed = await rt.watcher.check("watch")
    assert failed is not None and failed.status == "error" and failed.attempt == 3
    attempts = [json.loads(x) for x in (project.root / "attempts.jsonl").read_text().splitlines()]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert waits == [0.1, 0.2]  # backoff doubles between attempts
    assert rt.checkpoints.load(KEY) == 0  # not moved: version 1 is still owed
    journal = rt.journal.entries(function="watch")
    assert [(j.status, j.attempt) for j in journal] == [("error", 3), ("error", 2), ("error", 1)]
    assert journal[0].detail == {"table": TABLE, "versions": [1, 1]}
    [status] = rt.watcher.status()
    assert "downstream is down" in status["last_error"] and status["consecutive_failures"] == 1

    await rt.watcher.check("watch")  # a later check tries the same range again
    assert rt.watcher.status()[0]["consecutive_failures"] == 2
    (project.root / "fail").unlink()
    append(catalog, TABLE, rows(3))
    delivered = await rt.watcher.check("watch")
    assert delivered is not None and delivered.ok
    assert deliveries(project) == [{"versions": [1, 2], "previous": 0}]  # never skipped
    assert rt.checkpoints.load(KEY) == 2
    [status] = rt.watcher.status()
    assert status["last_error"] is None and status["consecutive_failures"] == 0


async def test_a_history_gap_is_reported_and_delivery_resumes(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    recording(project, table_function(start="latest"))
    create_table(catalog, TABLE, rows(0))
    rt = runtime()
    await rt.watcher.check("watch")
    for i in range(1, 9):
        append(catalog, TABLE, rows(i))
    # What log retention does: a checkpoint holds the state, the early commit files go.
    DeltaTable(str(path_for(catalog, TABLE))).create_checkpoint()
    log = path_for(catalog, TABLE) / "_delta_log"
    for version in range(0, 5):
        (log / f"{version:020d}.json").unlink()

    await rt.watcher.check("watch")
    [delivered] = deliveries(project)
    assert delivered["versions"] == [5, 6, 7, 8] and delivered["previous"] == 0
    gap = [j for j in rt.journal.entries(function="watch") if j.status == "error"]
    assert len(gap) == 1 and gap[0].detail == {"table": TABLE, "gap": [1, 4]}
    assert "history gap" in (gap[0].error or "")
    assert rt.watcher.status()[0]["gaps"] == [{"after": 0, "resumed_at": 5}]
    append(catalog, TABLE, rows(9))
    await rt.watcher.check("watch")
    assert deliveries(project)[-1]["versions"] == [9]
    assert len([j for j in rt.journal.entries(function="watch") if j.status == "error"]) == 1


async def test_a_gap_of_a_single_version_is_reported_too(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    recording(project, table_function(start="latest"))
    create_table(catalog, TABLE, rows(0))
    rt = runtime()
    await rt.watcher.check("watch")
    for i in (1, 2, 3):
        append(catalog, TABLE, rows(i))
    DeltaTable(str(path_for(catalog, TABLE))).create_checkpoint()
    log = path_for(catalog, TABLE) / "_delta_log"
    for version in (0, 1):  # retention took version 1, the only one owed that is lost
        (log / f"{version:020d}.json").unlink()

    await rt.watcher.check("watch")
    [delivered] = deliveries(project)
    assert delivered["versions"] == [2, 3] and delivered["previous"] == 0
    [gap] = [j for j in rt.journal.entries(function="watch") if j.status == "error"]
    assert gap.detail == {"table": TABLE, "gap": [1, 1]}
    assert rt.watcher.status()[0]["gaps"] == [{"after": 0, "resumed_at": 2}]


# -- through the server: the watcher's own loop ------------------------------------------------


def test_a_missing_table_is_logged_once_recovers_and_never_stops_another_watcher(
    project: ProjectDir, catalog: Path, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ghost = "main.sales.not_yet"
    recording(project, table_function("ghost", ghost) + table_function("live", start="latest"))
    create_table(catalog, TABLE, rows(1))
    caplog.set_level(logging.INFO, logger="lakefn.tables")
    server = serve(project)
    tables = lambda: {t["function"]: t for t in server.client.get("/lakefn/tables").json()}  # noqa: E731
    wait_for(lambda: tables()["live"]["last_processed_version"] == 0)
    append(catalog, TABLE, rows(2))
    wait_for(lambda: deliveries(project, "live"))
    more_checks(lambda: tables()["ghost"]["last_check"], count=5)
    assert tables()["ghost"]["last_error"].startswith(f"table {ghost} not found")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and ghost in r.getMessage()]
    assert len(errors) == 1

    create_table(catalog, ghost, rows(7))
    wait_for(lambda: deliveries(project, "ghost"))
    assert deliveries(project, "ghost")[0]["versions"] == [0]
    assert tables()["ghost"]["last_error"] is None
    assert any("readable again" in r.getMessage() for r in caplog.records)
    assert [d["versions"] for d in deliveries(project, "live")] == [[1]]


class CountingSource(LocalDeltaSource):
    """The real local source, slowed a little so overlapping checks can be counted."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.active = 0
        self.most = 0
        self._count = threading.Lock()

    def latest_version(self, table: TableName) -> int:
        with self._count:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(0.03)
            return super().latest_version(table)
        finally:
            with self._count:
                self.active -= 1


def test_many_tables_are_checked_concurrently_within_the_bound(
    project: ProjectDir, catalog: Path, serve: Any
) -> None:
    names = [f"main.shop.t{i}" for i in range(12)]
    functions = "".join(table_function(f"f{i}", name) for i, name in enumerate(names))
    recording(project, functions, concurrency=3)
    for name in names:
        create_table(catalog, name, rows(1))
    source = CountingSource(catalog)
    serve(project, table_source=source)
    wait_for(lambda: len(deliveries(project)) == 12)
    assert source.most == 3  # twelve tables, three checks at a time: the bound, and used
    assert sorted(d["table"] for d in deliveries(project)) == sorted(names)


def test_lakefn_tables_shows_progress_lag_and_errors(
    project: ProjectDir, catalog: Path, serve: Any
) -> None:
    project.config(
        app_yaml(table_function(start="latest", retry="{max_attempts: 1, backoff_seconds: 0}"))
    )
    project.function("watch", FLAKY)
    create_table(catalog, TABLE, rows(1))
    server = serve(project)
    status = lambda: server.client.get("/lakefn/tables").json()[0]  # noqa: E731
    first = wait_for(lambda: status()["last_check"] and status())
    assert first["function"] == "watch" and first["table"] == TABLE and first["source"] == "local"
    assert first["check_interval"] == 0.05
    (project.root / "fail").touch()
    append(catalog, TABLE, rows(2))
    append(catalog, TABLE, rows(3))
    behind = wait_for(lambda: status()["consecutive_failures"] >= 2 and status())
    assert behind["last_processed_version"] == 0 and behind["latest_version"] == 2
    assert behind["lag_versions"] == 2 and behind["lag_seconds"] > 0
    assert "downstream is down (versions [1, 2])" in behind["last_error"]
    wait_for(lambda: status()["lag_seconds"] > behind["lag_seconds"])  # the owed commit ages
    (project.root / "fail").unlink()
    caught_up = wait_for(lambda: status()["lag_versions"] == 0 and status())
    assert caught_up["last_processed_version"] == 2 and caught_up["lag_seconds"] == 0
    assert caught_up["last_error"] is None and caught_up["consecutive_failures"] == 0
    assert caught_up["last_success"] is not None
    assert deliveries(project) == [{"versions": [1, 2], "previous": 0}]


# -- simulation and replay ----------------------------------------------------------------------


def test_simulate_hands_over_a_fabricated_commit_and_moves_no_checkpoint(
    project: ProjectDir, catalog: Path, serve: Any
) -> None:
    project.config(app_yaml(table_function(start="latest", interval=0.05)))
    project.function("watch", SHOW_EVENT)
    create_table(catalog, TABLE, rows(1))
    server = serve(project)
    wait_for(lambda: server.runtime.checkpoints.load(KEY) == 0)
    answer = server.client.post(
        "/lakefn/functions/watch/invoke",
        json={"operation": "merge", "rows": [{"id": 42, "amount": 1.5}]},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["invocation"]["simulated"] is True
    result = body["result"]
    assert result["simulated"] is True
    [commit] = result["commits"]
    assert commit["operation"] == "MERGE" and commit["version"] == 1
    [row] = result["rows"]
    assert row["id"] == 42 and row["_change_type"] == "insert" and row["_commit_version"] == 1
    more_checks(lambda: server.client.get("/lakefn/tables").json()[0]["last_check"])
    assert server.runtime.checkpoints.load(KEY) == 0  # the real checkpoint did not move
    # ...so the real version 1, when it comes, is delivered as usual.
    append(catalog, TABLE, rows(2))
    wait_for(lambda: server.runtime.checkpoints.load(KEY) == 1)


@pytest.mark.parametrize("processed", [None, 0, 4])
async def test_a_simulated_commit_on_a_table_that_cannot_be_read_comes_after_the_checkpoint(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime], processed: int | None
) -> None:
    # The table is gone (or not made yet): the made-up commit is numbered after what was
    # delivered, version 0 when nothing was.
    project.config(app_yaml(table_function()))
    project.function("watch", SHOW_EVENT)
    rt = runtime()
    if processed is not None:
        rt.checkpoints.save(KEY, processed, expected=None)
    invocation = await rt.simulate_table_change("watch", operation="write")
    assert invocation.ok, invocation.error
    [commit] = invocation.result["commits"]
    assert commit["version"] == (0 if processed is None else processed + 1)


async def test_simulating_a_change_names_an_unknown_function_or_one_that_watches_no_table(
    project: ProjectDir, runtime: Callable[..., Runtime]
) -> None:
    from lakefn import FunctionNotFound, WrongTrigger

    project.config(
        app_yaml(table_function())
        + "  - name: hello\n    trigger: {type: http, method: GET, endpoint: /hello}\n"
    )
    project.function("watch", SHOW_EVENT)
    project.function("hello", "def main(event):\n    return 'hi'\n")
    rt = runtime()
    with pytest.raises(FunctionNotFound) as unknown:
        await rt.simulate_table_change("helo")
    assert str(unknown.value) == "no function named 'helo'; the project has: hello, watch"
    with pytest.raises(WrongTrigger) as wrong:
        await rt.simulate_table_change("hello")
    assert str(wrong.value).startswith("function 'hello' has a http trigger, not unity_table")


async def test_replay_hands_over_real_history_from_a_version(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    recording(project, table_function(start="latest"))
    create_table(catalog, TABLE, rows(1))
    append(catalog, TABLE, rows(2))
    _delete(catalog)
    rt = runtime()
    await rt.watcher.check("watch")
    replay = await rt.simulate_table_change("watch", replay_from=1)
    assert replay.ok and replay.simulated
    assert replay.detail == {"table": TABLE, "versions": [1, 2], "operation": "DELETE"}
    [seen] = deliveries(project)
    assert seen["versions"] == [1, 2] and seen["operations"] == ["WRITE", "DELETE"]
    assert seen["previous"] == 0 and seen["simulated"] is True
    assert seen["function"] == "watch" and seen["table"] == TABLE
    assert rt.checkpoints.load(KEY) == 2  # untouched by the replay
    with pytest.raises(NothingToReplay) as past:
        await rt.simulate_table_change("watch", replay_from=3)
    assert str(past.value) == f"{TABLE} has no versions from 3 on to replay"


# -- table names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["main.sales.orders; DROP TABLE x", "main.sales.`orders", "main.sales", "main.`a`b.c"],
)
def test_table_names_that_could_smuggle_sql_are_refused_before_anything_runs(
    project: ProjectDir, name: str
) -> None:
    project.config(app_yaml(table_function(table=name)))
    project.function("watch", RECORDER)
    with pytest.raises(ConfigError, match="table_name"):
        project.runtime()


async def test_a_quoted_name_with_odd_characters_is_watched_as_one_table(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    # Quoted parts may hold semicolons, dashes and quotes (not what Unity Catalog forbids:
    # periods, slashes, spaces): they name a table, nothing more.
    odd = "main.`sales;DROP--`.`o-r``d`"
    recording(project, table_function(table=odd))
    create_table(catalog, odd, rows(1))
    assert path_for(catalog, odd).relative_to(catalog).parts == ("main", "sales;DROP--", "o-r`d")
    rt = runtime()
    await rt.watcher.check("watch")
    [seen] = deliveries(project)
    assert seen["versions"] == [0] and TableName.parse(seen["table"]) == TableName.parse(odd)


def test_only_a_dead_process_of_this_host_loses_its_lease() -> None:
    import os
    import socket
    import subprocess
    import sys

    from lakefn.watching import holder_is_dead, owner_id

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    assert holder_is_dead(f"{host}:{gone.pid}:abcd1234")
    assert not holder_is_dead(owner_id())  # this process
    assert not holder_is_dead(f"{host}:{os.getppid()}:abcd1234")  # alive
    assert not holder_is_dead(f"another-host:{gone.pid}:abcd1234")  # can't tell: wait it out
    assert not holder_is_dead("not-an-owner-id")


def test_a_live_process_of_another_user_keeps_its_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    # Signalling another user's process is refused (EPERM): it is alive, its lease stands.
    # Root may signal anyone (CI runs as root), so the kernel's answer is played here.
    import socket

    from lakefn.watching import holder_is_dead, lease

    def refused(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(lease.os, "kill", refused)
    assert not holder_is_dead(f"{socket.gethostname()}:1:abcd1234")


async def test_an_http_error_from_a_table_function_is_a_failure_not_an_answer(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    create_table(catalog, TABLE, rows(1))
    project.config(app_yaml(table_function(retry="{max_attempts: 2, backoff_seconds: 0}")))
    project.function(
        "watch",
        "import lakefn\n\ndef main(event):\n    raise lakefn.HttpError(404, 'no such customer')\n",
    )
    rt = runtime()
    invocation = await rt.watcher.check("watch")
    assert invocation is not None and invocation.status == "error" and invocation.attempt == 2
    assert "HTTP 404" in (invocation.error or "")
    assert rt.checkpoints.load(KEY) == -1  # version 0 was not handed over: it comes again


async def test_sys_exit_in_a_table_function_is_its_failure_not_the_servers(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    create_table(catalog, TABLE, rows(1))
    project.config(app_yaml(table_function()))
    project.function("watch", "import sys\n\ndef main(event):\n    sys.exit(3)\n")
    rt = runtime()
    invocation = await rt.watcher.check("watch")
    assert invocation is not None and invocation.status == "error"
    assert "SystemExit: 3" in (invocation.error or "")
    assert rt.checkpoints.load(KEY) == -1


def test_a_range_that_keeps_failing_is_retried_less_and_less_often() -> None:
    from lakefn.watching import FAILURE_BACKOFF_CAP, next_check_in

    assert next_check_in(0.5, 0) == 0.5
    assert [next_check_in(0.5, n) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert next_check_in(0.5, 50) == FAILURE_BACKOFF_CAP
    assert next_check_in(120, 3) == 120  # never more often than the interval itself


async def test_a_failing_function_is_not_called_every_tick(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    create_table(catalog, TABLE, rows(1))
    project.config(app_yaml(table_function(interval=0.02)))
    project.function("watch", FLAKY)
    (project.root / "fail").touch()
    pace = Pace(stop_after=6)
    rt = runtime(sleep=pace)
    await rt.start()
    try:
        await asyncio.wait_for(pace.done.wait(), 60)
    finally:
        await rt.stop()
    # One call per check, and the wait before the next check doubles after each failure.
    assert pace.waits == [0.04, 0.08, 0.16, 0.32, 0.64, 1.28]
    assert len((project.root / "attempts.jsonl").read_text().splitlines()) == 6


async def test_a_table_dropped_and_created_again_is_reported_and_delivered_anew(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    import shutil

    create_table(catalog, TABLE, rows(1))
    append(catalog, TABLE, rows(2))
    append(catalog, TABLE, rows(3))
    recording(project, table_function(start="earliest"))
    rt = runtime()
    await rt.watcher.check("watch")
    assert [d["versions"] for d in deliveries(project)] == [[0, 1, 2]]
    shutil.rmtree(path_for(catalog, TABLE))
    create_table(catalog, TABLE, rows(10))  # the new table's version 0
    await rt.watcher.check("watch")
    assert [d["versions"] for d in deliveries(project)] == [[0, 1, 2], [0]]
    assert deliveries(project)[-1]["previous"] is None
    [report] = [i for i in rt.journal.entries() if "created again" in (i.error or "")]
    assert report.detail["recreated"] == {"was": 2, "now": 0}
    append(catalog, TABLE, rows(11))
    await rt.watcher.check("watch")
    assert [d["versions"] for d in deliveries(project)][-1] == [1]


# -- leases and the cost of looking -------------------------------------------------------------


async def test_a_holder_whose_lease_lapsed_and_was_taken_over_reloads_the_checkpoint(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    recording(project, table_function(start="latest"))
    create_table(catalog, TABLE, rows(0))
    clock = FakeClock()
    state = project.root / "state.db"
    # Two servers on one state file; the lease's time is the test's to move.
    one = runtime(checkpoints=SQLiteCheckpointStore(state, clock=store_seconds(clock)), clock=clock)
    two = runtime(checkpoints=SQLiteCheckpointStore(state, clock=store_seconds(clock)), clock=clock)
    await one.watcher.check("watch")
    append(catalog, TABLE, rows(1))
    await one.watcher.check("watch")  # one delivers version 1 and remembers it
    assert await two.watcher.check("watch") is None  # one holds the lease: two waits
    clock.advance(11)  # one stalls past its 10 s lease; two takes over and delivers 2
    append(catalog, TABLE, rows(2))
    await two.watcher.check("watch")
    clock.advance(11)  # two goes quiet in turn: the lease comes back to one
    append(catalog, TABLE, rows(3))
    await one.watcher.check("watch")
    # One must not trust the checkpoint it remembered (1): two moved it to 2 meanwhile.
    assert [d["versions"] for d in deliveries(project)] == [[1], [2], [3]]
    assert deliveries(project)[-1]["previous"] == 2
    assert one.checkpoints.load(KEY) == 3


#: a table function that runs until the test lets it finish
HOLDING = """\
import json, pathlib, time

HERE = pathlib.Path(__file__).resolve().parent.parent

def main(event):
    (HERE / "started").touch()
    while not (HERE / "finish").exists():
        time.sleep(0.01)
    with open(HERE / "deliveries.jsonl", "a") as out:
        out.write(json.dumps({"versions": [c.version for c in event.commits]}) + "\\n")
"""


async def test_the_lease_is_renewed_while_a_delivery_runs_longer_than_it(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    # A function may run past the lease's 10 s: the watcher renews it meanwhile, or another
    # server would take the table over and deliver the same versions again.
    project.config(app_yaml(table_function(start="latest")))
    project.function("watch", HOLDING)
    create_table(catalog, TABLE, rows(0))
    clock = FakeClock()
    state = project.root / "state.db"
    one = runtime(checkpoints=SQLiteCheckpointStore(state, clock=store_seconds(clock)), clock=clock)
    two = runtime(checkpoints=SQLiteCheckpointStore(state, clock=store_seconds(clock)), clock=clock)
    await one.watcher.check("watch")  # version 0: the starting point
    append(catalog, TABLE, rows(1))
    delivery = asyncio.ensure_future(one.watcher.check("watch"))
    await asyncio.to_thread(wait_for, lambda: (project.root / "started").exists())

    def lease_until() -> float:
        # closing(): a Connection's own `with` commits but leaves it open (3.13 warns).
        with contextlib.closing(sqlite3.connect(state)) as db:
            return float(
                db.execute("SELECT expires_at FROM leases WHERE key = ?", (KEY,)).fetchone()[0]
            )

    taken = lease_until()
    clock.advance(9)  # the lease would run out in 1 s of the store's time...
    await asyncio.to_thread(wait_for, lambda: lease_until() > taken)  # ...but it is renewed
    clock.advance(9)  # past the first term: only the renewal still holds it
    try:
        assert await two.watcher.check("watch") is None  # two must not take over
    finally:
        (project.root / "finish").touch()
        await delivery
    assert [d["versions"] for d in deliveries(project)] == [[1]]


async def test_a_lease_left_by_a_crashed_process_of_this_host_is_taken_at_once(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    # Not after its 10 s: the process that held it is gone, nobody will renew it.
    import socket
    import subprocess
    import sys

    recording(project, table_function())
    create_table(catalog, TABLE, rows(0))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    clock = FakeClock()
    store = SQLiteCheckpointStore(project.root / "state.db", clock=store_seconds(clock))
    crashed = f"{socket.gethostname()}:{gone.pid}:abcd1234"
    assert store.acquire(KEY, crashed, ttl=10)
    rt = runtime(checkpoints=store, clock=clock)
    await rt.watcher.check("watch")
    assert [d["versions"] for d in deliveries(project)] == [[0]]


class IdentityCountingSource(LocalDeltaSource):
    """The real local source, counting how often the watcher asks for a table's identity."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.identity_reads = 0

    def table_id(self, table: TableName) -> str | None:
        self.identity_reads += 1
        return super().table_id(table)


async def test_an_idle_check_does_not_read_the_tables_identity(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    recording(project, table_function(start="latest"))
    create_table(catalog, TABLE, rows(0))
    source = IdentityCountingSource(catalog)
    rt = runtime(table_source=source)
    await rt.watcher.check("watch")
    append(catalog, TABLE, rows(1))
    await rt.watcher.check("watch")
    reads = source.identity_reads
    for _ in range(5):
        assert await rt.watcher.check("watch") is None
    assert source.identity_reads == reads  # nothing new: only the version probe
    append(catalog, TABLE, rows(2))
    await rt.watcher.check("watch")
    assert source.identity_reads == reads + 1  # news: one look, to tell a recreated table


class JournalOnAFullDisk(Journal):
    """The real journal, failing every write as a durable one would on a full disk."""

    def record(self, invocation: Invocation) -> None:
        raise OSError(28, "No space left on device")


async def test_an_unexpected_error_on_every_check_is_logged_once_not_once_per_check(
    project: ProjectDir,
    catalog: Path,
    runtime: Callable[..., Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lakefn")
    recording(project, table_function())
    create_table(catalog, TABLE, rows(1))
    pace = Pace(stop_after=5)
    rt = runtime(journal=JournalOnAFullDisk(), sleep=pace)
    await rt.start()
    try:
        await asyncio.wait_for(pace.done.wait(), 60)
    finally:
        await rt.stop()
    assert len(deliveries(project)) == 5  # version 0 is never recorded: tried on each check
    said = [r for r in caplog.records if r.name == "lakefn.tables"]
    assert [r.levelname for r in said] == ["ERROR"]  # no "readable again" in between
    assert "No space left on device" in said[0].getMessage()


# -- time from the clock handed in ----------------------------------------------------------------


async def test_a_fake_clock_drives_the_watchers_leases_and_lag(project: ProjectDir) -> None:
    from datetime import datetime, timezone

    from lakefn.checkpoints.memory import MemoryCheckpointStore
    from lakefn.invoker import Invoker
    from lakefn.project import load_functions, load_project
    from lakefn.sources.recorded import RecordedSource
    from lakefn.watching import TableWatcher

    project.config(app_yaml(table_function(retry="{max_attempts: 1, backoff_seconds: 0}")))
    project.function("watch", FLAKY)
    (project.root / "fail").touch()
    committed = datetime(2030, 1, 1, tzinfo=timezone.utc)
    clock = FakeClock(committed)
    source = RecordedSource()
    source.append_commit(TABLE, rows=rows(1), timestamp=committed)
    store = MemoryCheckpointStore(clock=store_seconds(clock))
    loaded = load_project(project.app_yaml)
    journal = Journal()
    invoker = Invoker(load_functions(loaded), journal)
    # Two processes' watchers on one store, made of their parts: no runtime, no real time.
    one, two = (
        TableWatcher(
            loaded, invoker=invoker, journal=journal, source=source, checkpoints=store, clock=clock
        )
        for _ in range(2)
    )
    try:
        clock.advance(30)
        failed = await one.check("watch")
        assert failed is not None and not failed.ok  # version 0 is owed from now on
        [status] = one.status()
        assert status["lag_seconds"] == 30.0 and status["last_check"] == clock.now().isoformat()
        clock.advance(5)
        assert await two.check("watch") is None  # one's 10 s lease holds
        assert one.status()[0]["lag_seconds"] == 35.0
        clock.advance(10)  # one went quiet: its lease ran out on the store's (fake) clock
        (project.root / "fail").unlink()
        delivered = await two.check("watch")
        assert delivered is not None and delivered.ok and store.load(KEY) == 0
        assert two.status()[0]["lag_seconds"] == 0.0
        assert two.status()[0]["last_success"] == clock.now().isoformat()
        assert await one.check("watch") is None  # two holds it now
        assert one.states["watch"].lease_until == 0.0
    finally:
        invoker.close()


async def test_a_simulated_change_reads_like_a_real_tables_change_feed(
    project: ProjectDir, catalog: Path, runtime: Callable[..., Runtime]
) -> None:
    from datetime import datetime, timezone

    project.config(app_yaml(table_function()))
    marks = '"raw_marks": [c.raw.get("simulated") for c in event.commits],'
    project.function("watch", SHOW_EVENT.replace('"simulated": event.simulated,', marks, 1))
    create_table(catalog, TABLE, rows(1))
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=timezone.utc))
    rt = runtime(clock=clock)
    deleted = await rt.simulate_table_change(
        "watch", operation="delete", rows=[{"id": 7, "amount": 1.5, "_change_type": "insert"}]
    )
    assert deleted.ok and deleted.simulated, deleted.error
    assert deleted.result["raw_marks"] == [True]  # the raw history row says it too
    [commit] = deleted.result["commits"]
    assert commit == {
        "version": 1,  # after the table's latest
        "timestamp": clock.now().isoformat(),  # the runtime's time, not the machine's
        "operation": "DELETE",
        "operation_parameters": {"simulated": True},
        "operation_metrics": {"numOutputRows": 1},
        "user_name": "lakefn simulate",
    }
    [row] = deleted.result["rows"]
    # The table's columns first, then the feed's own; a DELETE's rows are deletions.
    assert list(row) == ["id", "amount", "_change_type", "_commit_version", "_commit_timestamp"]
    assert row["_change_type"] == "delete" and row["_commit_version"] == 1
    assert row["_commit_timestamp"] == clock.now()
    bare = await rt.simulate_table_change("watch", operation="OPTIMIZE", version=9)
    assert bare.ok and bare.result["rows"] == []  # no rows: an empty change feed, not an error
    assert bare.result["commits"][0]["operation_metrics"] == {}
    assert bare.detail["versions"] == [9, 9] and bare.detail["operation"] == "OPTIMIZE"
    assert rt.checkpoints.load(KEY) is None  # nothing real was touched
    assert LocalDeltaSource(catalog).latest_version(TableName.parse(TABLE)) == 0


def test_a_recorded_overlay_reads_recorded_tables_from_their_history_and_others_from_below(
    catalog: Path,
) -> None:
    from lakefn.sources.recorded import RecordedOverlay

    create_table(catalog, TABLE, rows(1))
    overlay = RecordedOverlay(LocalDeltaSource(catalog))
    other = TableName.parse("main.sales.returns")
    overlay.recorded.append_commit(other, "MERGE", rows=[], version=4)
    assert overlay.name == "local"
    assert overlay.latest_version(TableName.parse(TABLE)) == 0  # the real table
    assert overlay.latest_version(other) == 4  # the recorded one
    empty = overlay.changes(other, 4, 4)
    assert empty.num_rows == 0
    assert empty.column_names == ["_change_type", "_commit_version", "_commit_timestamp"]
    overlay.close()
