"""The glue tests share around a real server process and a real table: start `lakefn serve` (or
any server command) on a port of its own with its output in a file, wait for /healthz, stop it
(killing whatever a test left running); wait for what a test expects; commit to a local Delta
table; the SINK table function and what it delivered.

Nothing here is timed: `wait_for` waits for a condition, its timeout only keeps a broken build
from hanging, and `Pace` stands in for a runtime's sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from lakefn.sources.local import append, create_table
from tests.conftest import LAKEFN, ProjectDir, free_port, wait_http

if TYPE_CHECKING:
    from lakefn.runtime import Runtime

#: the table the table-function tests watch
TABLE = "main.sales.orders"

#: a table function that notes each start in started.log, sleeps while `slow` exists, then
#: records the versions it was handed in delivered.log, fsynced before it returns: that file is
#: the ground truth of what was delivered, whatever happens to the process after
SINK = """\
import os, pathlib, time

ROOT = pathlib.Path(__file__).resolve().parent.parent

def _append(name, text):
    with open(ROOT / name, "a") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())

def main(event):
    versions = [c.version for c in event.commits]
    _append("started.log", f"{versions[0]}..{versions[-1]} {os.getpid()}\\n")
    while (ROOT / "slow").exists():
        time.sleep(0.05)
    _append("delivered.log", "".join(f"{v} {os.getpid()}\\n" for v in versions))
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the machine's DATABRICKS_* and LAKEFN_* settings,
    plus `extra`: a subprocess sees only what the test gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "LAKEFN_"))}
    return {**env, **extra}


#: how long `wait_for` waits for what a test expects: a minute, for a loaded machine; mutation
#: runs (`make mutate`) set LAKEFN_TEST_WAIT shorter, so a mutant that breaks what is waited on
#: fails in seconds (what a passing run waits for takes well under one)
WAIT = float(os.environ.get("LAKEFN_TEST_WAIT", "60"))


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll until `predicate` holds and return its value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {predicate}")
        time.sleep(0.05)
    return value


class Pace:
    """Stands in for `asyncio.sleep` in a runtime: notes every wait and lets the loop go on at
    once; after `stop_after` waits it parks its caller until the runtime stops."""

    def __init__(self, stop_after: int) -> None:
        self.waits: list[float] = []
        self.stop_after = stop_after
        self.done = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) >= self.stop_after:
            self.done.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)


def serve_command(port: int, *args: str, log_level: str = "warning") -> list[str]:
    return [LAKEFN, "serve", "--port", str(port), "--log-level", log_level, *args]


class Served:
    """A server subprocess on a port of its own, its output in `serve-PORT.log` in `cwd`."""

    def __init__(
        self, command: list[str], cwd: Path, port: int, env: dict[str, str] | None = None
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = cwd / f"serve-{port}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=clean_env(**(env or {})),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> Served:
        wait_http(f"{self.url}/healthz", timeout=30)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def tables(self) -> dict[str, Any]:
        """The first row of /lakefn/tables."""
        return dict(httpx.get(f"{self.url}/lakefn/tables", timeout=5).json()[0])

    def invocations(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.url}/lakefn/invocations?limit=1000", timeout=5).json())

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> None:
        """Send `sig` and wait for the process to end; one that does not is killed, and the
        test fails (SIGTERM must stop a server)."""
        if self.alive:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"{self.process.args} did not end within {timeout} s of {sig!r}"
            ) from None
        finally:
            self.log.close()


class Servers:
    """The servers one test starts; those still running at its end are killed."""

    def __init__(self) -> None:
        self.started: list[Served] = []

    def __call__(
        self, command: list[str], cwd: Path, port: int | None = None, **env: str
    ) -> Served:
        """`command` started (not yet ready) on `port` (default: a free one)."""
        served = Served(command, cwd, port or free_port(), env)
        self.started.append(served)
        return served

    def lakefn(
        self,
        root: Path,
        *args: str,
        log_level: str = "warning",
        env: dict[str, str] | None = None,
    ) -> Served:
        """`lakefn serve ARGS` on the project at `root`, serving."""
        port = free_port()
        served = self(serve_command(port, *args, log_level=log_level), root, port, **(env or {}))
        return served.wait_ready()

    def kill_all(self) -> None:
        for served in self.started:
            if not served.log.closed:
                served.stop(signal.SIGKILL)


def project_servers(log_level: str = "info") -> Iterator[Callable[..., Served]]:
    """A fixture's body: `start(project, env=None)` runs `lakefn serve` on the project, serving."""
    servers = Servers()
    try:
        yield lambda project, env=None: servers.lakefn(project.root, log_level=log_level, env=env)
    finally:
        servers.kill_all()


def servers_for_a_test() -> Iterator[Servers]:
    """A fixture's body: `yield from servers_for_a_test()`."""
    servers = Servers()
    try:
        yield servers
    finally:
        servers.kill_all()


def runtimes_for_a_test(project: ProjectDir) -> Iterator[Callable[..., Runtime]]:
    """A fixture's body: `make(**kwargs)` is `project.runtime(**kwargs)`, closed at the end."""
    made: list[Runtime] = []

    def make(**kwargs: Any) -> Runtime:
        made.append(project.runtime(**kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for each in made:
            each.close()


def sink_project(project: ProjectDir, state: str = "state.db") -> ProjectDir:
    """`project` with one table function, `sink` (SINK), on TABLE at version 0, its state in
    `state` (a path or a URL)."""
    project.config(
        "tables: {local_root: catalog, source: local}\n"
        f"state: {json.dumps(state)}\n"
        "functions:\n"
        "  - name: sink\n"
        "    trigger: {type: unity_table, check_interval: 0.05}\n"
        f"    table_name: {TABLE}\n"
    )
    project.function("sink", SINK)
    create_table(project.root / "catalog", TABLE, [{"id": 0}])
    return project


def ready(server: Served) -> None:
    """Serving, and the first check has recorded where the table function starts."""
    wait_for(lambda: server.tables()["last_processed_version"] is not None)


def delivered(project: ProjectDir) -> list[tuple[int, int]]:
    """What SINK recorded: (version, pid of the process that delivered it), in order."""
    path = project.root / "delivered.log"
    if not path.exists():
        return []
    pairs = (line.split() for line in path.read_text().splitlines())
    return [(int(version), int(pid)) for version, pid in pairs]


def versions(project: ProjectDir) -> list[int]:
    """The versions SINK was handed, in order."""
    return [version for version, _ in delivered(project)]


def commit(project: ProjectDir | Path, n: int = 1, table: str = TABLE) -> None:
    """`n` new versions of `table` in the project's local catalog (`catalog/`), a row each."""
    root = project.root if isinstance(project, ProjectDir) else project
    for _ in range(n):
        append(root / "catalog", table, [{"id": 1}])


def new_table(catalog: Path, versions: int, table: str = TABLE) -> None:
    """`table` at version `versions - 1`: created, then appended to."""
    create_table(catalog, table, [{"id": 0}])
    for i in range(1, versions):
        append(catalog, table, [{"id": i}])
