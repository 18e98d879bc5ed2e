"""Checkpoints in a dict: the default for tests and one-off runs; gone when the process ends.

It is the one to copy for a new store: the CheckpointStore methods, and `from_state`, by which
app.yaml's `state:` builds a store once it is registered (`register_store` in `selection.py`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from .._exceptions import CheckpointConflict
from ..abc import CheckpointStore


class MemoryCheckpointStore(CheckpointStore):
    """Same semantics as `SQLiteCheckpointStore`, shared by the threads of one process.

    `clock` gives lease expiry times in seconds (wall clock by default), so tests can expire a
    lease without sleeping.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._versions: dict[str, int] = {}
        self._table_ids: dict[str, str] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_state(
        cls, state: str, project_root: Path, *, clock: Callable[[], float] = time.time
    ) -> MemoryCheckpointStore:
        """The store for app.yaml's `state:` (its URL says nothing more here); `clock` is
        the seconds leases expire by: the runtime hands in its own."""
        return cls(clock=clock)

    @property
    def lease_clock(self) -> Callable[[], float]:
        """The seconds this store expires leases by: the watcher counts its lease down on it."""
        return self._clock

    def load(self, key: str) -> int | None:
        with self._lock:
            return self._versions.get(key)

    def save(self, key: str, version: int, *, expected: int | None) -> None:
        with self._lock:
            found = self._versions.get(key)
            if found != expected:
                raise CheckpointConflict(key, expected, found)
            self._versions[key] = version

    def load_table_id(self, key: str) -> str | None:
        with self._lock:
            return self._table_ids.get(key)

    def save_table_id(self, key: str, table_id: str) -> None:
        with self._lock:
            self._table_ids[key] = table_id

    def acquire(
        self, key: str, owner: str, ttl: float, *, take_over: Callable[[str], bool] | None = None
    ) -> bool:
        with self._lock:
            now = self._clock()
            holder = self._leases.get(key)
            held = holder is not None and holder[0] != owner and holder[1] > now
            if held and not (take_over is not None and take_over(holder[0])):  # type: ignore[index]
                return False
            self._leases[key] = (owner, now + ttl)
            return True

    def release(self, key: str, owner: str) -> None:
        with self._lock:
            holder = self._leases.get(key)
            if holder is not None and holder[0] == owner:
                del self._leases[key]

    def items(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._versions.items()))
