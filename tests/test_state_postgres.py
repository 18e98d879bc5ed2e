"""State in a real PostgreSQL server: `lakefn serve` processes sharing it, killed, and the
server itself stopped under them; `state: lakebase` from the PG* variables; the OAuth token path.

The table function appends each version it is handed to a file and fsyncs it before returning
(tests/_serving.py's SINK): that file is the ground truth of what was delivered.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from lakefn import LakefnError
from lakefn._exceptions import StateStoreUnavailable
from lakefn.checkpoints.lakebase import LakebaseCheckpointStore
from lakefn.checkpoints.selection import open_store
from tests._postgres import PostgresServer, new_schema
from tests._serving import (
    TABLE,
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


def processes(server: Served) -> set[str]:
    """The pids of the processes whose invocations `server`'s journal shows."""
    return {entry.get("process", "").rpartition(":")[2] for entry in server.invocations()}


@pytest.fixture
def servers() -> Iterator[Callable[..., Served]]:
    yield from project_servers()


def test_two_servers_on_postgres_deliver_50_versions_once_even_when_one_is_killed(
    project: ProjectDir, postgres: PostgresServer, servers: Callable[..., Served]
) -> None:
    proj = sink_project(project, postgres.url(schema=new_schema()))
    one = servers(proj)
    ready(one)
    two = servers(proj)
    for _ in range(25):
        commit(proj)
    wait_for(lambda: versions(proj)[-1:] == [25])
    [holder_pid] = {pid for _, pid in delivered(proj)}
    holder, other = (one, two) if holder_pid == one.pid else (two, one)
    # The journal is in the store: the other server shows what the holder ran (written
    # behind, within a second).
    wait_for(lambda: str(holder.pid) in processes(other))
    # The holder is killed in the middle of its function: that range was never finished.
    (proj.root / "slow").touch()
    commit(proj)
    started = proj.root / "started.log"
    wait_for(lambda: started.read_text().splitlines()[-1].startswith("26.."))
    holder.stop(signal.SIGKILL)
    (proj.root / "slow").unlink()
    for _ in range(24):
        commit(proj)
    wait_for(lambda: versions(proj)[-1:] == [50], timeout=30)
    time.sleep(0.3)
    counts = Counter(versions(proj))
    assert sorted(counts) == list(range(1, 51)) and set(counts.values()) == {1}
    assert {pid for version, pid in delivered(proj) if version > 25} == {other.pid}
    assert str(other.pid) in processes(other)
    assert str(holder.pid) in processes(other)  # still there, though that server is gone


def test_postgres_stopped_while_serving_deliveries_resume_by_themselves(
    project: ProjectDir, postgres: PostgresServer, servers: Callable[..., Served]
) -> None:
    proj = sink_project(project, postgres.url(schema=new_schema()))
    server = servers(proj)
    ready(server)
    commit(proj, 2)
    wait_for(lambda: versions(proj) == [1, 2])
    # A restart while a function runs: its checkpoint save waits for the server to be back,
    # so the range is delivered once.
    (proj.root / "slow").touch()
    commit(proj)
    started = proj.root / "started.log"
    wait_for(lambda: started.read_text().splitlines()[-1].startswith("3.."))
    postgres.stop()
    try:
        (proj.root / "slow").unlink()
        wait_for(lambda: versions(proj) == [1, 2, 3])
    finally:
        postgres.start()
    commit(proj)
    wait_for(lambda: versions(proj)[-1:] == [4])
    # A longer outage: the save gives up, the check fails and says why, and once the server
    # is back the range comes again (at least once), with nothing lost.
    postgres.stop()
    try:
        commit(proj)
        wait_for(lambda: "state store" in (server.tables()["last_error"] or ""))
    finally:
        postgres.start()
    commit(proj)
    wait_for(lambda: versions(proj)[-1:] == [6], timeout=30)
    time.sleep(0.3)
    assert versions(proj)[:4] == [1, 2, 3, 4]
    assert sorted(set(versions(proj))) == [1, 2, 3, 4, 5, 6]
    assert versions(proj).count(6) == 1
    assert server.tables()["last_error"] is None
    log = server.output()
    # Once per change of state, not once per check or try, and no password anywhere.
    assert log.count("checks fail until it is back") == 2, log
    assert log.count("is reachable again") == 2, log
    assert postgres.password not in log


def test_state_lakebase_from_the_pg_variables_with_pgpassword(
    project: ProjectDir, postgres: PostgresServer, servers: Callable[..., Served]
) -> None:
    schema = new_schema()
    proj = sink_project(project, f"lakebase?schema={schema}")
    server = servers(proj, env=postgres.env())
    ready(server)
    commit(proj, 3)
    wait_for(lambda: versions(proj) == [1, 2, 3])
    with psycopg.connect(postgres.conninfo()) as conn:
        row = conn.execute(f"SELECT key, version FROM {schema}.checkpoints").fetchone()
        layout = conn.execute(f"SELECT version FROM {schema}.schema_version").fetchall()
    assert row == (f"sink|{TABLE}", 3)
    assert layout == [(1,)]


# -- the OAuth token path, in process ---------------------------------------------------------

TOKEN = "dapi-oauth-test-token-6f1d2c"


@pytest.fixture
def token_role(postgres: PostgresServer) -> str:
    """A role whose password is the token, as Lakebase logs in an App's service principal."""
    admin = (
        f"host={postgres.host} port={postgres.port} dbname={postgres.database} "
        f"user=postgres password={postgres.password}"
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'app_sp'").fetchone()
        if not exists:
            conn.execute(f"CREATE ROLE app_sp LOGIN PASSWORD '{TOKEN}'")
            conn.execute(f"GRANT ALL ON DATABASE {postgres.database} TO app_sp")
    return "app_sp"


class CountingTokens:
    """A databricks-sdk credentials strategy whose token provider counts its calls."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls = 0

    def auth_type(self) -> str:
        return "test-double"

    def __call__(self, config: Any) -> Callable[[], dict[str, str]]:
        def headers() -> dict[str, str]:
            self.calls += 1
            return {"Authorization": f"Bearer {self.token}"}

        return headers


def sdk_config(tokens: CountingTokens) -> Any:
    from databricks.sdk.core import Config

    # A closed loopback port as the workspace: Config's host-metadata probe fails at once.
    return Config(
        host="http://127.0.0.1:9",
        credentials_strategy=tokens,
        retry_timeout_seconds=1,
        http_timeout_seconds=1,
    )


def test_lakebase_asks_for_a_token_per_new_connection_and_never_logs_it(
    postgres: PostgresServer,
    token_role: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PGPASSWORD")
    monkeypatch.setenv("PGUSER", token_role)
    tokens = CountingTokens()
    store = LakebaseCheckpointStore(schema=new_schema(), config=sdk_config(tokens))
    try:
        store.save("fn|a.b.c", 1, expected=None)
        assert store.load("fn|a.b.c") == 1
        assert tokens.calls == 1  # one connection so far, reused
        store._connections.discard_idle()  # as after a lost connection
        store.save("fn|a.b.c", 2, expected=1)
        postgres.restart()  # every open connection dies
        assert store.load("fn|a.b.c") == 2
        assert tokens.calls == store._connections.made == 3
    finally:
        store.close()
    # A token the server refuses: a clear error, without the token in it.
    bad = CountingTokens("dapi-wrong-token-0a9b")
    wrong = LakebaseCheckpointStore(schema=new_schema(), config=sdk_config(bad))
    with pytest.raises(StateStoreUnavailable, match="password authentication failed") as caught:
        wrong.load("k")
    wrong.close()
    assert bad.token not in str(caught.value)
    assert TOKEN not in caplog.text and bad.token not in caplog.text


def test_pgpassword_wins_over_the_token(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in postgres.env().items():
        monkeypatch.setenv(name, value)
    tokens = CountingTokens("not-the-password")
    store = LakebaseCheckpointStore(schema=new_schema(), config=sdk_config(tokens))
    try:
        store.save("k", 5, expected=None)
        assert store.load("k") == 5
    finally:
        store.close()
    assert tokens.calls == 0


def test_lakebase_without_pg_variables_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("PGHOST", "PGDATABASE", "PGUSER"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(LakefnError, match="PGHOST.*database resource"):
        open_store("lakebase", tmp_path)


def test_a_store_at_a_newer_layout_is_refused_not_overwritten(
    postgres: PostgresServer, tmp_path: Any
) -> None:
    schema = new_schema()
    first = open_store(postgres.url(schema=schema), tmp_path)
    first.save("k", 1, expected=None)
    first.close()
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.schema_version SET version = 99")
    later = open_store(postgres.url(schema=schema), tmp_path)
    with pytest.raises(LakefnError, match="newer lakefn"):
        later.load("k")
    later.close()


def test_password_in_the_url_is_never_shown(postgres: PostgresServer, tmp_path: Any) -> None:
    url = postgres.url(schema=new_schema()).replace(f":{postgres.port}/", ":1/")  # nobody there
    store = open_store(url, tmp_path)
    with pytest.raises(StateStoreUnavailable) as caught:
        store.load("k")
    store.close()
    assert postgres.password not in str(caught.value)
    assert f"postgresql://{postgres.user}@127.0.0.1:1/" in str(caught.value)


def test_table_ids_are_kept_per_key_and_replaced(postgres: PostgresServer, tmp_path: Any) -> None:
    store = open_store(postgres.url(schema=new_schema()), tmp_path)
    try:
        assert store.load_table_id("fn|a.b.c") is None  # type: ignore[attr-defined]
        store.save_table_id("fn|a.b.c", "id-1")  # type: ignore[attr-defined]
        store.save_table_id("other|a.b.c", "id-9")  # type: ignore[attr-defined]
        store.save_table_id("fn|a.b.c", "id-2")  # the table was dropped and created again
        assert store.load_table_id("fn|a.b.c") == "id-2"  # type: ignore[attr-defined]
        assert store.load_table_id("other|a.b.c") == "id-9"  # type: ignore[attr-defined]
    finally:
        store.close()
