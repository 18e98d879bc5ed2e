"""Start-up costs: `import lakefn`, and `lakefn serve` to the first 200 on /healthz.

Baselines in the same run: `import fastapi` (what any FastAPI app pays) and a bare FastAPI app
under `uvicorn` to its first 200. Targets: import lakefn at most 150 ms with no deltalake,
pyarrow, pandas, IPython, ipywidgets or databricks loaded; serve to first 200 at most 1 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BIN, REPO, free_port, median, table, wait_ok

HEAVY = ["deltalake", "pyarrow", "pandas", "IPython", "ipywidgets", "databricks", "pyspark"]
PROBE = """
import sys, time, json
t = time.perf_counter()
import {module}
ms = (time.perf_counter() - t) * 1000
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))
print(json.dumps([ms, heavy]))
"""


def import_ms(module: str) -> tuple[float, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    ms, heavy = json.loads(out)
    return ms, heavy


def serve_ms(command: list[str], cwd: Path, port: int) -> float:
    start = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_ok(f"http://127.0.0.1:{port}/healthz", interval=0.002)
        return (time.perf_counter() - start) * 1000
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    lakefn_import, fastapi_import, heavy_seen = [], [], set()
    for _ in range(args.runs):
        ms, heavy = import_ms("lakefn")
        lakefn_import.append(ms)
        heavy_seen.update(heavy)
        fastapi_import.append(import_ms("fastapi")[0])
    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp)
        (bare / "bare_app.py").write_text(
            "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get('/healthz')\nasync def h():\n    return {}\n"
        )
        lakefn_serve, bare_serve = [], []
        for _ in range(args.runs):
            port = free_port()
            lakefn_serve.append(
                serve_ms([str(BIN / "lakefn"), "serve", "--port", str(port)], REPO, port)
            )
            port = free_port()
            bare_serve.append(
                serve_ms([str(BIN / "uvicorn"), "bare_app:app", "--port", str(port)], bare, port)
            )
    print((__doc__ or "").strip().splitlines()[0])
    print(f"{args.runs} runs each, alternating; medians\n")
    rows = [
        [
            "import lakefn",
            f"{median(lakefn_import):.0f} ms",
            f"import fastapi: {median(fastapi_import):.0f} ms",
            "<= 150 ms",
        ],
        ["heavy modules at import", ", ".join(sorted(heavy_seen)) or "none", "", "none"],
        [
            "lakefn serve -> first 200",
            f"{median(lakefn_serve):.0f} ms",
            f"bare uvicorn: {median(bare_serve):.0f} ms",
            "<= 1000 ms",
        ],
    ]
    print(table(rows, ["what", "lakefn", "baseline", "target"]))


if __name__ == "__main__":
    main()
