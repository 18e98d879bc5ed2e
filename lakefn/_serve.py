"""`lakefn serve`: uvicorn on a socket we bind first, so a busy port is a clear message."""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from ._defaults import GRACEFUL_SHUTDOWN
from ._exceptions import CannotListen, PortInUse
from ._limits import PROTOCOL


async def serve_in_loop(server: Any, sock: socket.socket) -> None:
    """Run a uvicorn server on the current loop until it exits, leaving no connection open.

    Past its graceful timeout uvicorn cancels the requests still running but leaves their
    connections open; on a loop that then stops (a notebook's, a test's) their sockets would be
    left to the garbage collector. Closing them here ends each such request for its client."""
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.close()


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise CannotListen(host, port, exc.strerror) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    app_path: str | None, *, host: str, port: int, reload: bool = False, log_level: str = "info"
) -> int:
    from .project import find_app_yaml

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("apscheduler").setLevel(
        max(logging.WARNING, logging.getLevelName(log_level.upper()))
    )
    app_yaml = find_app_yaml(app_path)
    if reload:
        return _serve_reloading(app_yaml, host, port, log_level)
    return _serve_once(app_yaml, host, port, log_level)


def _serve_reloading(app_yaml: Path, host: str, port: int, log_level: str) -> int:
    import uvicorn

    from .project import load_functions, load_project

    # Reload needs an import string: the child process rebuilds the app from this path.
    load_functions(load_project(app_yaml))  # refuse a bad project before anything starts
    bind_socket(host, port).close()  # a busy port: our message, not uvicorn's [Errno 98]
    os.environ["LAKEFN_APP_YAML"] = str(app_yaml)
    uvicorn.run(
        "lakefn._serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        reload=True,
        reload_dirs=[str(app_yaml.parent)],
        reload_includes=["*.py", "*.yaml"],
        log_level=log_level,
        http=PROTOCOL,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    return 0


def _serve_once(app_yaml: Path, host: str, port: int, log_level: str) -> int:
    import uvicorn

    from .server import create_app

    app = create_app(app_yaml)  # a bad app.yaml is refused here, before the port is taken
    try:  # the runtime is closed however this ends, a busy port included
        sock = bind_socket(host, port)
        config = uvicorn.Config(
            app,
            log_level=log_level,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
            lifespan="on",
            http=PROTOCOL,
        )
        server = uvicorn.Server(config)
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        print(
            f"lakefn serving {app_yaml} on http://{shown}:{sock.getsockname()[1]}",
            file=sys.stderr,
            flush=True,
        )
        server.run(sockets=[sock])
    finally:
        app.state.runtime.close()
    return 0 if server.started else 1


def app_from_env():  # type: ignore[no-untyped-def]
    from .server import create_app

    return create_app(os.environ["LAKEFN_APP_YAML"])
