"""History reads of the Databricks sources: rows read and queries sent, before and after.

A Databricks warehouse or cluster is billed by the work DESCRIBE HISTORY does, and that work is
the commit files it reads: one per row it returns (Spark without LIMIT reads them all). The
doubles of tests/fakes count those rows and the statements sent. Each source runs the watcher's
sequence (latest_version, then, when there is news, table_id - one DESCRIBE DETAIL, no history
row; the code before had none - and commits_since(last, 1,000)) on:

1. an idle check of a 10,000-commit table,
2. a check that finds 1 new commit, and one that finds 10,
3. a 20,000-commit backlog drained in batches of 1,000, and the same backlog with a commit
   landing between every two queries while it drains (50 more; the versions a source
   skipped are counted as lost).

"before" is the code of commit BEFORE (loaded from git), "after" the working tree's.
Target: draining a backlog reads at most 2x its length; no version lost.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from _common import REPO, table

sys.path.insert(0, str(REPO))

from lakefn import TableName  # noqa: E402
from lakefn.abc import TableSource  # noqa: E402
from lakefn.watching import MAX_BATCH  # noqa: E402
from tests.fakes.catalog import FakeCatalog, FakeTable  # noqa: E402
from tests.fakes.databricks_sql import FakeWarehouse  # noqa: E402
from tests.fakes.spark import SparkSession  # noqa: E402

#: main before the sources read history through HistoryWindow
BEFORE = "7eb2d01"
TABLE = TableName.parse("main.bench.orders")


class SdkConfig:
    host = "https://example.cloud.databricks.com"

    def authenticate(self) -> dict[str, str]:
        return {"Authorization": "Bearer dapi-bench"}


def old_module(path: str) -> ModuleType:
    """A module of lakefn as it was at BEFORE, imported inside the current package."""
    text = subprocess.run(
        ["git", "show", f"{BEFORE}:{path}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    package, _, name = path.removesuffix(".py").replace("/", ".").rpartition(".")
    spec = importlib.util.spec_from_loader(f"{package}._before_{name}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = package
    exec(compile(text, f"{BEFORE}:{path}", "exec"), module.__dict__)  # noqa: S102
    return module


Double = FakeWarehouse | SparkSession
Maker = Callable[[FakeCatalog], tuple[TableSource, Double]]


def makers() -> dict[tuple[str, str], Maker]:
    from lakefn.sources.spark import SparkSource
    from lakefn.sources.warehouse import WarehouseSource

    old_warehouse = old_module("lakefn/sources/warehouse.py").WarehouseSource
    old_spark = old_module("lakefn/sources/spark.py").SparkSource

    def warehouse(cls: Any) -> Maker:
        def make(catalog: FakeCatalog) -> tuple[TableSource, Double]:
            double = FakeWarehouse(catalog)
            return cls("/sql/1.0/warehouses/b", config=SdkConfig(), connect=double.connect), double

        return make

    def spark(cls: Any) -> Maker:
        def make(catalog: FakeCatalog) -> tuple[TableSource, Double]:
            double = SparkSession(catalog, version="3.5")
            return cls(double), double

        return make

    return {
        ("warehouse", "before"): warehouse(old_warehouse),
        ("warehouse", "after"): warehouse(WarehouseSource),
        ("spark", "before"): spark(old_spark),
        ("spark", "after"): spark(SparkSource),
    }


def history(commits: int) -> tuple[FakeCatalog, FakeTable]:
    catalog = FakeCatalog()
    fake = catalog.add(TABLE.parts)
    for _ in range(commits):
        fake.commit("WRITE", metrics={"numOutputRows": 1})
    return catalog, fake


def check(source: TableSource, last: int) -> list[int]:
    """One watcher check after `last`: the versions it would hand over."""
    if source.latest_version(TABLE) <= last:
        return []
    source.table_id(TABLE)  # news: the watcher reads the table's identity (one DESCRIBE DETAIL)
    return [c.version for c in source.commits_since(TABLE, last, MAX_BATCH)]


def measure(make: Maker, commits: int, last: int) -> tuple[int, int]:
    catalog, _ = history(commits)
    source, double = make(catalog)
    check(source, last)
    return double.history_rows, len(double.queries)


def drain(make: Maker, backlog: int, landing: bool) -> tuple[int, int, int, float]:
    """Rows, queries and versions lost draining `backlog` commits check after check."""
    catalog, fake = history(backlog)
    source, double = make(catalog)
    if landing:
        # A commit between every two queries while the backlog drains (one per 400 versions).
        grown = backlog + backlog // 400
        double.after_query = lambda _: fake.commit() if len(fake.history) < grown else None
    started = time.perf_counter()
    seen: list[int] = []
    last = -1
    while got := check(source, last):
        seen += got
        last = got[-1]
    elapsed = time.perf_counter() - started
    lost = len(set(range(len(fake.history))) - set(seen))
    return double.history_rows, len(double.queries), lost, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=20_000)
    args = parser.parse_args()
    rows: list[list[object]] = []
    for (name, when), make in makers().items():
        idle = measure(make, 10_000, last=9_999)
        one = measure(make, 10_000, last=9_998)
        ten = measure(make, 10_000, last=9_989)
        drained = drain(make, args.backlog, landing=False)
        landed = drain(make, args.backlog, landing=True)
        print(f"  {name} {when}: done", file=sys.stderr, flush=True)
        rows.append(
            [
                name,
                when,
                f"{idle[0]} / {idle[1]}",
                f"{one[0]} / {one[1]}",
                f"{ten[0]} / {ten[1]}",
                f"{drained[0]} ({drained[0] / args.backlog:.2f}x) / {drained[1]}",
                f"{drained[3]:.1f}",
                f"{landed[0]} ({landed[0] / args.backlog:.2f}x) / {landed[1]}",
                landed[2],
            ]
        )
    header = [
        "source",
        "code",
        "idle check rows/queries",
        "1 new",
        "10 new",
        f"drain {args.backlog:,}: rows / queries",
        "s",
        "drain, commits landing",
        "lost",
    ]
    print(table(rows, header))
    print("\nrows: DESCRIBE HISTORY rows returned (= commit files read); queries: statements sent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
