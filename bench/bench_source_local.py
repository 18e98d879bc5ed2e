"""LocalDeltaSource.latest_version: the cost of one check by history length.

The tests count what a check does (file look-ups, listings, reads: tests/test_source_local.py);
this measures what that costs in time. A table with 1, 1,000 and 10,000 commits; for each, the
fastest of N checks that find nothing new (the fastest, so other load on the machine counts
least). Target: a check on 10,000 commits at most 2x one on a single commit, plus 50 µs.
Was a test until it failed on a loaded machine: a time is a benchmark's figure, not a test's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import table

from lakefn import TableName
from lakefn.sources.local import LocalDeltaSource, create_table, path_for

HISTORIES = (1, 1_000, 10_000)


def write_bare_commits(root: Path, table_name: TableName, first: int, count: int) -> None:
    """Commits holding only commitInfo, as fast as files can be written: long histories."""
    log = path_for(root, table_name) / "_delta_log"
    for version in range(first, first + count):
        info = {"timestamp": 1_700_000_000_000 + version, "operation": "SET TBLPROPERTIES"}
        (log / f"{version:020d}.json").write_text(json.dumps({"commitInfo": info}) + "\n")


def fastest_check(root: Path, history: int, rounds: int) -> float:
    table_name = TableName("main", "bench", f"h{history}")
    create_table(root, table_name, [{"id": 0}])
    write_bare_commits(root, table_name, 1, history - 1)
    source = LocalDeltaSource(root)
    try:
        assert source.latest_version(table_name) == history - 1  # the first look may list
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            source.latest_version(table_name)
            best = min(best, time.perf_counter() - started)
        return best
    finally:
        source.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=300, help="checks per history length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lakefn-bench-") as tmp:
        best = {n: fastest_check(Path(tmp), n, args.rounds) for n in HISTORIES}
    limit = 2 * best[1] + 50e-6
    rows: list[list[object]] = []
    for n in HISTORIES:
        verdict = "" if n == 1 else ("ok" if best[n] <= limit else "MISSED")
        target = "(baseline)" if n == 1 else f"<= {limit * 1e6:.0f} µs"
        rows.append([f"check, {n:,} commits", f"{best[n] * 1e6:.1f} µs", target, verdict])
    print((__doc__ or "").strip().splitlines()[0])
    print(table(rows, ["measure", "fastest", "target", ""]))
    return 0 if all(row[3] in ("ok", "") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
