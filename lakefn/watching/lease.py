"""The lease per (function, table) by which processes sharing a state store take turns.

Only the holder checks and delivers, and it keeps the lease renewed while its function runs.
While the lease is held without a break nobody else can move the checkpoint, so the holder
keeps it (and the lease's expiry) in memory: a check that finds nothing new touches the store
only when the lease is due for renewal, which keeps a thousand watched tables cheap.

A lease is judged on one clock: the store's. The store decides who holds it, so the holder
counts its own lease down on the seconds the store expires it by, its `lease_clock` (lakefn's
stores have one; a store the runtime opens is handed the runtime's `Clock`, so a FakeClock
moves both). A store that shows no clock is asked at every check unless the runtime runs on
the system clock: a FakeClock standing still must never keep a lease the store let run out.
Hosts sharing a store must keep their clocks in step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..abc import SystemClock

if TYPE_CHECKING:
    from ..abc import Clock
    from .state import WatchState
    from .store import Checkpoints

logger = logging.getLogger("lakefn.tables")

#: `lease_until` of a lease held from a store that shows no clock: held (> 0), never cached
_HELD_UNTIL_ASKED = 1.0


def owner_id() -> str:
    """host:pid:random — the pid lets a restarted server on the same host see that the
    lease's holder crashed, instead of waiting for the lease to run out."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(owner: str) -> bool:
    """True only when `owner` is a process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another watcher of this very process: alive
    try:
        # Signal 0 only asks whether the process exists. Not mutated: a mutant sending a real
        # signal (0 -> 1, SIGHUP) hangs up whichever process the test named, the runner's own.
        os.kill(pid, 0)  # pragma: no mutate
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


class Lease:
    """This process's leases, one per watched (function, table), held as `owner`."""

    def __init__(self, checkpoints: Checkpoints, clock: Clock, owner: str) -> None:
        self._checkpoints = checkpoints
        self._clock = clock
        self.owner = owner
        #: the seconds the store expires leases by, once known; None: ask the store each time
        self._store_seconds: Callable[[], float] | None = None
        self._known = False
        self._finding = asyncio.Lock()

    def _runtime_seconds(self) -> float:
        return self._clock.now().timestamp()

    async def _lease_seconds(self) -> Callable[[], float] | None:
        """The store's lease clock (found once, off the loop: the first open may block)."""
        if self._known:
            return self._store_seconds
        async with self._finding:  # once, not once per table watched
            if not self._known:
                try:
                    store = await asyncio.to_thread(self._checkpoints.open)
                except Exception:  # noqa: BLE001 - the acquire that follows reports it
                    return None
                found = getattr(store, "lease_clock", None)
                if callable(found):
                    self._store_seconds = found
                elif type(self._clock) is SystemClock:
                    self._store_seconds = self._runtime_seconds
                self._known = True
        return self._store_seconds

    async def hold(self, state: WatchState) -> bool:
        """True while this process holds the (function, table) lease; renews it when due."""
        ttl = state.lease_ttl
        seconds = await self._lease_seconds()
        if seconds is not None and state.lease_until - seconds() > ttl / 2:
            return True
        asked_at = seconds() if seconds is not None else 0.0
        acquired = await self._checkpoints.call(
            state, "acquire", state.key, self.owner, ttl, take_over=holder_is_dead
        )
        if not acquired:
            state.lease_until, state.cached = 0.0, None
            return False
        if seconds is None:
            # No clock to count on: every check asks the store, which alone decides. Whether
            # the lease was held without a break is unknown, so the checkpoint is read again.
            # Above 0 (held, to be released at the end) yet never far enough to be trusted.
            state.lease_until, state.cached = _HELD_UNTIL_ASKED, None
            return True
        if state.lease_until <= seconds():
            # The lease lapsed (or was never ours): someone may have moved the checkpoint.
            state.cached = None
        # The store computed its expiry after `asked_at`, so this is never later than the truth.
        state.lease_until = asked_at + ttl
        return True

    async def keep(self, state: WatchState) -> None:
        """Renew the lease while the function runs, however long it takes (until cancelled)."""
        while True:
            await asyncio.sleep(state.lease_ttl / 4)
            try:
                await self.hold(state)
            except Exception as exc:  # noqa: BLE001 - the save's compare-and-set still guards
                logger.warning("%s: cannot renew the lease: %s", state.function, exc)

    def release(self, states: list[WatchState]) -> None:
        """Give up these leases (blocking: on a worker thread), so a restarted process takes
        over at once instead of after the ttl."""
        for state in states:
            try:
                self._checkpoints.open().release(state.key, self.owner)
            except Exception as exc:  # noqa: BLE001 - the lease expires on its own anyway
                logger.warning("%s: cannot release the lease: %s", state.function, exc)
