"""`%lakefn` in a real IPython shell, with a real uvicorn on 127.0.0.1 and httpx requests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing import globalipapp

import lakefn.notebook
from lakefn._serve import bind_socket
from lakefn._tables_cli import sample_customers
from lakefn.notebook.views import InvocationLog, InvocationView, ServerStatus
from lakefn.sources.local import create_table

REPO = Path(__file__).resolve().parent.parent
TABLE = "_data.tpch.dim_customer"


def copy_sample(dest: Path) -> Path:
    """The repo's sample project, copied so tests may edit its functions."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "app.yaml", dest / "app.yaml")
    shutil.copytree(
        REPO / "functions", dest / "functions", ignore=shutil.ignore_patterns("__pycache__")
    )
    return dest / "app.yaml"


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the sample project with its own state and local catalog (holding the table)."""
    monkeypatch.setenv("LAKEFN_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("LAKEFN_LOCAL_ROOT", str(tmp_path / "catalog"))
    create_table(tmp_path / "catalog", TABLE, sample_customers())
    return copy_sample(tmp_path / "project")


@pytest.fixture
def ip() -> Iterator[InteractiveShell]:
    globalipapp.start_ipython()  # once per process; later calls return None
    shell = globalipapp.get_ipython()
    shell.run_line_magic("load_ext", "lakefn")
    try:
        yield shell
    finally:
        shell.run_line_magic("unload_ext", "lakefn")
        lakefn.notebook.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lakefn_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("lakefn-server"))


def magic(ip: InteractiveShell, line: str) -> Any:
    return ip.run_line_magic("lakefn", line)


# -- load, serve, invoke, stop -------------------------------------------------------------------


def test_serve_answers_and_returns_a_status_with_a_link(ip: InteractiveShell, sample: Path) -> None:
    loaded = magic(ip, f"load {sample}")
    assert "example_http" in repr(loaded) and "unity_monitor" in loaded._repr_html_()
    port = free_port()
    status = magic(ip, f"serve --port {port}")  # returns once the server answers
    assert isinstance(status, ServerStatus) and status.running
    assert status.url == f"http://127.0.0.1:{port}/"
    assert f"<a href='http://127.0.0.1:{port}/'" in status._repr_html_()
    assert httpx.get(status.url + "healthz").json() == {"status": "ok", "functions": 3}
    reply = httpx.post(status.url + "run-example", json={"name": "Bo"})
    assert reply.json() == {"hello": "Bo", "user": None}
    stopped = magic(ip, "stop")
    assert not stopped.running and "not serving" in repr(stopped)
    with pytest.raises(httpx.ConnectError):
        httpx.get(status.url + "healthz")
    assert lakefn_threads() == []


def test_server_answers_while_a_cell_is_busy(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    status = magic(ip, "serve --port 0")
    cell_running, answered = threading.Event(), threading.Event()
    replies: list[int] = []

    def call() -> None:
        cell_running.wait(60)
        replies.append(httpx.get(status.local_url + "healthz", timeout=30).status_code)
        answered.set()

    caller = threading.Thread(target=call)
    caller.start()
    ip.user_ns.update(cell_running=cell_running, answered=answered)
    # The cell holds the kernel's thread until the server has answered: with a server on the
    # kernel's own loop the request could not be served and the cell would wait in vain.
    result = ip.run_cell("cell_running.set(); answered.wait(60)")
    caller.join(60)
    assert result.result is True and replies == [200]


def test_a_busy_port_is_a_usage_error_and_leaves_no_thread(
    ip: InteractiveShell, sample: Path
) -> None:
    magic(ip, f"load {sample}")
    blocker = bind_socket("127.0.0.1", 0)
    port = blocker.getsockname()[1]
    try:
        with pytest.raises(UsageError, match=f"port {port} on 127.0.0.1 is already in use"):
            magic(ip, f"serve --port {port}")
        assert lakefn_threads() == []
        assert not magic(ip, "status").running
    finally:
        blocker.close()
    assert magic(ip, f"serve --port {port}").running  # and the port works once freed


def test_stop_frees_the_port_at_once(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    port = free_port()
    magic(ip, f"serve --port {port}")
    magic(ip, "stop")
    bind_socket("127.0.0.1", port).close()  # no ServerError: nothing holds it any more
    assert lakefn_threads() == []
    assert not magic(ip, "stop").running  # stopping twice is fine


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settled(count: Any, baseline: int, timeout: float = 30.0) -> int:
    """Executor threads end a moment after they are told to: wait until they have (the bound
    only ends a wait for threads that never end)."""
    deadline = time.monotonic() + timeout
    while count() > baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(count())


def test_twenty_serve_stop_cycles_leak_no_thread_or_fd(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    port = free_port()
    magic(ip, f"serve --port {port}")  # warm up: imports, the function workers, the state db
    httpx.post(f"http://127.0.0.1:{port}/run-example", json={})
    magic(ip, "stop")
    threads, fds = _settled(threading.active_count, 0, 0.5), _fds()
    for _ in range(20):
        status = magic(ip, f"serve --port {port}")
        assert httpx.get(status.local_url + "healthz").status_code == 200
        magic(ip, "stop")
    assert _settled(threading.active_count, threads) <= threads, [
        t.name for t in threading.enumerate()
    ]
    assert _settled(_fds, fds) <= fds


def test_serving_again_on_the_same_port_is_a_no_op(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    port = free_port()
    first = magic(ip, f"serve --port {port}")
    assert magic(ip, f"serve --port {port}") == first
    assert lakefn_threads() == [f"lakefn-server-{port}"]
    other = free_port()
    moved = magic(ip, f"serve --port {other}")
    assert moved.port == other and lakefn_threads() == [f"lakefn-server-{other}"]


# -- doing things ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    ['{"name": "Ada"}', """'{"name": "Ada"}'"""],
    ids=["bare", "shell-quoted"],
)
def test_invoke_takes_json_as_typed(ip: InteractiveShell, sample: Path, payload: str) -> None:
    magic(ip, f"load {sample}")
    view = magic(ip, f"invoke example_http {payload}")
    assert isinstance(view, InvocationView)
    assert view.result == {"hello": "Ada", "user": None}
    assert "greeting Ada" in repr(view)  # what the function logged, shown with it
    assert "<b style='color:#1a7f37'>ok</b>" in view._repr_html_()


@pytest.mark.parametrize("serving", [False, True], ids=["stopped", "serving"])
def test_invoke_every_kind_with_or_without_the_server(
    ip: InteractiveShell, sample: Path, serving: bool
) -> None:
    magic(ip, f"load {sample}")
    if serving:
        magic(ip, "serve --port 0")
    assert magic(ip, "invoke example_http").result == {"hello": "world", "user": None}
    assert magic(ip, "invoke scheduled_task").invocation.trigger == "timer"
    merged = magic(ip, "simulate unity_monitor --operation MERGE")
    assert merged.invocation.simulated and merged.result["operations"] == ["MERGE"]


def test_a_failing_function_is_shown_not_raised(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    view = magic(ip, "invoke example_http [1, 2]")  # a list has no .get: the function fails
    assert view.invocation.status == "error"
    assert "AttributeError" in view._repr_html_()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("invoke example_http {nope", "the payload is not valid JSON"),
        ("invoke nobody", "no function named 'nobody'; the project has: example_http"),
        ("invoke", "the following arguments are required: name"),
        ("simulate example_http", "has a http trigger, not unity_table"),
        ("simulate unity_monitor --rows '{\"a\": 1}'", "--rows must be a JSON list of objects"),
        ("simulate unity_monitor --replay-from x", "invalid int value: 'x'"),
        ("simulate unity_monitor --version -1", "--version must be a table version, 0 to "),
        ("simulate unity_monitor --replay-from -2", "--replay-from must be a table version"),
        ("simulate unity_monitor --operation ' '", "--operation must name an operation"),
        ("serve --port abc", "invalid int value: 'abc'"),
        ("serve --port 70000", "port 70000 is not a TCP port"),
        ("logs -n 0", "-n must be at least 1"),
        ("frobnicate", "invalid choice: 'frobnicate'"),
        ("load /nonexistent/app.yaml", "app.yaml"),
        ("reload nobody", "no function named 'nobody'"),
    ],
)
def test_bad_arguments_are_usage_errors(
    ip: InteractiveShell, sample: Path, line: str, message: str
) -> None:
    magic(ip, f"load {sample}")
    with pytest.raises(UsageError, match=_literal(message)):
        magic(ip, line)


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_without_a_project_the_error_says_what_to_do(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="no project loaded: run `%lakefn load"):
        magic(ip, "invoke example_http")
    assert "no project loaded" in repr(magic(ip, "status"))
    assert "no project loaded" in repr(magic(ip, ""))


def test_simulate_options_reach_the_function(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    view = magic(
        ip, """simulate unity_monitor --operation delete --version 7 --rows '[{"id": 1}]'"""
    )
    assert view.result["versions"] == [7] and view.result["operations"] == ["DELETE"]
    replayed = magic(ip, "simulate unity_monitor --replay-from 0")
    assert replayed.result["versions"] == [0]
    assert replayed.result["operations"] == ["WRITE"]  # the real version 0


def test_logs_lists_the_last_invocations(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    assert "no invocations yet" in repr(magic(ip, "logs"))
    for name in ("Ada", "Bo", "Cy"):
        magic(ip, f'invoke example_http {{"name": "{name}"}}')
    logs = magic(ip, "logs -n 2")
    assert isinstance(logs, InvocationLog) and len(logs) == 2
    assert "<table class='lakefn-log'>" in logs._repr_html_()


def test_help_is_the_docstring_and_dash_h_prints_options(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = ip.find_line_magic("lakefn").__doc__
    for word in (
        "load",
        "serve",
        "stop",
        "status",
        "invoke",
        "simulate",
        "reload",
        "logs",
        "panel",
    ):
        assert f"%lakefn {word}" in doc
    assert "%%lakefn function NAME" in doc
    assert magic(ip, "serve -h") is None
    assert "--port PORT" in capsys.readouterr().out


# -- editing functions -------------------------------------------------------------------------


def test_reload_picks_up_an_edited_file(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    status = magic(ip, "serve --port 0")
    path = sample.parent / "functions" / "example_http_function.py"
    path.write_text("def main(event):\n    return {'v': 2}\n")
    magic(ip, "reload example_http")
    assert httpx.post(status.local_url + "run-example").json() == {"v": 2}
    path.write_text("def main(event:\n")
    with pytest.raises(UsageError, match="cannot be loaded"):
        magic(ip, "reload example_http")
    assert httpx.post(status.local_url + "run-example").json() == {"v": 2}  # old one stays


def test_cell_magic_writes_and_reloads_a_declared_function(
    ip: InteractiveShell, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    magic(ip, f"load {sample}")
    ip.run_cell_magic(
        "lakefn", "function example_http", "def main(event):\n    return 'from a cell'\n"
    )
    assert "reloaded example_http" in capsys.readouterr().out
    written = (sample.parent / "functions" / "example_http_function.py").read_text()
    assert "from a cell" in written
    assert magic(ip, "invoke example_http").result == "from a cell"


def test_cell_magic_says_an_undeclared_function_needs_app_yaml(
    ip: InteractiveShell, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    magic(ip, f"load {sample}")
    ip.run_cell_magic("lakefn", "function brand_new", "def main(event):\n    return 1\n")
    out = capsys.readouterr().out
    assert "'brand_new' is not declared in app.yaml" in out and "- name: brand_new" in out
    assert (sample.parent / "functions" / "brand_new_function.py").is_file()
    with pytest.raises(UsageError, match="%%lakefn function NAME"):
        ip.run_cell_magic("lakefn", "functoin x", "pass")
    with pytest.raises(UsageError, match="not a valid function name"):
        ip.run_cell_magic("lakefn", "function ../evil", "pass")


# -- configuration and the extension's life ------------------------------------------------------


def test_config_lists_and_sets_the_settings(
    ip: InteractiveShell, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("config", "LakefnMagics")
    out = capsys.readouterr().out
    for name in ("default_host", "default_port", "log_lines", "panel_log_lines"):
        assert f"LakefnMagics.{name}" in out
    ip.run_line_magic("config", "LakefnMagics.default_port = 0")
    magic(ip, f"load {sample}")
    status = magic(ip, "serve")
    assert status.port != 8000 and status.port > 0


def test_unload_stops_everything_and_reload_ext_works(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    status = magic(ip, "serve --port 0")
    ip.run_line_magic("reload_ext", "lakefn")
    assert lakefn_threads() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(status.local_url + "healthz")
    assert "no project loaded" in repr(magic(ip, "status"))  # a fresh session
    assert sum(type(c).__name__ == "LakefnMagics" for c in ip.configurables) == 1
    ip.run_line_magic("unload_ext", "lakefn")
    assert ip.find_line_magic("lakefn") is None
    ip.run_line_magic("load_ext", "lakefn")  # the fixture unloads it again


def test_the_plain_python_api_shares_the_magics_session(ip: InteractiveShell, sample: Path) -> None:
    lakefn.notebook.load(sample)
    assert "example_http" in repr(magic(ip, "status")) or magic(ip, "status").functions == 3
    status = lakefn.notebook.serve(port=0)
    assert magic(ip, "status") == status
    assert lakefn.notebook.invoke("example_http", {"name": "Py"}).result["hello"] == "Py"
    assert lakefn.notebook.simulate("unity_monitor", "WRITE").ok
    assert lakefn.notebook.reload() == ["example_http", "scheduled_task", "unity_monitor"]
    assert len(lakefn.notebook.logs(5)) == 2
    assert not lakefn.notebook.stop().running


def test_databricks_notebook_reads_tables_with_its_spark(
    ip: InteractiveShell, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakefn.sources.spark import SparkSource

    spark = object()  # only handed over here; nothing is queried
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    monkeypatch.setitem(ip.user_ns, "spark", spark)
    magic(ip, f"load {sample}")
    source = lakefn.notebook.session().require().table_source
    assert isinstance(source, SparkSource) and source.spark is spark


def test_outside_databricks_the_notebook_spark_is_not_used(
    ip: InteractiveShell, sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    monkeypatch.setitem(ip.user_ns, "spark", object())
    magic(ip, f"load {sample}")
    assert lakefn.notebook.session().require().table_source.name == "local"


# -- in other processes --------------------------------------------------------------------------


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd=REPO,
    )


def test_import_lakefn_stays_light() -> None:
    result = _run(
        """
        import sys, lakefn
        heavy = ("IPython", "ipywidgets", "traitlets", "lakefn.notebook")
        heavy = [m for m in heavy if m in sys.modules]
        print(heavy)
        """
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_serve_works_after_nest_asyncio_apply(sample: Path) -> None:
    result = _run(
        f"""
        import nest_asyncio, httpx
        nest_asyncio.apply()
        from IPython.testing.globalipapp import start_ipython
        ip = start_ipython()
        ip.run_line_magic("load_ext", "lakefn")
        ip.run_line_magic("lakefn", "load {sample}")
        for _ in range(3):
            status = ip.run_line_magic("lakefn", "serve --port 0")
            assert httpx.get(status.local_url + "healthz").status_code == 200
            assert ip.run_line_magic("lakefn", "invoke example_http").result["hello"] == "world"
            ip.run_line_magic("lakefn", "stop")
        ip.run_line_magic("unload_ext", "lakefn")
        print("ok")
        """
    )
    assert result.stdout.strip().endswith("ok"), result.stderr


# -- run: a function once, as its Databricks Job would ----------------------------------------------


def test_run_delivers_new_commits_once_and_moves_the_checkpoint(
    ip: InteractiveShell, sample: Path, tmp_path: Path
) -> None:
    from lakefn.testing import LocalTables

    magic(ip, f"load {sample}")
    first = magic(ip, "run unity_monitor")  # start: latest records where it begins
    assert first.outcome == "nothing_new" and first.checkpoint_after == 0
    tables = LocalTables(tmp_path / "catalog")
    tables.append(TABLE, sample_customers()[:1])
    ran = magic(ip, "run unity_monitor")
    assert ran.outcome == "delivered" and ran.to_dict()["delivered_versions"] == [1]
    assert ran.checkpoint_after == 1
    assert magic(ip, "run unity_monitor").outcome == "nothing_new"  # delivered once


def test_run_hands_a_timer_its_scheduled_time(ip: InteractiveShell, sample: Path) -> None:
    magic(ip, f"load {sample}")
    ran = magic(ip, "run scheduled_task --scheduled-time 2026-03-01T02:30:00Z")
    assert ran.outcome == "ok" and ran.past_due is True
    assert ran.scheduled_time.isoformat() == "2026-03-01T02:30:00+00:00"
    with pytest.raises(UsageError, match="not an ISO 8601 time"):
        magic(ip, "run scheduled_task --scheduled-time yesterday")


def test_run_is_refused_for_a_table_the_running_server_watches(
    ip: InteractiveShell, sample: Path
) -> None:
    magic(ip, f"load {sample}")
    magic(ip, f"serve --port {free_port()}")
    try:
        with pytest.raises(UsageError, match="watched by the running server"):
            magic(ip, "run unity_monitor")
    finally:
        magic(ip, "stop")
