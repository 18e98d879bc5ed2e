"""`lakefn run NAME`: a timer or table function run once, as its Databricks Job runs it, in a
real subprocess, on real local Delta tables with the SQLite state, and the core cases with a
PostgreSQL state too."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakefn.sources.local import path_for
from tests._postgres import PostgresServer, new_schema
from tests._serving import clean_env
from tests.conftest import LAKEFN, run_cli

APP = """\
tables: {source: local}
functions:
  - name: etl
    trigger: {type: unity_table, start: earliest, check_interval: 60}
    table_name: main.sales.orders
    run_on: job
    retry: {max_attempts: 2, backoff_seconds: 0}
  - name: merges
    trigger: {type: unity_table, operations: [MERGE], start: earliest}
    table_name: main.sales.orders
    run_on: job
  - name: nightly
    trigger: {type: timer, schedule: "30 2 * * 1-5", timezone: Europe/Amsterdam}
    run_on: job
  - name: hello
    trigger: {type: http, endpoint: /hello}
"""

# Each delivery appends its versions to delivered.log; `fail` makes it fail; with `hold`
# present it writes `started` and waits for `go` (the test's explicit signal, no sleeps).
ETL = """\
import pathlib, time

HERE = pathlib.Path(__file__).resolve().parent.parent

def main(event):
    if (HERE / "hold").exists():
        (HERE / "started").write_text("x")
        while not (HERE / "go").exists():
            time.sleep(0.01)
    if (HERE / "fail").exists():
        raise RuntimeError("the warehouse said no")
    with open(HERE / "delivered.log", "a") as log:
        for commit in event.commits:
            log.write(f"{commit.version}\\n")
    return len(event.commits)
"""


@pytest.fixture
def proj(project):
    project.config(APP)
    project.function("etl", ETL)
    project.function("merges", "def main(event):\n    return None\n")
    project.function(
        "nightly",
        "def main(event):\n    return {'at': event.scheduled_time.isoformat(), 'late': event.past_due}\n",
    )
    project.function("hello", "def main(event):\n    return 'hi'\n")
    return project


def _env(state: str | None = None) -> dict[str, str]:
    return clean_env() if state is None else clean_env(LAKEFN_STATE=state)


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest) -> str | None:
    """Where the runs keep checkpoints: the project's SQLite file, or a PostgreSQL schema of
    their own (a job's compute keeps no file between runs: this is what a job uses)."""
    if request.param == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url(schema=new_schema())


def _commit(proj, n: int) -> None:
    table = path_for(proj.root / ".lakefn" / "catalog", "main.sales.orders")
    write_deltalake(str(table), pa.table({"id": [n]}), mode="append")


def _delivered(proj) -> list[int]:
    log = proj.root / "delivered.log"
    return [int(v) for v in log.read_text().split()] if log.exists() else []


def _run(proj, *args: str, state: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("run", *args, "--app", str(proj.root), env=_env(state))


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.stdout.count("\n") == 1, result.stdout  # one JSON object, one line
    return json.loads(result.stdout)


def test_consecutive_runs_deliver_each_version_once(proj, state) -> None:
    _commit(proj, 0)
    _commit(proj, 1)
    first = _run(proj, "etl", state=state)
    assert first.returncode == 0, first.stderr
    assert "etl: versions 0..1: ok" in first.stdout
    assert _delivered(proj) == [0, 1]

    again = _run(proj, "etl", state=state)
    assert again.returncode == 0
    assert "etl: nothing new in main.sales.orders (checkpoint 1)" in again.stdout
    assert _delivered(proj) == [0, 1]

    _commit(proj, 2)
    third = _run(proj, "etl", state=state)
    assert third.returncode == 0 and "etl: version 2: ok" in third.stdout
    assert _delivered(proj) == [0, 1, 2]
    # The state really is where it was said to be: no file beside a PostgreSQL state.
    assert (proj.root / ".lakefn" / "state.db").exists() == (state is None)


def test_a_failing_function_fails_the_run_and_the_next_run_delivers_again(proj, state) -> None:
    _commit(proj, 0)
    (proj.root / "fail").write_text("x")
    failed = _run(proj, "etl", "--json", state=state)
    assert failed.returncode == 1
    report = _json(failed)
    assert report["outcome"] == "failed" and report["ok"] is False
    assert "the warehouse said no" in report["error"]
    assert report["invocations"][0]["attempt"] == 2  # its retry policy ran out first
    assert report["checkpoint"] == {"before": None, "after": -1}
    assert report["delivered_versions"] == []

    (proj.root / "fail").unlink()
    retried = _run(proj, "etl", "--json", state=state)
    assert retried.returncode == 0
    assert _json(retried)["delivered_versions"] == [0]
    assert _delivered(proj) == [0]


def test_plain_failure_goes_to_stderr_without_traceback(proj) -> None:
    _commit(proj, 0)
    (proj.root / "fail").write_text("x")
    failed = _run(proj, "etl")
    assert failed.returncode == 1
    assert "etl: version 0: error after 2 attempt(s)" in failed.stderr
    assert "the warehouse said no" in failed.stderr


def test_two_runs_started_at_once_deliver_each_version_once(proj, state) -> None:
    for n in range(3):
        _commit(proj, n)
    runs = [
        subprocess.Popen(
            [LAKEFN, "run", "etl", "--json", "--app", str(proj.root)],
            env=_env(state),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    reports = [json.loads(out) for out, _ in outputs]
    assert sorted(v for r in reports for v in r["delivered_versions"]) == [0, 1, 2]
    assert _delivered(proj) == [0, 1, 2]


def test_a_run_waits_for_the_lease_holder_or_says_it_holds_it(proj) -> None:
    _commit(proj, 0)
    (proj.root / "hold").write_text("x")
    holder = subprocess.Popen(
        [LAKEFN, "run", "etl", "--json", "--app", str(proj.root)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (proj.root / "started").exists():
            assert holder.poll() is None and time.monotonic() < deadline, holder.stderr
            time.sleep(0.02)
        busy = _run(proj, "etl", "--json", "--lease-wait", "0")
        assert busy.returncode == 0
        report = _json(busy)
        assert report["outcome"] == "busy" and report["delivered_versions"] == []
        assert "another run holds the lease on main.sales.orders" in report["error"]

        _commit(proj, 1)  # lands while the holder still delivers version 0
        waiter = subprocess.Popen(
            [LAKEFN, "run", "etl", "--json", "--app", str(proj.root)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        (proj.root / "hold").unlink()
        (proj.root / "go").write_text("x")
        held_out, _ = holder.communicate(timeout=60)
        waited_out, _ = waiter.communicate(timeout=60)
    finally:
        holder.kill()
    assert holder.returncode == 0 and waiter.returncode == 0
    versions = (
        json.loads(held_out)["delivered_versions"] + json.loads(waited_out)["delivered_versions"]
    )
    assert sorted(versions) == [0, 1]
    assert _delivered(proj) == [0, 1]


def test_json_shape_of_a_table_run(proj) -> None:
    _commit(proj, 0)
    result = _run(proj, "etl", "--json")
    report = _json(result)
    assert set(report) == {
        "function",
        "trigger",
        "ok",
        "outcome",
        "error",
        "invocations",
        "notes",
        "table",
        "checkpoint",
        "delivered_versions",
    }
    assert report["function"] == "etl" and report["trigger"] == "unity_table"
    assert report["ok"] is True and report["outcome"] == "delivered" and report["error"] is None
    assert report["table"] == "main.sales.orders"
    assert report["checkpoint"] == {"before": None, "after": 0}
    (call,) = report["invocations"]
    assert call["status"] == "ok" and call["versions"] == [0, 0] and len(call["id"]) > 0
    assert {"id", "started_at", "duration_ms", "attempt", "error"} <= set(call)
    nothing = _json(_run(proj, "etl", "--json"))
    assert nothing["outcome"] == "nothing_new" and nothing["invocations"] == []
    assert nothing["checkpoint"] == {"before": 0, "after": 0}


def test_commits_the_operations_filter_skips_advance_without_a_call(proj) -> None:
    _commit(proj, 0)  # WRITE (creation), not a MERGE
    _commit(proj, 1)
    report = _json(_run(proj, "merges", "--json"))
    assert report["outcome"] == "nothing_new" and report["invocations"] == []
    assert report["checkpoint"] == {"before": None, "after": 1}


def test_a_recreated_table_is_reported_and_its_new_history_delivered(proj) -> None:
    for n in range(3):
        _commit(proj, n)
    assert _run(proj, "etl").returncode == 0
    import shutil

    shutil.rmtree(path_for(proj.root / ".lakefn" / "catalog", "main.sales.orders"))
    _commit(proj, 10)
    report = _json(_run(proj, "etl", "--json"))
    assert report["delivered_versions"] == [0]
    (note,) = report["notes"]
    assert "dropped and created again" in note["message"]
    assert note["recreated"] == {"was": 2, "now": 0}


def test_timer_run_passes_the_trigger_time_and_past_due(proj) -> None:
    report = _json(_run(proj, "nightly", "--json", "--scheduled-time", "2026-03-02T01:30:00.000Z"))
    assert report["ok"] is True and report["outcome"] == "ok"
    assert report["scheduled_time"] == "2026-03-02T01:30:00+00:00"
    assert report["past_due"] is True  # years ago
    assert set(report) == {
        "function",
        "trigger",
        "ok",
        "outcome",
        "error",
        "invocations",
        "notes",
        "scheduled_time",
        "past_due",
    }
    now = _json(_run(proj, "nightly", "--json"))
    assert now["past_due"] is False


def test_run_refuses_http_functions_bad_times_and_unknown_names(proj) -> None:
    http = _run(proj, "hello")
    assert http.returncode == 1
    assert "hello is an http function" in http.stderr and "lakefn invoke hello" in http.stderr
    bad = _run(proj, "nightly", "--scheduled-time", "yesterday")
    assert bad.returncode == 1 and "is not an ISO 8601 time" in bad.stderr
    unknown = _run(proj, "nope")
    assert unknown.returncode == 1 and "nope" in unknown.stderr
    for result in (http, bad, unknown):
        assert "Traceback" not in result.stderr


def test_a_missing_table_fails_the_run(proj) -> None:
    result = _run(proj, "etl", "--json")
    assert result.returncode == 1
    report = _json(result)
    assert report["outcome"] == "failed" and "main.sales.orders" in report["error"]


def test_run_with_a_checkpoint_already_there_delivers_only_what_is_after(proj) -> None:
    _commit(proj, 0)
    assert _run(proj, "etl").returncode == 0
    _commit(proj, 1)
    _commit(proj, 2)
    report = _json(_run(proj, "etl", "--json"))
    assert report["checkpoint"] == {"before": 0, "after": 2}
    assert report["delivered_versions"] == [1, 2]
    assert Path(proj.root / ".lakefn" / "state.db").exists()


def test_a_state_store_that_cannot_open_fails_the_run_plainly(proj) -> None:
    _commit(proj, 0)
    proj.config(
        APP.replace("tables: {source: local}", "tables: {source: local}\nstate: app.yaml/state.db")
    )
    result = _run(proj, "etl")
    assert result.returncode == 1
    assert "etl: failed: cannot open the checkpoint store" in result.stderr
    assert "Traceback" not in result.stderr
    assert _delivered(proj) == []
