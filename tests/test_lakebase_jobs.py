"""`state: lakebase` inside a Databricks Job: no App variables, so the store finds the instance
by its name through databricks-sdk (where it is, who we are, a database credential) and logs
in there. The workspace is a faithful fake over real HTTP (tests/fakes/workspace.py) that
databricks-sdk itself talks to; the PostgreSQL is real (tests/_postgres.py), and the fake's
instance points at it. Each minted credential becomes the password of the service principal's
Postgres role, as Lakebase accepts its own credentials.

The jobs are real `lakefn run` processes, started with what `lakefn bundle` writes.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from lakefn import LakefnError
from lakefn.checkpoints.lakebase import LakebaseCheckpointStore
from lakefn.checkpoints.selection import open_store
from lakefn.testing import FakeClock
from tests._postgres import PostgresServer, new_schema
from tests._serving import TABLE, clean_env, commit, sink_project, versions
from tests.conftest import LAKEFN, ProjectDir
from tests.fakes.workspace import SERVICE_PRINCIPAL, FakeWorkspace

INSTANCE = "orders-state"
DATABASE = "databricks_postgres"
PG_VARIABLES = ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGSSLMODE")


def _admin(postgres: PostgresServer, database: str = "postgres") -> str:
    return (
        f"host={postgres.host} port={postgres.port} dbname={database} "
        f"user=postgres password={postgres.password}"
    )


@pytest.fixture
def lakebase(postgres: PostgresServer) -> Iterator[FakeWorkspace]:
    """The workspace with instance INSTANCE (AVAILABLE) on the test server, whose database
    databricks_postgres the service principal's role may use; each credential the workspace
    mints becomes that role's password."""
    role = sql.Identifier(SERVICE_PRINCIPAL)
    with psycopg.connect(_admin(postgres), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        if not conn.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", (SERVICE_PRINCIPAL,)
        ).fetchone():
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(
            sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(sql.Identifier(DATABASE), role)
        )

    def accept(token: str) -> None:
        with psycopg.connect(_admin(postgres), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(token)))

    workspace = FakeWorkspace()
    workspace.on_credential = accept
    workspace.add_instance(INSTANCE, postgres.host)
    workspace.start()
    try:
        yield workspace
    finally:
        workspace.stop()


def job_env(workspace: FakeWorkspace, postgres: PostgresServer, **extra: str) -> dict[str, str]:
    """A job's environment: workspace credentials, none of the App's PG* variables. PGPORT
    and PGSSLMODE only because the test server listens on a port of its own, without TLS."""
    env = {k: v for k, v in clean_env(**workspace.env()).items() if k not in PG_VARIABLES}
    return {**env, "PGPORT": str(postgres.port), "PGSSLMODE": "disable", **extra}


def lakefn_run(
    proj: ProjectDir, env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    done = subprocess.run(
        [LAKEFN, "run", "sink", "--json", "--app", str(proj.root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stdout) if done.stdout.strip() else None
    return done, report


def checkpoint_rows(
    postgres: PostgresServer, schema: str, database: str = DATABASE
) -> list[tuple[Any, ...]]:
    with psycopg.connect(_admin(postgres, database)) as conn:
        return conn.execute(
            sql.SQL("SELECT key, version FROM {}.checkpoints").format(sql.Identifier(schema))
        ).fetchall()


def table_owner(postgres: PostgresServer, schema: str, database: str = DATABASE) -> str:
    with psycopg.connect(_admin(postgres, database)) as conn:
        row = conn.execute(
            "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'checkpoints'",
            (schema,),
        ).fetchone()
    assert row is not None
    return str(row[0])


def test_a_job_run_finds_the_instance_logs_in_as_its_principal_and_keeps_its_checkpoint_there(
    project: ProjectDir, postgres: PostgresServer, lakebase: FakeWorkspace
) -> None:
    schema = new_schema()
    proj = sink_project(project, f"lakebase?instance={INSTANCE}&schema={schema}")
    env = job_env(lakebase, postgres)
    first, report = lakefn_run(proj, env)
    assert first.returncode == 0, first.stderr
    assert report and report["outcome"] == "nothing_new"  # start: latest records version 0
    commit(proj, 3)
    second, report = lakefn_run(proj, env)
    assert second.returncode == 0, second.stderr
    assert report and report["outcome"] == "delivered"
    assert report["delivered_versions"] == [1, 2, 3] and versions(proj) == [1, 2, 3]
    assert checkpoint_rows(postgres, schema) == [(f"sink|{TABLE}", 3)]
    third, report = lakefn_run(proj, env)
    assert third.returncode == 0, third.stderr
    assert report and report["outcome"] == "nothing_new" and versions(proj) == [1, 2, 3]
    # Logged in as the job's principal, where the workspace said the instance is.
    assert table_owner(postgres, schema) == SERVICE_PRINCIPAL
    asked = [(c.method, c.path) for c in lakebase.api_calls()]
    assert asked == 3 * [
        ("GET", f"/api/2.0/database/instances/{INSTANCE}"),
        ("GET", "/api/2.0/preview/scim/v2/Me"),
        ("POST", "/api/2.0/database/credentials"),
    ]
    # One credential per run (each a process of its own), for the instance, never logged.
    assert [c["instance_names"] for c in lakebase.credentials] == 3 * [[INSTANCE]]
    bodies = [c.body for c in lakebase.api_calls("/api/2.0/database/credentials")]
    assert len({b["request_id"] for b in bodies if b}) == 3
    assert lakebase.refused == [] and lakebase.unknown == []
    for done in (first, second, third):
        for credential in lakebase.credentials:
            assert credential["token"] not in done.stdout + done.stderr


def test_the_bundled_job_passes_the_instance_and_a_run_with_its_parameters_works(
    project: ProjectDir, postgres: PostgresServer, lakebase: FakeWorkspace
) -> None:
    schema = new_schema()
    sink_project(project, f"lakebase?schema={schema}")
    app_yaml = project.app_yaml
    app_yaml.write_text(app_yaml.read_text() + "    run_on: job\n")
    bundled = subprocess.run(
        [LAKEFN, "bundle", "--app", str(project.root), "--no-wheel"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bundled.returncode == 0, bundled.stderr
    out = project.root / "bundle"
    resources = yaml.safe_load((out / "resources" / "lakefn.yml").read_text())
    databricks = yaml.safe_load((out / "databricks.yml").read_text())
    [job] = resources["resources"]["jobs"].values()
    parameters = job["tasks"][0]["spark_python_task"]["parameters"]
    state = "lakebase?instance=${var.database_instance}&database=${var.database_name}"
    assert parameters[-2:] == ["--state", f"{state}&schema={schema}"]
    # The App keeps its database resource on the same variables (also with options).
    [database] = resources["resources"]["apps"]["lakefn_app"]["resources"]
    assert database["database"]["instance_name"] == "${var.database_instance}"
    assert databricks["variables"]["database_name"]["default"] == DATABASE
    assert "needs a Postgres role" in bundled.stdout and "databricks_create_role" in bundled.stdout
    # What the job runs, once the bundle's variables are filled in at deploy.
    given = {
        "${workspace.file_path}/app": str(project.root),
        "${var.database_instance}": INSTANCE,
        "${var.database_name}": DATABASE,
    }
    args = []
    for parameter in parameters:
        for placeholder, value in given.items():
            parameter = parameter.replace(placeholder, value)
        args.append(parameter)
    assert args[:2] == ["run", "sink"]
    env = job_env(lakebase, postgres)
    # The app.yaml state alone (`lakebase?schema=`) cannot work in a job: no PG* variables.
    alone = subprocess.run(
        [LAKEFN, *args[:-2]], env=env, capture_output=True, text=True, timeout=120
    )
    assert alone.returncode == 1 and "PGHOST" in alone.stderr and "Traceback" not in alone.stderr
    for expected in ("nothing_new", "delivered"):
        done = subprocess.run(
            [LAKEFN, *args, "--json"], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["outcome"] == expected
        commit(project, 2)
    assert versions(project) == [1, 2]
    assert checkpoint_rows(postgres, schema) == [(f"sink|{TABLE}", 2)]


def as_a_job(
    monkeypatch: pytest.MonkeyPatch, lakebase: FakeWorkspace, postgres: PostgresServer
) -> None:
    """This process's environment as a job's: no App PG* variables, the fake workspace's
    credentials, no other DATABRICKS_* settings."""
    for name in [*PG_VARIABLES, *(n for n in os.environ if n.startswith("DATABRICKS_"))]:
        monkeypatch.delenv(name, raising=False)
    for name, value in job_env(lakebase, postgres).items():
        monkeypatch.setenv(name, value)


def test_a_credential_is_minted_once_an_hour_not_per_connection(
    postgres: PostgresServer,
    lakebase: FakeWorkspace,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    as_a_job(monkeypatch, lakebase, postgres)
    clock = FakeClock()
    lakebase.clock = lambda: clock.now().timestamp()
    # `state: lakebase` as an App has it; the instance comes from the environment.
    monkeypatch.setenv("LAKEFN_LAKEBASE_INSTANCE", INSTANCE)
    monkeypatch.setenv("LAKEFN_LAKEBASE_DATABASE", DATABASE)
    store = open_store("lakebase", tmp_path, clock=lambda: clock.now().timestamp())
    assert isinstance(store, LakebaseCheckpointStore)
    connections = store._connections
    try:
        store.save("fn|a.b.c", 1, expected=None)
        for _ in range(3):
            connections.discard_idle()  # as after a lost connection: the next one logs in
            assert store.load("fn|a.b.c") == 1
        clock.advance(minutes=54)
        connections.discard_idle()
        store.save("fn|a.b.c", 2, expected=1)
        assert connections.made == 5 and len(lakebase.credentials) == 1
        # Within five minutes of its hour: the next login gets a new credential.
        clock.advance(minutes=2)
        connections.discard_idle()
        assert store.load("fn|a.b.c") == 2
        assert connections.made == 6 and len(lakebase.credentials) == 2
        assert store.items() == {"fn|a.b.c": 2}  # the connection kept: no new credential
        assert len(lakebase.credentials) == 2
    finally:
        store.close()
    # The instance was looked up once; the principal once: the address is kept.
    instance_calls = lakebase.api_calls(f"/api/2.0/database/instances/{INSTANCE}")
    assert len(instance_calls) == 1
    assert len(lakebase.api_calls("/api/2.0/preview/scim/v2/Me")) == 1


@pytest.mark.parametrize(
    ("state", "says"),
    [
        ("STOPPED", "it is STOPPED: start it in the workspace"),
        ("STARTING", "it is STARTING: run again once it is AVAILABLE"),
        (None, "the workspace has no such instance"),
    ],
)
def test_an_instance_that_is_not_there_or_not_running_fails_the_run_plainly(
    project: ProjectDir,
    postgres: PostgresServer,
    lakebase: FakeWorkspace,
    state: str | None,
    says: str,
) -> None:
    if state is None:
        lakebase.instances.clear()
    else:
        lakebase.add_instance(INSTANCE, postgres.host, state=state)
    proj = sink_project(project, f"lakebase?instance={INSTANCE}&schema={new_schema()}")
    done, report = lakefn_run(proj, job_env(lakebase, postgres))
    assert done.returncode == 1
    assert report is not None and report["outcome"] == "failed"
    assert f"lakebase instance '{INSTANCE}'" in report["error"] and says in report["error"]
    assert "Traceback" not in done.stderr
    assert lakebase.credentials == []  # nothing minted for an instance that cannot be used
    plain = subprocess.run(
        [LAKEFN, "run", "sink", "--app", str(proj.root)],
        env=job_env(lakebase, postgres),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode == 1 and says in plain.stderr and "Traceback" not in plain.stderr


def test_a_principal_without_a_role_on_the_instance_fails_the_run_plainly(
    project: ProjectDir, postgres: PostgresServer, lakebase: FakeWorkspace
) -> None:
    lakebase.user = "ops@example.com"  # a user the instance has no Postgres role for
    proj = sink_project(project, f"lakebase?instance={INSTANCE}&schema={new_schema()}")
    done, report = lakefn_run(proj, job_env(lakebase, postgres))
    assert done.returncode == 1 and report is not None
    assert f"lakebase instance '{INSTANCE}'" in report["error"]
    assert 'user "ops@example.com"' in report["error"]
    assert "needs a Postgres role on the instance" in report["error"]
    assert "Traceback" not in done.stderr
    [credential] = lakebase.credentials
    assert credential["token"] not in done.stdout + done.stderr


def test_a_refused_credential_is_not_tried_again(
    postgres: PostgresServer,
    lakebase: FakeWorkspace,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # Once the role is made, the next login must not reuse the credential that was refused.
    as_a_job(monkeypatch, lakebase, postgres)
    lakebase.user = "ops@example.com"  # no Postgres role for this user
    store = open_store(f"lakebase?instance={INSTANCE}&database={DATABASE}", tmp_path)
    try:
        for _ in range(2):
            with pytest.raises(LakefnError, match="needs a Postgres role on the instance"):
                store.load("fn|a.b.c")
    finally:
        store.close()
    assert len(lakebase.credentials) >= 2
    # ...and the instance was looked up again after each refusal (it may have moved).
    assert len(lakebase.api_calls(f"/api/2.0/database/instances/{INSTANCE}")) >= 2


def test_the_app_variables_win_and_the_workspace_is_never_asked(
    project: ProjectDir, postgres: PostgresServer, lakebase: FakeWorkspace
) -> None:
    schema = new_schema()
    proj = sink_project(project, f"lakebase?instance={INSTANCE}&schema={schema}")
    env = {**clean_env(**lakebase.env()), **postgres.env()}
    for expected in ("nothing_new", "delivered"):
        done, report = lakefn_run(proj, env)
        assert done.returncode == 0, done.stderr
        assert report and report["outcome"] == expected
        # Not silently: a laptop's own PG* variables would take the place of the instance.
        assert f"state: lakebase names instance '{INSTANCE}', but PGHOST" in done.stderr
        commit(proj)
    # In the App's database (PGDATABASE), as the App's role (PGUSER).
    assert checkpoint_rows(postgres, schema, postgres.database) == [(f"sink|{TABLE}", 1)]
    assert table_owner(postgres, schema, postgres.database) == postgres.user
    assert lakebase.calls == []


@pytest.mark.parametrize(
    ("state", "env", "says"),
    [
        (
            "lakebase?instance=",
            {},
            "state 'lakebase?instance=': '' is no Lakebase instance name; one is 1 to 63 "
            "letters, digits and hyphens",
        ),
        (
            "lakebase?instance=a/../b",
            {},
            "'a/../b' is no Lakebase instance name",
        ),
        (
            "lakebase?instance=x&database=",
            {},
            "state 'lakebase?instance=x&database=': '' is no Lakebase database name",
        ),
        (  # it would reach a job's --state unquoted: '+' would arrive as a space
            "lakebase?instance=x&database=a%2Bb",
            {},
            "'a+b' is no Lakebase database name; one is 1 to 63 letters, digits, underscores "
            "and hyphens",
        ),
        (
            "lakebase",
            {"LAKEFN_LAKEBASE_INSTANCE": "orders state"},
            "LAKEFN_LAKEBASE_INSTANCE: 'orders state' is no Lakebase instance name",
        ),
        (
            "lakebase?instanc=x",
            {},
            "lakebase takes only ?schema=NAME&instance=NAME&database=NAME, not instanc",
        ),
        ("lakebase", {}, "or name the Lakebase instance (state: lakebase?instance=NAME"),
    ],
)
def test_a_bad_or_missing_instance_setting_is_a_clear_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, state: str, env: dict[str, str], says: str
) -> None:
    for name in (*PG_VARIABLES, "LAKEFN_LAKEBASE_INSTANCE", "LAKEFN_LAKEBASE_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(LakefnError) as caught:
        open_store(state, tmp_path)
    assert says in str(caught.value)


def test_a_credential_expiry_is_read_as_the_workspace_writes_it() -> None:
    from lakefn.checkpoints.lakebase import _epoch

    assert _epoch("2026-11-29T22:00:00Z") == 1795989600.0
    assert _epoch("2026-11-29T22:00:00.250Z") == 1795989600.25
    assert _epoch("2026-11-29T22:00:00.123456789Z") == pytest.approx(1795989600.123456789)
    assert _epoch("2026-11-29T23:00:00+01:00") == 1795989600.0
    assert _epoch("soon") is None and _epoch(None) is None
