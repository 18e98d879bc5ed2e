"""The `lakefn` command, each subcommand in a real subprocess."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests._serving import clean_env
from tests.conftest import LAKEFN, REPO, free_port, run_cli, wait_http

APP = """\
functions:
  - name: hello
    trigger: {type: http, method: POST, endpoint: /hello}
  - name: sleepy
    trigger: {type: http, method: GET, endpoint: /sleepy}
  - name: asleep
    trigger: {type: http, method: GET, endpoint: /asleep}
  - name: tick
    trigger: {type: timer, schedule: "0 * * * *"}
"""


RUNNING = "from pathlib import Path\n"
MARK = "    Path(__file__).with_suffix('.running').touch()\n"


@pytest.fixture
def proj(project):
    project.config(APP)
    project.function(
        "hello", "def main(event):\n    return {'hello': event.json().get('name', 'world')}\n"
    )
    # Each marks that it is running (a file beside it), then sleeps far longer than any stop
    # may take: a server that waited for it would still be running when the test gives up.
    project.function(
        "sleepy", f"import time\n{RUNNING}\ndef main(event):\n{MARK}    time.sleep(600)\n"
    )
    project.function(
        "asleep",
        f"import asyncio\n{RUNNING}\nasync def main(event):\n{MARK}    await asyncio.sleep(600)\n",
    )
    project.function("tick", "def main(event):\n    return {'past_due': event.past_due}\n")
    return project


# The uvicorn of the interpreter running the tests, never whichever one is first on PATH.
UVICORN = [sys.executable, "-m", "uvicorn"]


def test_validate_ok_and_bad(proj) -> None:
    ok = run_cli("validate", str(proj.root), env=clean_env())
    assert ok.returncode == 0 and "ok (4 functions: 3 http, 1 timer)" in ok.stdout
    proj.config(
        "functions:\n  - name: x\n    trigger: {type: cron}\n  - name: y\n    trigger: {type: http}\n"
    )
    bad = run_cli("validate", str(proj.app_yaml), env=clean_env())
    assert bad.returncode == 1
    assert "2 problems" in bad.stderr and f"{proj.app_yaml}:3: functions[0].trigger:" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_invoke_prints_the_result(proj) -> None:
    r = run_cli("invoke", "hello", "--data", '{"name": "Ada"}', cwd=proj.root, env=clean_env())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"hello": "Ada"}
    t = run_cli("invoke", "tick", cwd=proj.root, env=clean_env())
    assert json.loads(t.stdout) == {"past_due": False}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invoke", "hello", "--data", "{oops"], "--data is not valid JSON"),
        (
            ["invoke", "nope"],
            "no function named 'nope'; the project has: asleep, hello, sleepy, tick",
        ),
        (["invoke", "hello", "--data", "@missing.json"], "cannot read --data from missing.json"),
        (["simulate", "hello"], "function 'hello' has a http trigger, not unity_table"),
        (["serve", "--port", "http"], "port must be a number"),
        (["simulate", "hello", "--version", "-1"], "argument --version"),
        (
            ["tables", "create", "a.b.c", "--rows", '[{"a": 1}, {"a": "x"}]'],
            "each column needs one type",
        ),
    ],
)
def test_bad_arguments_get_a_clear_error(proj, args, message) -> None:
    r = run_cli(*args, cwd=proj.root, env=clean_env())
    assert r.returncode != 0
    assert message in r.stderr and "Traceback" not in r.stderr


def test_functions_lists_triggers(proj) -> None:
    r = run_cli("functions", "--app", str(proj.root), env=clean_env())
    assert r.returncode == 0
    assert "hello   http         POST /hello" in r.stdout and "0 * * * * (UTC)" in r.stdout
    listed = json.loads(run_cli("functions", "--json", cwd=proj.root, env=clean_env()).stdout)
    assert [f["name"] for f in listed] == ["hello", "sleepy", "asleep", "tick"]


def _spawn(command: list[str], cwd, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _serve(proj, *args: str, **env: str) -> subprocess.Popen[str]:
    return _spawn([LAKEFN, "serve", *args], proj.root, clean_env(**env))


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=20)
    return out


def test_serve_honours_databricks_app_port(proj) -> None:
    port = free_port()
    process = _serve(proj, "--host", "127.0.0.1", DATABRICKS_APP_PORT=str(port))
    try:
        assert wait_http(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
        r = httpx.post(f"http://127.0.0.1:{port}/hello", json={"name": "Bo"})
        assert r.json() == {"hello": "Bo"}
    finally:
        _stop(process)


def test_serve_on_a_busy_port_says_so(proj) -> None:
    port = free_port()
    first = _serve(proj, "--port", str(port))
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        second = run_cli("serve", "--port", str(port), cwd=proj.root, env=clean_env())
        assert second.returncode == 1
        assert f"port {port} on 127.0.0.1 is already in use" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        _stop(first)


def test_serve_on_a_busy_port_closes_the_runtime_it_made(proj, monkeypatch, capsys) -> None:
    from lakefn._serve import bind_socket
    from lakefn.cli import main
    from lakefn.runtime import Runtime

    closed: list[Runtime] = []
    real_close = Runtime.close

    def close(self: Runtime) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(Runtime, "close", close)
    monkeypatch.chdir(proj.root)
    blocker = bind_socket("127.0.0.1", 0)
    try:
        port = blocker.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    finally:
        blocker.close()
    assert f"port {port} on 127.0.0.1 is already in use" in capsys.readouterr().err
    # The app (and its runtime) is made before the port is tried: it is released all the same.
    assert len(closed) == 1


def test_serve_refuses_a_bad_project_before_starting(proj) -> None:
    proj.function("hello", "def main(event)\n    return 1\n")
    r = run_cli("serve", "--port", str(free_port()), cwd=proj.root, env=clean_env(), timeout=30)
    assert r.returncode == 1
    assert "function 'hello'" in r.stderr and "SyntaxError" in r.stderr


@pytest.mark.parametrize(("route", "name"), [("/sleepy", "sleepy"), ("/asleep", "asleep")])
def test_shutdown_does_not_wait_for_a_running_function(proj, route, name) -> None:
    port = free_port()
    process = _serve(proj, "--port", str(port))
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        caller = threading.Thread(
            target=lambda: _swallow(
                lambda: httpx.get(f"http://127.0.0.1:{port}{route}", timeout=120)
            ),
            daemon=True,
        )
        caller.start()
        running = proj.root / "functions" / f"{name}_function.running"
        deadline = time.monotonic() + 60
        while not running.exists():  # a signal from the function, not a guess at its timing
            assert time.monotonic() < deadline, "the function never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        # The function sleeps 600 s: the server ends long before, by cutting the request off
        # after its graceful-shutdown time (2 s, lakefn._serve.GRACEFUL_SHUTDOWN), not by luck.
        process.wait(timeout=120)
        out = _stop(process)
        assert "timeout graceful shutdown exceeded" in out and "Finished server process" in out
    finally:
        _stop(process)


def _swallow(call) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


def test_init_makes_a_project_that_serves_at_once(tmp_path) -> None:
    target = tmp_path / "newproj"
    r = run_cli("init", str(target), env=clean_env())
    assert r.returncode == 0, r.stderr
    assert (target / "app.yaml").exists() and (target / "functions/hello_function.py").exists()
    assert run_cli("validate", str(target), env=clean_env()).returncode == 0
    port = free_port()
    process = _spawn([LAKEFN, "serve", "--port", str(port)], target, clean_env())
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        r2 = httpx.post(f"http://127.0.0.1:{port}/hello", json={"name": "Ada"})
        assert r2.status_code == 200 and r2.json() == {"message": "hello, Ada"}
    finally:
        _stop(process)
    again = run_cli("init", str(target), env=clean_env())
    assert again.returncode == 1 and "not empty" in again.stderr


def test_uvicorn_app_app_serves_the_repo_sample(tmp_path) -> None:
    port = free_port()
    env = clean_env(
        LAKEFN_STATE=str(tmp_path / "state.db"), LAKEFN_LOCAL_ROOT=str(tmp_path / "catalog")
    )
    process = _spawn([*UVICORN, "app:app", "--port", str(port)], REPO, env)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        r = httpx.post(f"http://127.0.0.1:{port}/run-example", json={"name": "Ada"})
        assert r.json()["hello"] == "Ada"
    finally:
        _stop(process)


def test_serve_reload_picks_up_an_edited_function(proj) -> None:
    port = free_port()
    process = _serve(proj, "--port", str(port), "--reload")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        url = f"http://127.0.0.1:{port}/hello"
        assert httpx.post(url, json={"name": "Ada"}).json() == {"hello": "Ada"}
        proj.function("hello", "def main(event):\n    return {'edited': True}\n")
        deadline = time.monotonic() + 60  # ends only a wait for a reload that never comes
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.post(url, json={}).json() == {"edited": True}:
                    break
            assert time.monotonic() < deadline, "the edit was never served"
            time.sleep(0.2)
    finally:
        _stop(process)


def test_more_bad_input_gets_a_clear_error(proj, tmp_path) -> None:
    bad_port = run_cli("serve", cwd=proj.root, env=clean_env(DATABRICKS_APP_PORT="abc"))
    assert bad_port.returncode == 1
    assert "DATABRICKS_APP_PORT: port must be a number, not 'abc'" in bad_port.stderr
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    init = run_cli("init", str(blocked / "proj"), env=clean_env())
    assert init.returncode == 1 and "cannot create the project" in init.stderr
    for result in (bad_port, init):
        assert "Traceback" not in result.stderr


def test_an_http_error_answer_is_shown_and_fails_the_command(proj) -> None:
    proj.function(
        "hello",
        "import lakefn\n\ndef main(event):\n    raise lakefn.HttpError(409, {'why': 'taken'})\n",
    )
    r = run_cli("invoke", "hello", "--data", "{}", cwd=proj.root, env=clean_env())
    assert r.returncode == 1
    assert 'hello answered HTTP 409: {"why": "taken"}' in r.stderr


def test_uvicorn_finds_app_yaml_beside_app_py_from_any_folder(tmp_path) -> None:
    target = tmp_path / "proj"
    assert run_cli("init", str(target), env=clean_env()).returncode == 0
    port = free_port()
    command = [*UVICORN, "--app-dir", str(target), "app:app", "--port", str(port)]
    process = _spawn(command, tmp_path, clean_env())  # the working directory has no app.yaml
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        assert httpx.post(f"http://127.0.0.1:{port}/hello", json={}).json() == {
            "message": "hello, world"
        }
    finally:
        _stop(process)
