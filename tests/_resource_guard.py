"""Fail the test module that leaves a connection, socket or file for the garbage collector.

Something left open inside a reference cycle (a `Runtime` and its timers hold each other) is
freed only when the collector next runs: its ResourceWarning (Python 3.13 adds one for SQLite
connections) would then fail whichever test happens to be running, a different one each run.
A full collection after each test module puts the failure where the leak is. After each
module, not each test: one collection costs tens of milliseconds on this suite's heap.
Set PYTHONTRACEMALLOC=25 to see where the leaked object was made.
"""

from __future__ import annotations

import gc
import tracemalloc
import warnings
from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_teardown(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, None, None]:
    result = yield
    if nextitem is not None and nextitem.path == item.path:
        return result
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    if leaks:
        pytest.fail(
            f"{item.path.name} left {len(leaks)} thing(s) for the garbage collector to close:\n"
            + "\n".join(_describe(w) for w in leaks),
            pytrace=False,
        )
    return result


def _describe(leak: warnings.WarningMessage) -> str:
    where = tracemalloc.get_object_traceback(leak.source) if leak.source is not None else None
    if where is None:
        return f"  {leak.message} (PYTHONTRACEMALLOC=25 shows where it was opened)"
    return f"  {leak.message}, opened at:\n" + "\n".join(where.format(limit=25))
