"""What a Databricks App runs: the `command` of the repo's and the template's app.yaml."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from lakefn.config import read_config
from tests._serving import clean_env
from tests.conftest import LAKEFN, free_port, run_cli, wait_http

REPO = Path(__file__).resolve().parent.parent

#: seconds Databricks Apps waits after SIGTERM before it sends SIGKILL
APPS_KILL_DEADLINE = 15


@pytest.mark.parametrize("path", ["app.yaml", "lakefn/templates/project/app.yaml"])
def test_apps_run_lakefn_serve(path: str) -> None:
    # `uvicorn app:app` has no shutdown deadline; `lakefn serve` stops within 5 s.
    assert read_config(REPO / path)[0].command == ["lakefn", "serve"]


def test_a_new_project_serves_as_an_app_would_run_it(tmp_path: Path) -> None:
    assert run_cli("init", str(tmp_path / "proj")).returncode == 0
    command = read_config(tmp_path / "proj" / "app.yaml")[0].command
    assert command is not None and command[0] == "lakefn"
    port = free_port()
    env = clean_env(DATABRICKS_APP_PORT=str(port))  # what Apps sets; nothing else is passed
    process = subprocess.Popen(
        [LAKEFN, *command[1:]],
        cwd=tmp_path / "proj",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60).status_code == 200
        listening = {
            c.laddr.ip
            for c in psutil.Process(process.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        assert listening == {"0.0.0.0"}  # the Apps proxy connects from outside loopback
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert process.wait(timeout=APPS_KILL_DEADLINE) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
