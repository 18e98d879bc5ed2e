"""The one way lakefn runs a coroutine from synchronous code (`run_on`, behind `LoopThread.run`,
`Runtime.run_sync`, the notebook session and the test harness) and the one uvicorn launcher
(`ServerRun`, behind `lakefn serve`, `%lakefn serve` and the harness's server)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from lakefn._exceptions import ServerNotStarted
from lakefn._loopthread import LoopNotRunning, LoopThread, run_on
from lakefn._serve import ServerRun, bind_socket


@pytest.fixture
def thread() -> Any:
    loop = LoopThread("lakefn-test-runner").start()
    yield loop
    loop.stop()


def test_waiting_past_the_timeout_cancels_the_coroutine(thread: LoopThread) -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        thread.run(forever(), timeout=0.01)
    # Nothing is left running that the caller was told had given up.
    assert cancelled.wait(30)


def test_a_result_and_an_exception_come_back_to_the_caller(thread: LoopThread) -> None:
    async def answer() -> int:
        return 42

    async def fail() -> None:
        raise ValueError("from the loop")

    assert thread.run(answer()) == 42
    with pytest.raises(ValueError, match="from the loop"):
        thread.run(fail())


def test_waiting_on_the_callers_own_loop_is_refused_not_a_deadlock() -> None:
    async def inner() -> int:
        return 1

    async def main() -> None:
        with pytest.raises(RuntimeError, match="would deadlock"):
            run_on(asyncio.get_running_loop(), inner(), timeout=1)

    asyncio.run(main())


def test_a_stopped_loop_thread_refuses_work() -> None:
    stopped = LoopThread("lakefn-test-stopped").start()
    stopped.stop()

    async def never() -> None:
        raise AssertionError("ran on a stopped loop")

    with pytest.raises(LoopNotRunning):
        stopped.run(never())
    with pytest.raises(LoopNotRunning):
        stopped.submit(never())


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A whole ASGI app: 200 "hello" to every request; a startup (lifespan on) that fails."""
    if scope["type"] == "lifespan":
        await receive()  # lifespan.startup
        await send({"type": "lifespan.startup.failed", "message": "no database"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def _port_is_free(port: int) -> bool:
    bind_socket("127.0.0.1", port).close()  # PortInUse otherwise
    return True


def test_a_server_on_its_own_thread_answers_and_leaves_nothing_behind() -> None:
    run = ServerRun(_hello, bind_socket("127.0.0.1", 0), lifespan="off", log_config=None)
    run.start()
    assert run.running and run.thread is not None
    worker = run.thread.thread
    assert httpx.get(f"http://127.0.0.1:{run.port}/", trust_env=False).text == "hello"
    run.stop()
    assert not run.running and worker is not None and not worker.is_alive()
    assert _port_is_free(run.port)


def test_a_server_on_a_given_loop_thread_leaves_that_thread_running(thread: LoopThread) -> None:
    run = ServerRun(_hello, bind_socket("127.0.0.1", 0), lifespan="off", log_config=None)
    run.start(thread)
    assert httpx.get(f"http://127.0.0.1:{run.port}/", trust_env=False).text == "hello"
    run.stop()
    assert thread.running  # the harness goes on running its triggers there
    assert _port_is_free(run.port)


def test_an_app_whose_startup_fails_is_a_clear_error_and_frees_the_port() -> None:
    run = ServerRun(_hello, bind_socket("127.0.0.1", 0), lifespan="on", log_config=None)
    with pytest.raises(ServerNotStarted, match="the app failed to start"):
        run.start()
    assert not run.running
    assert _port_is_free(run.port)
