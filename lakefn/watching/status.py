"""How the watcher tells of trouble: logged once per change of state, shown in /lakefn/tables
and /healthz, and, for what a user must know later (lost or restarted history), journaled.

An error is kept on its `WatchState` with its kind. Reading the table again clears a table
error; the two other kinds are cleared otherwise: a store error when the store works again, an
unexpected one when a whole check goes through.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._exceptions import HistoryGap
from ..journal import Invocation

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from ..journal import Journal
    from .state import WatchState

logger = logging.getLogger("lakefn.tables")

#: error kinds cleared otherwise than by a successful read of the table
STORE = "store"
INTERNAL = "internal"


def note_error(
    state: WatchState, kind: str, message: str, exc: BaseException | None = None
) -> None:
    state.last_error = message
    if state.error_kind != kind:
        state.error_kind = kind
        logger.error("%s: %s", state.function, message, exc_info=exc)


def store_failed(state: WatchState, message: str, store_error: str) -> None:
    """A store that cannot record a delivery fails it: retried later with backoff."""
    state.consecutive_failures += 1
    state.store_error = store_error
    note_error(state, STORE, message)


def store_works(state: WatchState) -> None:
    if state.error_kind == STORE:
        logger.info("%s: the checkpoint store works again", state.function)
        state.error_kind = state.last_error = state.store_error = None


def table_readable(state: WatchState) -> None:
    if state.error_kind is not None and state.error_kind not in (STORE, INTERNAL):
        logger.info("%s: %s is readable again", state.function, state.table)
        state.error_kind = None
        state.last_error = None


def check_went_through(state: WatchState) -> None:
    # Cleared only by a whole check that raised nothing: an error that recurs further on in
    # each check is logged once, not once per check.
    if state.error_kind == INTERNAL:
        logger.info("%s: checks of %s work again", state.function, state.table)
        state.error_kind = state.last_error = None


def delivery_failed(state: WatchState, versions: tuple[int, int], invocation: Invocation) -> None:
    state.consecutive_failures += 1
    state.last_error = f"versions {versions[0]}..{versions[1]}: {invocation.error}"
    logger.error(
        "%s: delivery of %s versions %d..%d failed after %d attempt(s); it will be "
        "delivered again on the next check",
        state.function,
        state.table,
        versions[0],
        versions[1],
        invocation.attempt,
    )


def report_gap(journal: Journal, state: WatchState, last: int, first_available: int) -> None:
    if state.gaps and state.gaps[-1] == {"after": last, "resumed_at": first_available}:
        return  # the same gap, seen again because its delivery failed: reported already
    gap = HistoryGap(str(state.table), last, first_available)
    state.gaps.append({"after": last, "resumed_at": first_available})
    state.gaps = state.gaps[-20:]
    logger.error("%s: %s; resuming at version %d", state.function, gap, first_available)
    _journal_error(journal, state, str(gap), {"gap": [last + 1, first_available - 1]})


def report_recreated(
    journal: Journal,
    state: WatchState,
    versions: tuple[int, int],
    table_ids: tuple[str | None, str | None],
    at: datetime,
) -> None:
    """A table dropped and created again: `versions` and `table_ids` are (before, now)."""
    last, latest = versions
    was_id, now_id = table_ids
    if latest < last:
        why = f"is at version {latest}, behind version {last} already handed over"
    else:
        why = f"has a new table id ({was_id} before, {now_id} now)"
    message = (
        f"{state.table} {why}: the table was dropped and created again; delivering its new "
        "history from version 0"
    )
    logger.error("%s: %s", state.function, message)
    detail: dict[str, Any] = {"recreated": {"was": last, "now": latest}}
    if now_id is not None and now_id != was_id:
        detail["table_ids"] = {"was": was_id, "now": now_id}
    _journal_error(journal, state, message, detail)
    seen = {"versions": detail["recreated"], "table_ids": detail.get("table_ids")}
    state.recreated = [*state.recreated[-19:], {**seen, "at": at.isoformat()}]


def _journal_error(
    journal: Journal, state: WatchState, message: str, detail: dict[str, Any]
) -> None:
    detail = {"table": str(state.table), **detail}
    journal.record(Invocation.note(state.function, "unity_table", "error", message, detail))


def problems(states: Iterable[WatchState]) -> list[str]:
    """Why table triggers cannot run now (for /healthz); empty when they can."""
    failures = {state.store_error for state in states if state.store_error}
    return [f"table triggers cannot record their progress: {text}" for text in sorted(failures)]


def status(states: Iterable[WatchState], source: str, now: datetime) -> list[dict[str, Any]]:
    """The /lakefn/tables rows, lag measured at `now`."""
    return [state.to_dict(source, now) for state in states]
