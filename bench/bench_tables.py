"""unity_table triggers on local Delta tables: how soon, how cheap, how many.

1. Commit to function start at check_interval 0.5 s and 0.1 s: a real append (deltalake), then
   the time until the function's first line runs, measured from just after the append returns
   and from the commit's own timestamp. Appends land evenly over the check cycle.
   Target: p50 at most interval/2 + 30 ms.
2. One check's cost on tables with 1, 1,000 and 10,000 commits: a check that finds nothing new,
   and one that finds a commit and hands it to a no-op function. Target: within 2x of each other.
   Long tables are made quickly by writing commit files in the format deltalake writes, each
   adding a hard link of one real data file, so they stay valid Delta tables.
3. 1,000 watched local tables at check_interval 1 s under `lakefn serve`: the process's CPU time
   over a window (a commit lands on a random table every second meanwhile) and its RSS.
   Target: at most 25% of one core and 300 MiB.

Databricks Jobs' table-update trigger, for reference, checks at most once a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import psutil
from _common import BIN, free_port, table, wait_ok

from lakefn.journal import Invocation
from lakefn.runtime import Runtime
from lakefn.sources.local import append, create_table, path_for

TABLE = "main.bench.events"

TIMESTAMPS = """\
import time

def main(event):
    return {"started": time.time(), "committed": event.commits[-1].timestamp.timestamp()}
"""


def write_project(root: Path, functions: dict[str, str], interval: float, code: str) -> Path:
    """A project watching `functions` (name -> table) with one module per function."""
    (root / "functions").mkdir(parents=True, exist_ok=True)
    lines = ["tables: {local_root: catalog, source: local}", "state: state.db", "functions:"]
    for name, table_name in functions.items():
        lines += [
            f"  - name: {name}",
            f"    trigger: {{type: unity_table, check_interval: {interval}}}",
            f"    table_name: {table_name}",
        ]
        (root / "functions" / f"{name}_function.py").write_text(code)
    (root / "app.yaml").write_text("\n".join(lines) + "\n")
    return root / "app.yaml"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- 1. latency ------------------------------------------------------------------------------


async def _latencies(
    app_yaml: Path, catalog: Path, interval: float, samples: int
) -> dict[str, list[float]]:
    runtime = Runtime.from_path(app_yaml)
    results: asyncio.Queue[Invocation] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    runtime.journal.subscribe(lambda inv: loop.call_soon_threadsafe(results.put_nowait, inv))
    await runtime.start()
    from_return, from_commit = [], []
    try:
        await asyncio.sleep(interval * 2)  # the first check records where to start
        # Evenly spread over the check cycle (in random order): the median of a uniform
        # arrival, without the noise of drawing the arrival times at random.
        offsets = [(i + 0.5) / samples * interval for i in range(samples)]
        random.shuffle(offsets)
        for i, offset in enumerate(offsets):
            await asyncio.sleep(offset)
            returned = await asyncio.to_thread(_append_and_time, catalog, i)
            invocation = await asyncio.wait_for(results.get(), 10)
            assert invocation.ok, invocation.error
            from_return.append(invocation.result["started"] - returned)
            from_commit.append(invocation.result["started"] - invocation.result["committed"])
    finally:
        await runtime.stop()
        runtime.close()
    return {"return": from_return, "commit": from_commit}


def _append_and_time(catalog: Path, i: int) -> float:
    append(catalog, TABLE, [{"id": i}])
    return time.time()


def bench_latency(work: Path, interval: float, samples: int) -> list[object]:
    root = work / f"latency-{interval}"
    app_yaml = write_project(root, {"on_commit": TABLE}, interval, TIMESTAMPS)
    create_table(root / "catalog", TABLE, [{"id": -1}])
    found = asyncio.run(_latencies(app_yaml, root / "catalog", interval, samples))
    ms = {k: [v * 1000 for v in values] for k, values in found.items()}
    target = interval * 1000 / 2 + 30
    p50 = statistics.median(ms["return"])
    return [
        f"commit -> start, interval {interval:g} s (n={samples})",
        f"p50 {p50:.0f} ms, p99 {percentile(ms['return'], 0.99):.0f} ms "
        f"(from commit timestamp: p50 {statistics.median(ms['commit']):.0f} ms)",
        f"p50 <= {target:.0f} ms",
        "ok" if p50 <= target else "MISSED",
    ]


# -- 2. check cost by history length ---------------------------------------------------------


def synthesize_commits(table_path: Path, count: int) -> None:
    """Add `count` commits the way deltalake writes an append, each adding a hard link of the
    table's first data file (so the table stays readable), without running a writer per commit."""
    log = table_path / "_delta_log"
    latest = max(int(p.stem) for p in log.glob("*.json"))
    data = next(table_path.glob("*.parquet"))
    size = data.stat().st_size
    for version in range(latest + 1, latest + 1 + count):
        name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
        os.link(data, table_path / name)
        now = int(time.time() * 1000)
        info = {
            "timestamp": now,
            "operation": "WRITE",
            "operationParameters": {"mode": "Append"},
            "engineInfo": "delta-rs:py-1.6.6",
            "operationMetrics": {"num_added_files": 1, "num_added_rows": 1},
            "clientVersion": "delta-rs.py-1.6.6",
        }
        add = {
            "path": name,
            "partitionValues": {},
            "size": size,
            "modificationTime": now,
            "dataChange": True,
            "stats": None,
        }
        lines = json.dumps({"commitInfo": info}) + "\n" + json.dumps({"add": add}) + "\n"
        with (log / f"{version:020d}.json").open("x") as out:  # put-if-absent, as a writer does
            out.write(lines)


async def _check_costs(app_yaml: Path, table_path: Path, rounds: int) -> tuple[float, float]:
    runtime = Runtime.from_path(app_yaml)
    try:
        await runtime.watcher.check("reader")  # first look: records the version, opens handles
        idle = []
        for _ in range(rounds):
            start = time.perf_counter()
            await runtime.watcher.check("reader")
            idle.append(time.perf_counter() - start)
        busy = []
        for _ in range(max(10, rounds // 10)):
            synthesize_commits(table_path, 1)
            start = time.perf_counter()
            invocation = await runtime.watcher.check("reader")
            busy.append(time.perf_counter() - start)
            assert invocation is not None and invocation.ok
        return statistics.median(idle), statistics.median(busy)
    finally:
        runtime.close()


def bench_check_cost(work: Path, sizes: list[int], rounds: int) -> list[list[object]]:
    measured = {}
    for commits in sizes:
        root = work / f"history-{commits}"
        app_yaml = write_project(root, {"reader": TABLE}, 1, "def main(event):\n    pass\n")
        create_table(root / "catalog", TABLE, [{"id": 0}])
        synthesize_commits(path_for(root / "catalog", TABLE), commits - 1)
        measured[commits] = asyncio.run(
            _check_costs(app_yaml, path_for(root / "catalog", TABLE), rounds)
        )
    rows: list[list[object]] = []
    for i, label in enumerate(("nothing new", "one new commit, delivered")):
        values = [measured[n][i] for n in sizes]
        spread = max(values) / min(values)
        rows.append(
            [
                f"one check, {label}",
                ", ".join(
                    f"{n:,} commits {v * 1000:.2f} ms" for n, v in zip(sizes, values, strict=True)
                ),
                "within 2x",
                f"{spread:.2f}x " + ("ok" if spread <= 2 else "MISSED"),
            ]
        )
    return rows


# -- 3. a thousand tables ----------------------------------------------------------------------


def bench_many(work: Path, count: int, window: float) -> list[list[object]]:
    app_yaml, catalog = many_tables_project(work / "many", count)
    result = measure_many(app_yaml, catalog, count, window)
    return many_rows(f"{count:,} tables at 1 s", window, result)


def many_tables_project(root: Path, count: int) -> tuple[Path, Path]:
    """`count` local tables, a function watching each every second: (app.yaml, catalog)."""
    catalog = root / "catalog"
    create_table(catalog, "main.t.t0", [{"id": 0}])
    names = {f"f{i}": f"main.t.t{i}" for i in range(count)}
    for i in range(1, count):
        shutil.copytree(path_for(catalog, "main.t.t0"), path_for(catalog, f"main.t.t{i}"))
    return write_project(root, names, 1, "def main(event):\n    pass\n"), catalog


@dataclasses.dataclass
class ManyResult:
    cpu: float  # share of one core over the window
    rss: float  # MiB at the end
    ready: float  # seconds from start until every table was watched
    commits: int
    delivered: int  # successful invocations


def measure_many(
    app_yaml: Path, catalog: Path, count: int, window: float, watching_within: float = 120
) -> ManyResult:
    """`lakefn serve` on the project, once every table is watched: a commit to a random one
    each second for `window` seconds, the server's CPU and RSS meanwhile."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "LAKEFN_"))}
    log = (app_yaml.parent / "serve.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "lakefn"), "serve", "--app", str(app_yaml), "--port", str(port)]
        + ["--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        wait_ok(f"{url}/healthz", timeout=60)
        _wait_all_watching(url, count, watching_within)
        ready = time.perf_counter() - started
        process = psutil.Process(server.pid)
        before, wall = process.cpu_times(), time.perf_counter()
        commits = 0
        while time.perf_counter() - wall < window:
            time.sleep(1)
            synthesize_commits(path_for(catalog, f"main.t.t{random.randrange(count)}"), 1)
            commits += 1
        after = process.cpu_times()
        cpu = (after.user + after.system - before.user - before.system) / (
            time.perf_counter() - wall
        )
        rss = process.memory_info().rss / 2**20
        calls = httpx.get(f"{url}/lakefn/invocations?limit=10000", timeout=10).json()
        delivered = sum(1 for c in calls if c["status"] == "ok")
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    return ManyResult(cpu, rss, ready, commits, delivered)


def many_rows(label: str, window: float, result: ManyResult) -> list[list[object]]:
    r = result
    return [
        [
            f"{label}: CPU ({window:g} s window, {r.commits} commits, {r.delivered} calls)",
            f"{r.cpu * 100:.1f}% of one core (watching after {r.ready:.1f} s)",
            "<= 25%",
            "ok" if r.cpu <= 0.25 else "MISSED",
        ],
        [f"{label}: RSS", f"{r.rss:.0f} MiB", "<= 300 MiB", "ok" if r.rss <= 300 else "MISSED"],
    ]


def _wait_all_watching(url: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tables = httpx.get(f"{url}/lakefn/tables", timeout=10).json()
        if sum(t["last_processed_version"] is not None for t in tables) == count:
            return
        time.sleep(0.5)
    raise TimeoutError(f"not all {count} tables were being watched after {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run)")
    parser.add_argument("--tables", type=int, default=1000, help="watched tables in part 3")
    args = parser.parse_args()
    samples = 12 if args.quick else 40
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="lakefn-bench-") as tmp:
        work = Path(tmp)
        for interval in (0.5, 0.1):
            rows.append(bench_latency(work, interval, samples if interval == 0.5 else samples * 2))
            print(table(rows[-1:], ["measure", "result", "target", ""]), file=sys.stderr)
        rows += bench_check_cost(work, [1, 1_000, 10_000], rounds=50 if args.quick else 300)
        rows += bench_many(work, args.tables, window=10 if args.quick else 25)
    rows.append(
        ["Databricks Jobs table-update trigger", "checks at most every 60 s", "(reference)", ""]
    )
    print(textwrap.dedent(__doc__ or "").strip().splitlines()[0])
    print(table(rows, ["measure", "result", "target", ""]))
    return 0 if all(row[3] in ("ok", "") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
