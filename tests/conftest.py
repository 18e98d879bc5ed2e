"""Shared fixtures: throwaway projects and real uvicorn servers on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lakefn.notebook.background import BackgroundServer
from lakefn.runtime import Runtime

# A leaked connection fails the module that leaked it, not a test that runs later.
pytest_plugins = ["tests._postgres", "tests._resource_guard"]

REPO = Path(__file__).resolve().parent.parent
LAKEFN = str(Path(sys.executable).with_name("lakefn"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mutation runs (`make mutate`) switch pytest-timeout's 120 s off, so that load alone never
    # fails a run, and set LAKEFN_TEST_TIMEOUT instead: a mutant that hangs a test (an event
    # never set) fails it after that long, not after mutmut's own limit of many minutes.
    limit = os.environ.get("LAKEFN_TEST_TIMEOUT")
    if limit:
        for item in items:
            item.add_marker(pytest.mark.timeout(float(limit)))


class ProjectDir:
    """A project folder written by a test: app.yaml plus function modules."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "functions").mkdir(parents=True, exist_ok=True)

    @property
    def app_yaml(self) -> Path:
        return self.root / "app.yaml"

    def config(self, text: str) -> ProjectDir:
        self.app_yaml.write_text(textwrap.dedent(text))
        return self

    def function(self, name: str, code: str) -> Path:
        path = self.root / "functions" / f"{name}_function.py"
        path.write_text(textwrap.dedent(code))
        return path

    def file(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def runtime(self, **kwargs: object) -> Runtime:
        return Runtime.from_path(self.app_yaml, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProjectDir:
    monkeypatch.delenv("LAKEFN_STATE", raising=False)
    monkeypatch.delenv("LAKEFN_LOCAL_ROOT", raising=False)
    return ProjectDir(tmp_path / "proj")


class LiveServer:
    """The real app under a real uvicorn on 127.0.0.1: the notebook's background server, which
    already binds first, runs on a loop thread of its own and stops within a bound."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.background = BackgroundServer(runtime, "127.0.0.1", 0)
        self.background.start()
        self.port = self.background.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def stop(self) -> None:
        self.client.close()
        self.background.stop()
        self.runtime.close()


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[LiveServer] = []

    def start(target: ProjectDir | Runtime, **kwargs: object) -> LiveServer:
        runtime = target.runtime(**kwargs) if isinstance(target, ProjectDir) else target
        server = LiveServer(runtime)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LAKEFN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_http(url: str, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
