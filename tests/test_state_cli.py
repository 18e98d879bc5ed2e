"""`lakefn checkpoints [set]` and `lakefn logs` against the state a real `lakefn serve` uses."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._postgres import PostgresServer, new_schema
from tests._serving import (
    TABLE,
    Served,
    clean_env,
    commit,
    project_servers,
    ready,
    sink_project,
    versions,
    wait_for,
)
from tests.conftest import ProjectDir, run_cli
from tests.test_notebook_magics import ip, magic, sample  # noqa: F401 - fixtures


@pytest.fixture
def servers() -> Iterator[Callable[..., Served]]:
    yield from project_servers()


@pytest.fixture
def pg_project(project: ProjectDir, postgres: PostgresServer) -> ProjectDir:
    return sink_project(project, postgres.url(schema=new_schema()))


@pytest.fixture
def delivered_three(pg_project: ProjectDir, servers: Callable[..., Served]) -> Served:
    """A server on `pg_project` that has delivered versions 1 to 3."""
    server = servers(pg_project)
    ready(server)
    commit(pg_project, 3)
    wait_for(lambda: versions(pg_project) == [1, 2, 3])
    return server


def test_checkpoints_lists_version_and_the_live_lease(
    pg_project: ProjectDir, delivered_three: Served
) -> None:
    server = delivered_three
    done = run_cli("checkpoints", "--json", cwd=pg_project.root, env=clean_env())
    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)
    assert (row["function"], row["table"], row["version"]) == ("sink", TABLE, 3)
    assert row["lease_holder"].split(":")[1] == str(server.pid)
    assert row["updated_at"] and row["lease_expires"] > row["updated_at"]
    text = run_cli("checkpoints", cwd=pg_project.root, env=clean_env()).stdout
    assert "LEASE HOLDER" in text and f"sink      {TABLE}  3" in text


def test_set_is_refused_while_a_live_server_delivers_then_forced_rewinds_it(
    pg_project: ProjectDir, delivered_three: Served
) -> None:
    server = delivered_three
    refused = run_cli("checkpoints", "set", "sink", "0", cwd=pg_project.root, env=clean_env())
    assert refused.returncode == 1
    assert "holds the lease" in refused.stderr and "--force" in refused.stderr
    assert f":{server.pid}:" in refused.stderr
    forced = run_cli(
        "checkpoints", "set", "sink", "0", "--force", cwd=pg_project.root, env=clean_env()
    )
    assert forced.returncode == 0, forced.stderr
    assert "checkpoint 3 -> 0" in forced.stdout
    # The running server gives up its remembered position and delivers 1..3 again.
    wait_for(lambda: Counter(versions(pg_project))[3] == 2, timeout=30)
    assert sorted(versions(pg_project)) == [1, 1, 2, 2, 3, 3]
    commit(pg_project)
    wait_for(lambda: versions(pg_project)[-1:] == [4])


def test_set_skips_ahead_while_no_server_runs_and_honours_lakefn_state(
    project: ProjectDir, postgres: PostgresServer, servers: Callable[..., Served]
) -> None:
    # app.yaml names a SQLite file; LAKEFN_STATE points every command at PostgreSQL instead.
    proj = sink_project(project, "state.db")
    state = postgres.url(schema=new_schema())
    server = servers(proj, env={"LAKEFN_STATE": state})
    ready(server)
    server.stop(signal.SIGTERM)
    commit(proj, 5)
    moved = run_cli(
        "checkpoints", "set", "sink", "3", cwd=proj.root, env=clean_env(LAKEFN_STATE=state)
    )
    assert moved.returncode == 0, moved.stderr
    assert "checkpoint 0 -> 3" in moved.stdout and "starts at version 4" in moved.stdout
    servers(proj, env={"LAKEFN_STATE": state})
    wait_for(lambda: versions(proj) == [4, 5])
    assert not (proj.root / "state.db").exists()
    wrong = run_cli(
        "checkpoints", "set", "nope", "3", cwd=proj.root, env=clean_env(LAKEFN_STATE=state)
    )
    assert wrong.returncode == 1 and "not a unity_table function" in wrong.stderr


def test_logs_shows_invocations_across_restarts_with_their_log_lines(
    project: ProjectDir, servers: Callable[..., Served]
) -> None:
    proj = sink_project(project, "state.db")
    proj.function(
        "sink",
        """\
        def main(event):
            for commit in event.commits:
                event.log.info("saw version %d", commit.version)
        """,
    )
    first = servers(proj)
    ready(first)
    commit(proj, 2)
    wait_for(lambda: len(first.invocations()) >= 1 and _delivered_up_to(first) == 2)
    first.stop(signal.SIGTERM)
    servers(proj)  # a new process: the history is still there
    shown = run_cli("logs", "-n", "5", "--function", "sink", cwd=proj.root, env=clean_env())
    assert shown.returncode == 0, shown.stderr
    assert "sink  ok" in shown.stdout
    assert "| INFO [" in shown.stdout and "saw version 2" in shown.stdout
    as_json = run_cli("logs", "--json", cwd=proj.root, env=clean_env()).stdout.splitlines()
    entries = [json.loads(line) for line in as_json]
    assert {e["process"].rpartition(":")[2] for e in entries} == {str(first.pid)}
    none = run_cli("logs", "--function", "other", cwd=proj.root, env=clean_env())
    assert none.returncode == 0 and none.stdout == ""


def _delivered_up_to(server: Served) -> int | None:
    return server.tables()["last_processed_version"]  # type: ignore[no-any-return]


def test_local_state_on_a_databricks_app_is_called_out_with_the_fix(
    project: ProjectDir, servers: Callable[..., Served]
) -> None:
    proj = sink_project(project, ".lakefn/state.db")
    as_app = {"DATABRICKS_APP_NAME": "orders-app"}
    server = servers(proj, env=as_app)
    ready(server)
    assert "state: lakebase" in server.tables()["state_warning"]
    assert "emptied at every deploy" in server.tables()["state_warning"]
    assert "state: lakebase" in server.output()  # logged at start
    validated = run_cli("validate", cwd=proj.root, env=clean_env(**as_app))
    assert validated.returncode == 0
    assert "warning:" in validated.stderr and "state: lakebase" in validated.stderr
    assert "sink" in validated.stderr  # names the functions whose versions are at risk


def test_no_warning_with_shared_state_or_outside_an_app(
    project: ProjectDir, postgres: PostgresServer, servers: Callable[..., Served]
) -> None:
    proj = sink_project(project, postgres.url(schema=new_schema()))
    server = servers(proj, env={"DATABRICKS_APP_NAME": "orders-app"})
    ready(server)
    assert "state_warning" not in server.tables()
    validated = run_cli("validate", cwd=proj.root, env=clean_env(DATABRICKS_APP_NAME="x"))
    assert validated.returncode == 0 and "warning" not in validated.stderr


@pytest.mark.parametrize(
    ("state", "problem"),
    [
        ("mysql://u@h/db", "unknown scheme 'mysql'"),
        ("sqlite://state.db", "sqlite:///relative/path"),
        ("lakebase?sslmode=require", None),  # refused when opened: lakebase takes only schema
    ],
)
def test_a_bad_state_setting_is_refused_with_file_line_and_field(
    project: ProjectDir, state: str, problem: str | None
) -> None:
    sink_project(project, state)
    done = run_cli("validate", cwd=project.root, env=clean_env())
    if problem is None:
        done = run_cli(
            "checkpoints", cwd=project.root, env=clean_env(PGHOST="h", PGDATABASE="d", PGUSER="u")
        )
        assert done.returncode == 1 and "takes only ?schema=NAME" in done.stderr
        return
    assert done.returncode == 1
    assert f"app.yaml:2: state: state '{state}'" in done.stderr and problem in done.stderr
    assert "Traceback" not in done.stderr


def test_checkpoints_magic_lists_and_moves_them(ip: Any, sample: Path) -> None:  # noqa: F811
    from IPython.core.error import UsageError

    magic(ip, f"load {sample}")
    [row] = magic(ip, "checkpoints")
    assert (row.function, row.table, row.version) == (
        "unity_monitor",
        "_data.tpch.dim_customer",
        None,
    )
    moved = magic(ip, "checkpoints set unity_monitor 0")
    assert "checkpoint None -> 0" in str(moved)
    shown = magic(ip, "checkpoints")
    assert shown[0].version == 0 and shown[0].updated_at is not None
    assert "<table>" in shown._repr_html_() and "Lease Holder" in shown._repr_html_()
    with pytest.raises(UsageError, match="not a unity_table function"):
        magic(ip, "checkpoints set example_http 1")


def test_checkpoints_magic_moves_the_checkpoint_its_own_server_watches(
    ip: Any,  # noqa: F811
    sample: Path,  # noqa: F811
) -> None:
    from tests.test_notebook_magics import free_port

    magic(ip, f"load {sample}")
    magic(ip, f"serve --port {free_port()}")
    try:
        wait_for(lambda: magic(ip, "checkpoints")[0].version == 0)  # the first check ran
        moved = magic(ip, "checkpoints set unity_monitor -1")  # not refused: our own lease
        assert "checkpoint 0 -> -1" in str(moved)
        assert magic(ip, "checkpoints")[0].version == -1
    finally:
        magic(ip, "stop")
