"""A watchdog for the server's event loop.

An `async def main` that calls blocking code (time.sleep, requests, a JDBC query) stops the
whole loop: every HTTP route, timer and table watcher waits, and so does shutdown. Nothing
inside the loop can notice, so a small thread pings it and says so, once per episode.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

logger = logging.getLogger("lakefn")

#: seconds the loop may go without answering before the warning
BLOCKED_AFTER = 1.0


class LoopWatchdog:
    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float = BLOCKED_AFTER) -> None:
        self.loop = loop
        self.threshold = threshold
        self.episodes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lakefn-loop-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            answered = threading.Event()
            asked = time.monotonic()
            try:
                self.loop.call_soon_threadsafe(answered.set)
            except RuntimeError:
                return  # the loop is closed
            if answered.wait(self.threshold) or self._stop.is_set():
                self._stop.wait(self.threshold / 2)
                continue
            self.episodes += 1
            logger.warning(
                "the server's event loop has been blocked for over %.1f s: an `async def main` "
                "is probably calling blocking code (time.sleep, a sync client); make it a plain "
                "`def main` (it then runs on a worker thread) or await an async equivalent. "
                "HTTP routes, timers, table watchers and shutdown all wait meanwhile.",
                self.threshold,
            )
            answered.wait()  # the episode ends when the loop answers again
            logger.info("the event loop answered again after %.1f s", time.monotonic() - asked)
