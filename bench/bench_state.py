"""The state store's cost: PostgreSQL next to SQLite.

1. Per delivery, the watcher does one compare-and-set save of the checkpoint; while it holds a
   lease it renews it every half lease period (and a check that finds nothing new touches the
   store only then). Medians of each, on a local PostgreSQL (a throwaway cluster of Debian's
   postgresql, over TCP on loopback) and on a SQLite file (WAL, synchronous=FULL).
2. 1,000 watched local tables at check_interval 1 s under `lakefn serve` with PostgreSQL state:
   the process's CPU time over a window (a commit lands on a random table every second) and
   its RSS. Target (issue 10): at most 25% of one core and 300 MiB.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from _common import REPO, table
from bench_tables import many_rows, many_tables_project, measure_many

from lakefn.abc import CheckpointStore
from lakefn.checkpoints.selection import open_store

if TYPE_CHECKING:
    from tests._postgres import PostgresServer


def start_postgres() -> PostgresServer:
    """A throwaway cluster, durable as a real one (fsync and synchronous commit on)."""
    sys.path.insert(0, str(REPO))
    from tests._postgres import PostgresServer, _bin_dir

    root = Path(tempfile.mkdtemp(prefix="lakefn-bench-pg-"))
    shutil.chown(root, "postgres", "postgres")
    server = PostgresServer(root, _bin_dir(), durable=True)
    server.init()
    return server


def _median_ms(fn: Callable[[int], object], rounds: int) -> float:
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def store_costs(store: CheckpointStore, rounds: int) -> tuple[float, float, float]:
    store.save("warm", 0, expected=None)  # connect and create the schema first
    store.save("fn|main.bench.t", 0, expected=None)
    save = _median_ms(lambda i: store.save("fn|main.bench.t", i + 1, expected=i), rounds)
    renew = _median_ms(lambda i: store.acquire("fn|main.bench.t", "bench:1:x", 10.0), rounds)
    load = _median_ms(lambda i: store.load("fn|main.bench.t"), rounds)
    return save, renew, load


def bench_costs(work: Path, url: str, rounds: int) -> list[list[object]]:
    rows: list[list[object]] = []
    results = {}
    for name, state in (("SQLite", str(work / "costs.db")), ("PostgreSQL", url)):
        store = open_store(state, work)
        try:
            results[name] = store_costs(store, rounds)
        finally:
            store.close()
    for i, what in enumerate(("checkpoint save per delivery", "lease renewal", "checkpoint load")):
        rows.append(
            [
                f"{what} (median of {rounds})",
                f"SQLite {results['SQLite'][i]:.3f} ms",
                f"PostgreSQL {results['PostgreSQL'][i]:.3f} ms",
                "",
            ]
        )
    return rows


def bench_many(work: Path, url: str, count: int, window: float) -> list[list[object]]:
    app_yaml, catalog = many_tables_project(work / "many", count)
    app_yaml.write_text(app_yaml.read_text().replace("state: state.db", f'state: "{url}"'))
    result = measure_many(app_yaml, catalog, count, window, watching_within=300)
    return many_rows(f"{count:,} tables at 1 s, PostgreSQL state", window, result)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--tables", type=int, default=1000, help="watched tables in part 2")
    parser.add_argument("--no-many", action="store_true", help="skip part 2")
    args = parser.parse_args()
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="lakefn-bench-state-") as tmp:
        postgres = start_postgres()
        try:
            url = postgres.url(schema="bench")
            rows += bench_costs(Path(tmp), url, rounds=200 if args.quick else 2000)
            print(table(rows, ["measure", "SQLite", "PostgreSQL", ""]), file=sys.stderr)
            if not args.no_many:
                many_url = postgres.url(schema="bench_many")
                rows += bench_many(Path(tmp), many_url, args.tables, 10 if args.quick else 25)
        finally:
            try:
                postgres.stop()
            finally:
                shutil.rmtree(postgres.root, ignore_errors=True)
    print(textwrap.dedent(__doc__ or "").strip().splitlines()[0])
    print(table(rows, ["measure", "SQLite / result", "PostgreSQL / target", ""]))
    return 0 if all(row[3] in ("ok", "") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
