"""unity_table triggers: the watcher now lives in `lakefn.watching`; these names stay
importable from here for code written against this module."""

from __future__ import annotations

from ..watching import (
    FAILURE_BACKOFF_CAP,
    MAX_BATCH,
    TableWatcher,
    WatchState,
    holder_is_dead,
    next_check_in,
    owner_id,
)

__all__ = [
    "FAILURE_BACKOFF_CAP",
    "MAX_BATCH",
    "TableWatcher",
    "WatchState",
    "holder_is_dead",
    "next_check_in",
    "owner_id",
]
