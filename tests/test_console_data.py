"""What the console and /lakefn/* say about a project: the one-word table states, what a viewer
sees of an error, and what the project header shows of where state lives."""

from __future__ import annotations

import asyncio

import pytest

from lakefn.access import Role
from lakefn.console import data
from lakefn.sources.local import append, create_table

BASE = {
    "function": "f",
    "check_interval": 30.0,
    "last_check": "2026-01-01T00:00:00+00:00",
    "last_error": None,
    "consecutive_failures": 0,
    "lag_versions": 0,
    "lag_seconds": 0.0,
}


@pytest.mark.parametrize(
    ("changes", "run_on", "state"),
    [
        ({}, "app", "healthy"),
        ({"lag_versions": 2, "lag_seconds": 12.0}, "app", "healthy"),  # within two intervals
        ({"lag_versions": 2, "lag_seconds": 61.0}, "app", "lagging"),
        ({"last_error": "TableNotFound: gone"}, "app", "failing"),
        (
            {"last_error": "versions 3..4: ValueError: x", "consecutive_failures": 2},
            "app",
            "failing",
        ),
        ({"consecutive_failures": 2}, "app", "backing off"),
        ({"last_check": None}, "app", "waiting"),
        ({"last_error": "x"}, "job", "job"),
    ],
)
def test_a_watched_table_gets_one_state(changes, run_on, state) -> None:
    assert data.table_state({**BASE, **changes}, run_on) == state


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("ValueError: password s3cr3t", "ValueError"),
        ("versions 3..4: PermissionError: s3://bucket denied", "PermissionError"),
        ("the checkpoint store failed: disk I/O error", "(hidden)"),
        ("ada@example.com: not allowed", "(hidden)"),
    ],
)
def test_a_viewer_sees_an_errors_type_never_its_text(text, shown) -> None:
    entry = {"error": text, "last_error": text, "logs": [{"message": "s3cr3t"}]}
    viewed = data.without_error_text(entry)
    assert viewed == {"error": shown, "last_error": shown}


def test_the_state_url_is_shown_without_its_password(project, monkeypatch) -> None:
    project.config("functions: []\n")
    monkeypatch.setenv("LAKEFN_STATE", "postgresql://lakefn:hunter2@db.internal:5432/lakefn")
    info = data.project(project.runtime(), None)
    assert info["state"] == "postgresql://lakefn:***@db.internal:5432/lakefn"
    assert "hunter2" not in str(info)


def test_a_databricks_app_with_a_local_state_file_is_warned(project, monkeypatch) -> None:
    project.config("state: .lakefn/state.db\nfunctions: []\n")
    assert data.project(project.runtime(), None)["state_warning"] is None
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    assert "wiped on every restart" in data.project(project.runtime(), None)["state_warning"]
    for shared in ("lakebase", "lakebase?schema=app", "lakebase?instance=prod-state"):
        monkeypatch.setenv("LAKEFN_STATE", shared)
        info = data.project(project.runtime(), None)
        assert info["state_warning"] is None and info["state"] == shared


def test_calls_and_failures_over_the_last_hour_and_filters_by_status(project) -> None:
    project.config("""\
        functions:
          - name: ok
            trigger: {type: http, method: POST, endpoint: /ok}
          - name: bad
            trigger: {type: http, method: POST, endpoint: /bad}
        """)
    project.function("ok", "def main(event):\n    return 1\n")
    project.function("bad", "def main(event):\n    raise ValueError('no')\n")
    runtime = project.runtime()
    try:
        for name in ("ok", "ok", "bad"):
            runtime.invoke_sync(name)
        counts = {f["name"]: f["last_hour"] for f in data.functions(runtime, Role.ADMIN)}
        assert counts == {"ok": {"calls": 2, "failures": 0}, "bad": {"calls": 1, "failures": 1}}
        errors = data.invocations(runtime, Role.ADMIN, status="error")
        assert [(i["function"], i["status"]) for i in errors] == [("bad", "error")]
        assert len(data.invocations(runtime, Role.ADMIN, status="ok", limit=1)) == 1
    finally:
        runtime.close()


def test_a_table_that_keeps_failing_is_failing_with_its_error(project) -> None:
    project.config("""\
        tables: {source: local, local_root: catalog}
        state: state.db
        functions:
          - name: feed
            trigger: {type: unity_table, check_interval: 30}
            table_name: main.s.t
        """)
    project.function("feed", "def main(event):\n    raise RuntimeError('ledger closed')\n")
    create_table(project.root / "catalog", "main.s.t", [{"id": 1}])
    runtime = project.runtime()

    async def go() -> list[dict]:
        await runtime.watcher.check("feed")  # the first check records where it starts
        append(project.root / "catalog", "main.s.t", [{"id": 2}])
        await runtime.watcher.check("feed")
        return data.tables(runtime, Role.ADMIN) + data.tables(runtime, Role.VIEWER)

    try:
        admin, viewer = asyncio.run(go())
    finally:
        runtime.close()
    assert admin["state"] == viewer["state"] == "failing"
    assert admin["last_error"] == "versions 1..1: RuntimeError: ledger closed"
    assert viewer["last_error"] == "RuntimeError"
    assert admin["next_check_in"] == 60.0  # backing off: twice the interval
