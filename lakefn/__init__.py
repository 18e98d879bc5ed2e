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
)
from ._tablename import TableName
from .events import Commit, Event, HttpEvent, TableChangeEvent, TimerEvent

__version__ = "0.1.0"

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
    "__version__",
]
