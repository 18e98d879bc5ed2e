"""Notebook benchmarks: `%lakefn serve` to the first 200 on /healthz, `%lakefn stop`, and
`%lakefn reload NAME`, run through the magics in a real IPython shell on the sample project.

    .venv/bin/python bench/bench_notebook.py [--runs 20]

Prints medians (and the slowest run) next to the targets; exits 1 if a median misses one.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"serve -> first 200 on /healthz": 0.3, "stop": 0.5, "reload one function": 0.05}


def sample_project(work: Path) -> Path:
    """A copy of the sample project with its own state and catalog, so nothing is littered."""
    from lakefn._tables_cli import sample_customers
    from lakefn.sources.local import create_table

    os.environ["LAKEFN_STATE"] = str(work / "state.db")
    os.environ["LAKEFN_LOCAL_ROOT"] = str(work / "catalog")
    create_table(work / "catalog", "_data.tpch.dim_customer", sample_customers())
    project = work / "project"
    project.mkdir()
    shutil.copy(REPO / "app.yaml", project / "app.yaml")
    shutil.copytree(REPO / "functions", project / "functions")
    return project / "app.yaml"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs

    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    assert ip is not None
    ip.run_line_magic("load_ext", "lakefn")
    with tempfile.TemporaryDirectory(prefix="lakefn-bench-") as tmp:
        ip.run_line_magic("lakefn", f"load {sample_project(Path(tmp))}")
        client = httpx.Client()

        def serve_until_healthy() -> None:
            status = ip.run_line_magic("lakefn", "serve --port 0")
            assert client.get(status.local_url + "healthz").status_code == 200

        cold = timed(serve_until_healthy)  # imports uvicorn and FastAPI once
        ip.run_line_magic("lakefn", "stop")
        samples: dict[str, list[float]] = {name: [] for name in TARGETS}
        for _ in range(runs):
            samples["serve -> first 200 on /healthz"].append(timed(serve_until_healthy))
            with contextlib.redirect_stdout(io.StringIO()):  # "lakefn: reloaded ..." each time
                samples["reload one function"].append(
                    timed(lambda: ip.run_line_magic("lakefn", "reload example_http"))
                )
            samples["stop"].append(timed(lambda: ip.run_line_magic("lakefn", "stop")))
        client.close()
        ip.run_line_magic("unload_ext", "lakefn")

    print(f"lakefn notebook benchmarks: {runs} runs, Python {sys.version.split()[0]}")
    print(f"{'':34}{'median':>10}{'slowest':>10}{'target':>10}")
    missed = False
    for name, target in TARGETS.items():
        median, slowest = statistics.median(samples[name]), max(samples[name])
        ok = median <= target
        missed |= not ok
        print(
            f"{name:<34}{_ms(median):>10}{_ms(slowest):>10}{_ms(target):>10}  {'ok' if ok else 'MISSED'}"
        )
    print(f"{'(first serve, cold imports)':<34}{_ms(cold):>10}")
    return 1 if missed else 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


if __name__ == "__main__":
    sys.exit(main())
