"""HTTP throughput: a lakefn function against the same handler as a bare FastAPI route and as a
raw ASGI callable (read the body, json.loads, json.dumps, two sends): the server's own ceiling.

All of them run under the same uvicorn command (one worker, no access log), stay up for the whole
run, and are loaded by wrk on loopback back to back in a rotating order, round after round, so a
noisy neighbour's burst hits them alike. Journaling is on. The raw callable answers every path,
so its "sync" row is the same handler measured again. Targets: lakefn at least 0.97 of bare
FastAPI's requests/s; of the raw ASGI handler's, at least 0.6 (async) and 0.5 (sync). A fourth
server is lakefn with every successful call written to the state store
(`journal: {max_ok_per_second: null}`), shown for what that costs.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from _common import BIN, free_port, median, table, wait_ok

BARE_APP = """
from fastapi import FastAPI

app = FastAPI()


@app.get("/async")
async def handler_async():
    return {"ok": True}


@app.get("/sync")
def handler_sync():
    return {"ok": True}
"""

# The floor of any Python handler on this server: no framework, no routing, no bookkeeping.
RAW_APP = """
import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    json.loads(body or b"{}")
    answer = json.dumps({"ok": True}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(answer)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})
"""

LAKEFN_YAML = """
functions:
  - name: hello_async
    trigger: {type: http, method: GET, endpoint: /async}
  - name: hello_sync
    trigger: {type: http, method: GET, endpoint: /sync}
"""


def write_projects(root: Path) -> None:
    (root / "bare").mkdir()
    (root / "bare" / "bare_app.py").write_text(BARE_APP)
    (root / "raw").mkdir()
    (root / "raw" / "raw_app.py").write_text(RAW_APP)
    # lakefn as configured by default, and with every successful call written to the state
    # store too (by default, 100 a second per function are)
    for name, extra in (("lakefn", ""), ("lakefn_all", "journal: {max_ok_per_second: null}\n")):
        lf = root / name
        (lf / "functions").mkdir(parents=True)
        (lf / "app.yaml").write_text(LAKEFN_YAML + extra)
        (lf / "app.py").write_text("import lakefn\n\napp = lakefn.create_app()\n")
        (lf / "functions" / "hello_async_function.py").write_text(
            "async def main(event):\n    return {'ok': True}\n"
        )
        (lf / "functions" / "hello_sync_function.py").write_text(
            "def main(event):\n    return {'ok': True}\n"
        )


def run_wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} error responses\n{out}")
    assert match, out
    return float(match.group(1))


@contextlib.contextmanager
def serving(cwd: Path, module: str, probe: str) -> Iterator[str]:
    """The app under the bench's uvicorn command; yields its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [
            str(BIN / "uvicorn"),
            module,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=cwd,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ok(f"{base}/{probe}")
        yield base
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    paths = ["async", "sync"]
    runs: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        root = Path(tmp)
        write_projects(root)
        # All stay up; each round loads them back to back, path by path, in a rotating
        # order: a noisy neighbour's burst then lands on all of them alike.
        bases = {
            name: servers.enter_context(serving(root / name, module, paths[0]))
            for name, module in (
                ("raw", "raw_app:app"),
                ("bare", "bare_app:app"),
                ("lakefn", "app:app"),
                ("lakefn_all", "app:app"),
            )
        }
        for base in bases.values():
            for path in paths:
                run_wrk(f"{base}/{path}", 1, args.connections)  # warm-up
        names = list(bases)
        for round_ in range(args.rounds):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for path in paths:
                for name in order:
                    rps = run_wrk(f"{bases[name]}/{path}", args.seconds, args.connections)
                    runs.setdefault((name, path), []).append(rps)
    rows = []
    for path in ("async", "sync"):
        raw, bare, lake, every = (
            median(runs[(name, path)]) for name in ("raw", "bare", "lakefn", "lakefn_all")
        )
        rows.append(
            [
                path,
                f"{raw:,.0f}",
                f"{bare:,.0f}",
                f"{lake:,.0f}",
                f"{_median_ratio(runs, path, 'bare'):.3f}",
                f"{_median_ratio(runs, path, 'raw'):.3f}",
                f">= 0.97 / >= {RAW_TARGETS[path]}",
                f"{every:,.0f} ({_median_ratio(runs, path, 'raw', 'lakefn_all'):.3f})",
            ]
        )
    print(" ".join((__doc__ or "").strip().split("\n\n")[0].split()))
    print(
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} rounds, servers in "
        "rotating order, medians (a ratio is the median of the rounds' ratios)\n"
    )
    print(
        table(
            rows,
            [
                "handler",
                "raw ASGI req/s",
                "bare FastAPI req/s",
                "lakefn req/s",
                "lakefn/bare",
                "lakefn/raw",
                "target",
                "every call stored: req/s (/raw)",
            ],
        )
    )
    for (name, path), values in sorted(runs.items()):
        print(f"  {name:>6} {path:>5}: " + ", ".join(f"{v:,.0f}" for v in values))


#: lakefn's share of the raw ASGI handler's requests/s to reach
RAW_TARGETS = {"async": 0.6, "sync": 0.5}


def _median_ratio(
    runs: dict[tuple[str, str], list[float]], path: str, against: str, name: str = "lakefn"
) -> float:
    """`name`'s requests/s over `against`'s, round by round (same minute, same noise), median."""
    pairs = zip(runs[(name, path)], runs[(against, path)], strict=True)
    return median([lake / other for lake, other in pairs])


if __name__ == "__main__":
    main()
