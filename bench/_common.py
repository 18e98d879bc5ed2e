"""Shared bits of the benchmarks: free ports, waiting for a server, medians, tables."""

from __future__ import annotations

import socket
import statistics
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ok(url: str, timeout: float = 20.0, interval: float = 0.002) -> float:
    """Poll until `url` answers 200; return the time it took."""
    start = time.perf_counter()
    deadline = start + timeout
    with httpx.Client(timeout=1) as client:
        while True:
            try:
                if client.get(url).status_code == 200:
                    return time.perf_counter() - start
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout} s")
            time.sleep(interval)


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(rows: list[list[object]], header: list[str]) -> str:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
