"""Tests for the sample project's functions (app.yaml and functions/ at the repo root), written
as a lakefn user writes them: the `lakefn` fixture comes with the package, no conftest needed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lakefn.testing import FunctionFailed, LakefnHarness

DATA = Path(__file__).parent / "data"
TABLE = "_data.tpch.dim_customer"


# -- an HTTP function ----------------------------------------------------------------------


def test_example_http_greets_by_name(lakefn: LakefnHarness) -> None:
    assert lakefn.invoke("example_http", {"name": "Ada"}) == {"hello": "Ada", "user": None}


def test_example_http_over_real_http(lakefn: LakefnHarness) -> None:
    response = lakefn.client.post(
        "/run-example", json={"name": "Ada"}, headers={"X-Forwarded-Email": "ada@example.com"}
    )
    assert response.status_code == 200
    assert response.json() == {"hello": "Ada", "user": "ada@example.com"}


def test_example_http_refuses_a_body_that_is_not_json(lakefn: LakefnHarness) -> None:
    response = lakefn.client.post("/run-example", content=b"not json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_every_run_is_in_the_journal(lakefn: LakefnHarness) -> None:
    lakefn.invoke("example_http", {"name": "Ada"})
    lakefn.client.post("/run-example", json={})
    assert [(i.function, i.status) for i in lakefn.journal] == [
        ("example_http", "ok"),
        ("example_http", "ok"),
    ]
    duration = lakefn.last_invocation.duration
    assert duration is not None and duration >= 0


# -- a timer function ------------------------------------------------------------------------


def test_scheduled_task_gets_its_tick_time(lakefn: LakefnHarness) -> None:
    tick = datetime(2026, 1, 1, 12, 5, tzinfo=timezone.utc)
    lakefn.clock.set(tick)
    assert lakefn.fire_timer("scheduled_task", at=tick) == {
        "scheduled_time": "2026-01-01T12:05:00+00:00",
        "past_due": False,
    }


def test_scheduled_task_knows_when_it_runs_late(lakefn: LakefnHarness) -> None:
    tick = lakefn.clock.now()
    lakefn.clock.advance(minutes=3)
    assert lakefn.fire_timer("scheduled_task", at=tick)["past_due"] is True


# -- a unity_table function ------------------------------------------------------------------


def test_unity_monitor_on_a_simulated_merge(lakefn: LakefnHarness) -> None:
    result = lakefn.simulate_table_change(
        "unity_monitor", operation="MERGE", rows=[{"c_custkey": 1}], version=7
    )
    assert result == {"table": TABLE, "versions": [7], "operations": ["MERGE"]}


def test_unity_monitor_on_real_delta_commits(lakefn: LakefnHarness) -> None:
    lakefn.tables.create(TABLE, [{"c_custkey": 1, "c_name": "Customer#1"}])
    assert lakefn.check("unity_monitor") is None  # the first check only records where it starts

    lakefn.tables.append(TABLE, [{"c_custkey": 2, "c_name": "Customer#2"}])
    lakefn.tables.delete(TABLE, "c_custkey = 1")
    assert lakefn.check("unity_monitor") == {
        "table": TABLE,
        "versions": [1, 2],
        "operations": ["WRITE", "DELETE"],
    }
    assert lakefn.check("unity_monitor") is None  # delivered once: the checkpoint moved


def test_unity_monitor_replays_a_history_exported_from_databricks(lakefn: LakefnHarness) -> None:
    commits = lakefn.load_history(TABLE, DATA / "dim_customer_history.csv")
    assert [c.operation for c in commits][-2:] == ["MERGE", "OPTIMIZE"]
    result = lakefn.simulate_table_change("unity_monitor", replay_from=2)
    assert result == {"table": TABLE, "versions": [2, 3], "operations": ["MERGE", "OPTIMIZE"]}


# -- what a failure looks like ------------------------------------------------------------------


def test_a_failing_function_names_itself_and_its_invocation(lakefn: LakefnHarness) -> None:
    # example_http reads event.json(): a list has no .get, so the function fails.
    with pytest.raises(FunctionFailed) as failed:
        lakefn.invoke("example_http", ["not", "an", "object"])
    invocation = lakefn.last_invocation
    assert invocation.status == "error"
    assert failed.value.invocation_id == invocation.id
    assert "example_http" in str(failed.value) and invocation.id in str(failed.value)
    assert isinstance(failed.value.__cause__, AttributeError)


def test_clock_moves_only_when_told(lakefn: LakefnHarness) -> None:
    before = lakefn.clock.now()
    assert lakefn.clock.advance(timedelta(hours=1)) - before == timedelta(hours=1)
