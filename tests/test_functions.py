"""Function modules: loading, helpers, import errors, reload."""

from __future__ import annotations

import gc
import logging
import threading
import time
import warnings

import httpx
import pytest

from lakefn import ConfigError, FunctionNotFound
from lakefn.project import load_functions, load_project

ONE_HTTP = """\
functions:
  - name: greet
    trigger: {type: http, endpoint: /greet}
"""


def test_helpers_are_importable_and_not_functions(project) -> None:
    project.config(ONE_HTTP)
    project.file("functions/helpers.py", "PREFIX = 'hi'\n")
    project.file("functions/shared/__init__.py", "SUFFIX = '!'\n")
    project.function(
        "greet",
        """\
        from . import helpers
        import shared

        def main(event):
            return helpers.PREFIX + " " + event.json()["name"] + shared.SUFFIX
        """,
    )
    runtime = project.runtime()
    try:
        assert runtime.registry.names == ["greet"]
        assert runtime.invoke_sync("greet", {"name": "Ada"}).result == "hi Ada!"
    finally:
        runtime.close()


def test_an_import_error_names_the_function_and_shows_its_traceback(project) -> None:
    project.config(ONE_HTTP)
    project.function(
        "greet",
        """\
        import json

        def helper():
            return {}["missing"]

        VALUE = helper()

        def main(event):
            return VALUE
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_functions(load_project(project.app_yaml))
    text = str(info.value)
    assert "function 'greet'" in text
    assert 'greet_function.py", line 6, in <module>' in text
    assert "line 4, in helper" in text and "KeyError: 'missing'" in text


def test_reload_picks_up_the_new_code_and_a_broken_edit_keeps_the_old(project) -> None:
    project.config(ONE_HTTP)
    path = project.function("greet", "def main(event):\n    return 'v1'\n")
    runtime = project.runtime()
    try:
        assert runtime.invoke_sync("greet").result == "v1"
        path.write_text("async def main(event):\n    return 'v2'\n")
        runtime.reload("greet")
        assert runtime.invoke_sync("greet").result == "v2"
        path.write_text("def main(event):\n    return (\n")
        with pytest.raises(Exception, match="greet"):
            runtime.reload("greet")
        assert runtime.invoke_sync("greet").result == "v2"
    finally:
        runtime.close()


def test_unknown_function_lists_the_known_ones(project) -> None:
    project.config(ONE_HTTP)
    project.function("greet", "def main(event):\n    return 1\n")
    runtime = project.runtime()
    try:
        with pytest.raises(
            FunctionNotFound, match="no function named 'gret'; the project has: greet"
        ):
            runtime.invoke_sync("gret")
    finally:
        runtime.close()


def test_a_failure_is_journaled_with_its_error_and_logged_with_its_traceback(
    project, caplog
) -> None:
    project.config("state: state.db\n" + ONE_HTTP)
    project.function("greet", "def main(event):\n    raise ValueError('bad input')\n")
    runtime = project.runtime()
    try:
        with caplog.at_level(logging.ERROR):
            failed = runtime.invoke_sync("greet")
    finally:
        runtime.close()
    assert failed.status == "error" and failed.error == "ValueError: bad input"
    # The journal keeps the line; the server's log has the whole traceback to debug from.
    assert failed.logs == [f"ERROR [{failed.id}] failed: ValueError: bad input"]
    said = f"[{failed.id}] failed: ValueError: bad input"
    [record] = [r for r in caplog.records if r.getMessage() == said]
    assert record.exc_info is not None and record.exc_info[1] is failed.exception
    assert "raise ValueError('bad input')" in caplog.text


def test_a_trigger_answer_that_fails_is_journaled_as_the_runs_failure(project) -> None:
    # A trigger kind's `answer` (an HTTP response, say) is made before the journal records the
    # run; should making it raise, the run is still recorded, as failed, and not retried.
    from lakefn.events import HttpEvent

    project.config(ONE_HTTP.replace("    trigger:", "    retry: {max_attempts: 3}\n    trigger:"))
    project.function("greet", "def main(event):\n    return 'hi'\n")
    runtime = project.runtime()

    def answer(invocation):
        raise RuntimeError("the answer broke")

    try:
        done = runtime.run_sync(
            runtime.invoker.invoke("greet", lambda: HttpEvent(function_name="greet"), answer=answer)
        )
        entries = runtime.journal.entries(function="greet")
    finally:
        runtime.close()
    assert (done.status, done.error, done.answer) == (
        "error",
        "RuntimeError: the answer broke",
        None,
    )
    assert [(e.id, e.attempt, e.status) for e in entries] == [(done.id, 1, "error")]


def test_two_projects_in_one_process_do_not_share_modules(tmp_path) -> None:
    from tests.conftest import ProjectDir

    results = []
    for label in ("one", "two"):
        p = ProjectDir(tmp_path / label)
        p.config(ONE_HTTP)
        p.file("functions/helpers.py", f"LABEL = {label!r}\n")
        p.function("greet", "from . import helpers\n\ndef main(event):\n    return helpers.LABEL\n")
        runtime = p.runtime()
        try:
            results.append(runtime.invoke_sync("greet").result)
        finally:
            runtime.close()
    assert results == ["one", "two"]


def test_manual_invoke_of_a_table_function_is_a_simulation(project) -> None:
    from lakefn import LakefnError

    project.config(
        """\
        functions:
          - name: watch
            trigger: {type: unity_table, check_interval: 5}
            table_name: main.sales.orders
        """
    )
    project.function(
        "watch",
        "def main(event):\n    return [event.simulated, [c.operation for c in event.commits]]\n",
    )
    runtime = project.runtime()
    try:
        invocation = runtime.invoke_sync("watch", {"operation": "merge", "version": 3})
        assert invocation.result == [True, ["MERGE"]]
        assert invocation.detail["versions"] == [3, 3]
        with pytest.raises(LakefnError, match="some of operation, rows, version, replay_from"):
            runtime.invoke_sync("watch", {"op": "merge"})
    finally:
        runtime.close()


# A function that blocks the loop until the test releases it: it marks that it is running, then
# holds the loop (time.sleep, as the mistake it stands for does) until a file appears. The test
# steers by those two files, never by how long anything takes.
BLOCKER = """\
import time
from pathlib import Path

HERE = Path(__file__)

async def main(event):
    HERE.with_suffix(".running").touch()
    while not HERE.with_suffix(".release").exists():
        time.sleep(0.01)
    return "done"
"""


def _wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Wait for a signal; the bound only turns a hang into a failure naming what never came."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.01)


def test_an_async_function_that_blocks_the_loop_is_called_out(project, serve, caplog) -> None:
    project.config(
        "functions:\n  - name: blocker\n    trigger: {type: http, method: GET, endpoint: /b}\n"
    )
    module = project.function("blocker", BLOCKER)
    server = serve(project)
    answers: list[str] = []

    def call() -> None:
        answers.append(httpx.get(f"{server.url}/b", timeout=120).text)

    def called_out() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if "event loop has been blocked" in r.getMessage()
        ]

    with caplog.at_level(logging.WARNING, logger="lakefn"):
        caller = threading.Thread(target=call)
        caller.start()
        try:
            # The loop stays blocked until the watchdog has spoken: however slow the machine,
            # the warning comes while the function still holds the loop, or never.
            _wait_for(module.with_suffix(".running").exists, "the function starting")
            _wait_for(called_out, "the blocked-loop warning")
        finally:
            module.with_suffix(".release").touch()  # a failed test must not leave it stuck
            caller.join(60)
    assert answers == ["done"]
    warnings = called_out()
    assert len(warnings) == 1 and "make it a plain `def main`" in warnings[0]


def test_a_server_stuck_in_a_blocking_function_says_so_when_stopped(project) -> None:
    from lakefn import ServerError
    from lakefn.notebook.background import BackgroundServer

    project.config(
        "functions:\n  - name: blocker\n    trigger: {type: http, method: GET, endpoint: /b}\n"
    )
    module = project.function("blocker", BLOCKER)
    runtime = project.runtime()
    server = BackgroundServer(runtime, "127.0.0.1", 0)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/b"
        threading.Thread(target=lambda: httpx.get(url, timeout=120), daemon=True).start()
        _wait_for(module.with_suffix(".running").exists, "the function starting")
        with pytest.raises(ServerError, match="event loop is blocked"):
            server.stop(timeout=0.5)
        module.with_suffix(".release").touch()
        # once the call returns, the loop ends and the port is free again
        _wait_for(lambda: _port_free(server.port), "the port being freed")
        thread = f"lakefn-server-{server.port}"
        _wait_for(lambda: all(t.name != thread for t in threading.enumerate()), "the loop ending")
    finally:
        module.with_suffix(".release").touch()
        runtime.close()
    # Known gap, reported: the abandoned loop ends without uvicorn closing the connection of the
    # request it was stuck in. Collect that here, so the leak guard (tests/_resource_guard.py)
    # keeps watching the rest of this module rather than failing on a known leftover.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _port_free(port: int) -> bool:
    from lakefn import ServerError
    from lakefn._serve import bind_socket

    try:
        bind_socket("127.0.0.1", port).close()
    except ServerError:
        return False
    return True
