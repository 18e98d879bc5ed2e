"""A real PostgreSQL server for the test session: a throwaway cluster of Debian's `postgresql`
(installed by `make test`), run as the `postgres` user in a temporary folder it owns, on a free
loopback port and a Unix socket in that folder, stopped at the end.

Tests share the server and keep apart by schema (`postgres.url(schema=...)`) or database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

USER = "lakefn"
PASSWORD = "lakefn-test-password"
DATABASE = "lakefn"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): the state store "
            "tests need a real server; `make postgres` (part of `make test`) installs Debian's "
            "postgresql package",
            pytrace=False,
        )
    return Path(found[-1]).parent


def _as_postgres(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = list(args)
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One cluster: `url()` for a password login over TCP, `stop`/`start`/`restart` to test a
    server that goes away."""

    def __init__(self, root: Path, bin_dir: Path, *, durable: bool = False) -> None:
        # Tests trade durability for speed (the server is thrown away); the benchmark does not.
        self.durable = durable
        self.root = root
        self.bin = bin_dir
        self.data = root / "data"
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.user, self.password, self.database = USER, PASSWORD, DATABASE

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses={self.host} "
        options += "-c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", *args,
        )  # fmt: skip

    def init(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        shutil.chown(pwfile, "postgres")
        _as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
            "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
        )  # fmt: skip
        self.start()
        psql = str(self.bin / "psql")
        for statement in (
            f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'",
            f"CREATE DATABASE {DATABASE} OWNER {USER}",
        ):
            _as_postgres(
                psql, "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
                "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", statement,
            )  # fmt: skip

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        self._pg_ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def url(self, *, schema: str | None = None, password: bool = True) -> str:
        secret = f":{self.password}" if password else ""
        query = f"?schema={schema}" if schema else ""
        return f"postgresql://{self.user}{secret}@{self.host}:{self.port}/{self.database}{query}"

    def conninfo(self) -> str:
        return (
            f"host={self.host} port={self.port} dbname={self.database} user={self.user} "
            f"password={self.password}"
        )

    def env(self) -> dict[str, str]:
        """The PG* variables a Databricks App's database resource sets, with PGPASSWORD."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGDATABASE": self.database,
            "PGUSER": self.user,
            "PGSSLMODE": "disable",
            "PGAPPNAME": "lakefn-tests",
            "PGPASSWORD": self.password,
        }


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="lakefn-pg-"))
    shutil.chown(root, "postgres", "postgres")
    server = PostgresServer(root, bin_dir)
    try:
        server.init()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
