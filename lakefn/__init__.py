"""lakefn: Python functions run on HTTP calls, cron ticks and Unity Catalog table versions."""

from __future__ import annotations

from ._exceptions import (
    ChangeDataFeedUnavailable,
    CheckpointConflict,
    ConfigError,
    FunctionLoadError,
    FunctionNotFound,
    HistoryGap,
    HttpError,
    InvocationTimeout,
    LakefnError,
    ServerError,
    SourceUnavailable,
    TableError,
    TableNameError,
    TableNotFound,
    WrongTrigger,
)
from ._lazy import lazy_getattr
from ._tablename import TableName
from .events import Commit, Event, HttpEvent, TableChangeEvent, TimerEvent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from fastapi import FastAPI

    from .journal import Invocation, Journal
    from .project import Project
    from .runtime import Runtime

__version__ = "0.1.0"

# FastAPI, APScheduler and the runtime load on first use, so `import lakefn` stays light for
# function modules and notebooks.
_LAZY = {
    "Runtime": "runtime",
    "Invocation": "journal",
    "Journal": "journal",
    "Project": "project",
    "load_project": "project",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def create_app(path: str | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """The FastAPI app serving the project at `path`: `app = lakefn.create_app()` in app.py,
    then `uvicorn app:app`. By default, the app.yaml beside the calling module (so
    `uvicorn --app-dir proj app:app` works from anywhere), else the working directory's."""
    from .server import create_app as _create_app

    if path is None and runtime is None:
        path = _beside_caller()
    return _create_app(path, runtime=runtime)


def _beside_caller() -> str | None:
    import sys
    from pathlib import Path

    caller = sys._getframe(2).f_globals.get("__file__")
    if caller:
        candidate = Path(caller).resolve().parent / "app.yaml"
        if candidate.is_file():
            return str(candidate)
    return None


__all__ = [
    "ChangeDataFeedUnavailable",
    "CheckpointConflict",
    "Commit",
    "ConfigError",
    "Event",
    "FunctionLoadError",
    "FunctionNotFound",
    "HistoryGap",
    "HttpError",
    "Invocation",
    "Journal",
    "Project",
    "Runtime",
    "HttpEvent",
    "InvocationTimeout",
    "LakefnError",
    "ServerError",
    "SourceUnavailable",
    "TableChangeEvent",
    "TableError",
    "TableName",
    "TableNameError",
    "TableNotFound",
    "TimerEvent",
    "WrongTrigger",
    "__version__",
    "create_app",
    "load_project",
]


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext lakefn`: registers the `%lakefn` magics."""
    from .notebook.extension import load

    load(ipython)


def unload_ipython_extension(ipython: object) -> None:
    """`%unload_ext lakefn`: stops the server and forgets the project."""
    from .notebook.extension import unload

    unload(ipython)
