"""Callbacks that other threads add and remove while one thread calls them: the list is
replaced, never changed in place, so a call in progress neither waits for a lock nor sees a
half-made change, and one broken callback never stops the others or the caller."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


def _ignore(exc: BaseException) -> None:
    return None


class Listeners(Generic[T]):
    def __init__(self, on_error: Callable[[BaseException], None] = _ignore) -> None:
        self._each: tuple[Callable[[T], None], ...] = ()
        self._lock = threading.Lock()  # two adds at once must not lose one
        self._on_error = on_error

    def add(self, listener: Callable[[T], None]) -> Callable[[], None]:
        """Call `listener` with everything notified from now on; returns its removal."""
        with self._lock:
            self._each = (*self._each, listener)

        def remove() -> None:
            with self._lock:
                self._each = tuple(x for x in self._each if x is not listener)

        return remove

    def notify(self, value: T) -> None:
        for listener in self._each:
            try:
                listener(value)
            except Exception as exc:  # noqa: BLE001 - the caller's work must not fail for it
                self._on_error(exc)

    def clear(self) -> None:
        with self._lock:
            self._each = ()
