"""lakefn in a notebook: the `%lakefn` magics (`%load_ext lakefn`) and the same actions as
plain calls on one default session::

    import lakefn.notebook as ln
    ln.load("app.yaml"); ln.serve(port=8000); ln.invoke("example_http", {"name": "Ada"})

IPython and ipywidgets are imported only by the magics and the panel.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .session import Session

if TYPE_CHECKING:
    import os
    from datetime import datetime

    from ..jobs.run import RunReport
    from ..journal import Invocation
    from ..runtime import Runtime
    from .panel import Panel
    from .views import InvocationLog, ServerStatus

__all__ = [
    "Session",
    "close",
    "invoke",
    "load",
    "logs",
    "panel",
    "reload",
    "run",
    "serve",
    "session",
    "simulate",
    "status",
    "stop",
]

_default: Session | None = None
_lock = threading.Lock()


def session_for(user_ns: Mapping[str, Any] | None) -> Session:
    """The default session, bound to `user_ns` (the notebook's namespace)."""
    global _default
    with _lock:
        if _default is None:
            _default = Session(user_ns)
        elif user_ns is not None:
            _default.user_ns = user_ns
        return _default


def session() -> Session:
    """The default session (the one `%lakefn` uses), bound to the running IPython's namespace."""
    if _default is not None:
        return _default
    return session_for(_ipython_namespace())


def _ipython_namespace() -> Mapping[str, Any] | None:
    import sys

    if "IPython" not in sys.modules:  # not in IPython: nothing to bind to
        return None
    from IPython import get_ipython

    ip = get_ipython()
    return None if ip is None else ip.user_ns


def close() -> None:
    """Stop the server and close the project; the next call starts a fresh session."""
    global _default
    with _lock:
        current, _default = _default, None
    if current is not None:
        current.close()


def load(path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Runtime:
    return session().load(path, **kwargs)


def serve(host: str | None = None, port: int | None = None) -> ServerStatus:
    return session().serve(host, port)


def stop() -> ServerStatus:
    return session().stop()


def status() -> ServerStatus:
    return session().status()


def invoke(name: str, payload: Any = None) -> Invocation:
    return session().invoke(name, payload)


def simulate(name: str, operation: str = "WRITE", **kwargs: Any) -> Invocation:
    return session().simulate(name, operation, **kwargs)


def run(name: str, scheduled_time: datetime | None = None, **kwargs: Any) -> RunReport:
    return session().run(name, scheduled_time, **kwargs)


def reload(name: str | None = None) -> list[str]:
    return session().reload(name)


def logs(n: int = 20) -> InvocationLog:
    return session().logs(n)


def panel(log_lines: int = 50) -> Panel:
    return session().panel(log_lines)
