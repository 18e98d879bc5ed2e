"""The process around the functions, as a careless author and a hostile caller meet it: real
`lakefn serve` and `uvicorn app:app` subprocesses, signals, busy ports, oversized headers, and
a notebook session's threads. One test per thing a user relies on.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lakefn.sources.local import create_table
from tests._serving import (
    TABLE,
    Served,
    Servers,
    clean_env,
    commit,
    serve_command,
    servers_for_a_test,
    wait_for,
)
from tests.conftest import ProjectDir, free_port, run_cli

UVICORN = str(Path(sys.executable).with_name("uvicorn"))


@pytest.fixture
def spawn() -> Iterator[Servers]:
    yield from servers_for_a_test()


# -- a function's BaseException is its own failure ---------------------------------------------

RAISES = {
    "exit": "sys.exit(3)",
    "interrupt": "raise KeyboardInterrupt",
    "generator_exit": "raise GeneratorExit",
    "cancelled": "raise asyncio.CancelledError",
    # raised in a helper module beside the function: still the function's own doing
    "cancelled_in_helper": "import _helper; _helper.cancel()",
}
SHAPES = [
    (style, kind, timed)
    for style in ("sync", "async")
    for kind in RAISES
    for timed in (False, True)
]


def _name(style: str, kind: str, timed: bool) -> str:
    return f"{kind}_{style}" + ("_timed" if timed else "")


@pytest.fixture(scope="module")
def raising(tmp_path_factory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("raising")
    project = ProjectDir(root)
    (root / "functions").mkdir(exist_ok=True)
    (root / "functions" / "_helper.py").write_text(
        "import asyncio\n\ndef cancel():\n    raise asyncio.CancelledError\n"
    )
    lines = ["functions:"]
    for style, kind, timed in SHAPES:
        name = _name(style, kind, timed)
        lines += [
            f"  - name: {name}",
            f"    trigger: {{type: http, method: GET, endpoint: /{name}}}",
        ]
        lines += ["    timeout: 5"] if timed else []
        header = "async def main(event):" if style == "async" else "def main(event):"
        project.function(name, f"import asyncio, sys\n\n{header}\n    {RAISES[kind]}\n")
    lines += [
        "  - name: tick",
        "    timeout: 5",
        "    trigger: {type: timer, schedule: '0 0 1 1 *'}",
    ]
    project.function("tick", "import sys\n\nasync def main(event):\n    sys.exit(4)\n")
    project.config("\n".join(lines) + "\n")
    port = free_port()
    served = Served(serve_command(port, log_level="info"), root, port).wait_ready()
    yield served
    served.stop(signal.SIGKILL)


@pytest.mark.parametrize(("style", "kind", "timed"), SHAPES, ids=lambda v: str(v))
def test_a_function_raising_a_base_exception_fails_alone_and_the_server_keeps_serving(
    raising, style, kind, timed
) -> None:
    r = httpx.get(f"{raising.url}/{_name(style, kind, timed)}", timeout=30)
    assert r.status_code == 500 and r.json()["invocation_id"]
    assert raising.alive and httpx.get(f"{raising.url}/healthz").status_code == 200


def test_a_timer_function_that_calls_sys_exit_fails_alone(raising) -> None:
    r = httpx.post(f"{raising.url}/lakefn/functions/tick/invoke", timeout=30)
    assert r.status_code == 500 and r.json()["invocation"]["status"] == "error"
    assert "SystemExit: 4" in r.json()["invocation"]["error"]
    assert raising.alive and httpx.get(f"{raising.url}/healthz").status_code == 200


def test_a_table_function_that_calls_sys_exit_is_retried_not_a_crash_loop(project, spawn) -> None:
    project.config(
        f"""\
        tables: {{local_root: catalog, source: local}}
        state: state.db
        functions:
          - name: sink
            timeout: 5
            trigger: {{type: unity_table, check_interval: 0.05}}
            table_name: {TABLE}
        """
    )
    project.function("sink", "import sys\n\nasync def main(event):\n    sys.exit(1)\n")
    create_table(project.root / "catalog", TABLE, [{"id": 0}])
    served = spawn.lakefn(project.root)
    wait_for(lambda: served.tables()["last_processed_version"] is not None)
    commit(project.root)
    status = wait_for(lambda: (s := served.tables())["consecutive_failures"] >= 2 and s)
    assert "SystemExit" in status["last_error"] and status["last_processed_version"] == 0
    assert served.alive


# -- stopping ----------------------------------------------------------------------------------

#: notes that it started (a file beside app.yaml), then sleeps
SLEEPY = """\
import pathlib, time

def main(event):
    (pathlib.Path(__file__).resolve().parent.parent / "started").touch()
    time.sleep(600)
"""


@pytest.fixture
def sleepy(project) -> ProjectDir:
    project.config(
        """\
        functions:
          - name: sleepy
            trigger: {type: http, method: GET, endpoint: /sleepy}
        """
    )
    project.function("sleepy", SLEEPY)
    return project


def test_serve_reload_stops_on_sigterm_with_a_sync_request_running(sleepy, spawn) -> None:
    served = spawn.lakefn(sleepy.root, "--reload")

    def call() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{served.url}/sleepy", timeout=60)

    threading.Thread(target=call, daemon=True).start()
    wait_for(lambda: (sleepy.root / "started").exists())
    served.process.send_signal(signal.SIGTERM)
    # Not a speed limit: the function sleeps 600 s, and a server waiting for it would too.
    served.process.wait(timeout=30)


def test_serve_reload_on_a_busy_port_says_so_plainly(sleepy) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        r = run_cli("serve", "--reload", "--port", str(port), cwd=sleepy.root, env=clean_env())
    assert r.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr
    assert "Errno" not in r.stderr + r.stdout and "Traceback" not in r.stderr


# -- header limits -----------------------------------------------------------------------------


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the peak: what it took at worst
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _raw_request(port: int, head: bytes, filler: Iterator[bytes], tail: bytes) -> bytes:
    """Send `head`, then `filler` while the server reads, then `tail`; stop sending as soon as
    an answer arrives. Returns the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        pending = list(filler) + [tail]
        answer = b""
        while True:
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 30)
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    return answer
                answer += chunk
                pending = []  # answered: send no more
            elif writable:
                sock.sendall(pending.pop(0))
            else:
                raise AssertionError("the server neither read nor answered")


def _big_header(port: int, megabytes: int) -> bytes:
    piece = b"a" * 65536
    return _raw_request(
        port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ",
        iter([piece] * (16 * megabytes)),
        b"\r\n\r\n",
    )


def _many_headers(port: int, count: int) -> bytes:
    lines = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    return _raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + lines, iter([]), b"\r\n")


@pytest.fixture
def plain(project) -> ProjectDir:
    project.config(
        """\
        functions:
          - name: hello
            trigger: {type: http, method: GET, endpoint: /hello}
        """
    )
    project.function("hello", "def main(event):\n    return {'hello': 1}\n")
    project.file("app.py", "import lakefn\n\napp = lakefn.create_app()\n")
    return project


def test_lakefn_serve_refuses_a_huge_header_with_431_without_holding_it(plain, spawn) -> None:
    served = spawn.lakefn(plain.root)
    assert _big_header(served.port, 1).startswith(b"HTTP/1.1 431")  # and settles allocations
    before = _peak_rss_kb(served.process.pid)
    answers = [_big_header(served.port, 16) for _ in range(3)]
    grown_mb = (_peak_rss_kb(served.process.pid) - before) / 1024
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b'"detail": "request headers are larger than' in answer
    assert grown_mb < 8, f"the server grew by {grown_mb:.1f} MB"
    assert httpx.get(f"{served.url}/hello").json() == {"hello": 1}


def test_lakefn_serve_refuses_500_headers_with_431(plain, spawn) -> None:
    served = spawn.lakefn(plain.root)
    answer = _many_headers(served.port, 500)
    assert answer.startswith(b"HTTP/1.1 431") and b"more than 100 headers" in answer
    assert httpx.get(f"{served.url}/hello").json() == {"hello": 1}


@pytest.mark.parametrize("what", ["size", "count"])
def test_uvicorn_app_app_refuses_oversized_headers_with_431(plain, spawn, what) -> None:
    port = free_port()
    served = spawn([UVICORN, "app:app", "--port", str(port)], plain.root, port).wait_ready()
    if what == "size":
        answer = _raw_request(
            port,
            b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000,
            iter([]),
            b"\r\n\r\n",
        )
    else:
        answer = _many_headers(port, 500)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert httpx.get(f"{served.url}/hello").json() == {"hello": 1}


# -- a notebook session's threads -----------------------------------------------------------------


_EARLIER: set[threading.Thread] = set()


def _lakefn_threads() -> list[str]:
    # Threads earlier tests abandoned (functions still sleeping past their timeout) are theirs.
    return sorted(
        t.name for t in threading.enumerate() if t.name.startswith("lakefn") and t not in _EARLIER
    )


def test_stop_and_close_leave_no_lakefn_thread_behind(plain) -> None:
    from lakefn.notebook.session import Session

    _EARLIER.update(threading.enumerate())
    assert _lakefn_threads() == []
    session = Session(port=0)
    session.load(plain.app_yaml)
    session.invoke("hello")  # before serving: on the session's own loop thread
    status = session.serve()
    assert httpx.get(f"http://127.0.0.1:{status.port}/hello").json() == {"hello": 1}
    assert session.invoke("hello").ok
    session.stop()
    assert _lakefn_threads() == []
    session.invoke("hello")  # still usable after a stop
    session.close()
    assert _lakefn_threads() == []
