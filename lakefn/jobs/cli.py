"""The `lakefn run` and `lakefn bundle` subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any


def add_job_parsers(sub: Any, app_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "run",
        help="run a timer or table function once, as its Databricks Job does",
        description="Run a timer or unity_table function once, as its job does: deliver every "
        "new commit after the checkpoint (or make one timer call) and save the checkpoint. "
        "Exit 0, or 1 when the function failed after its retries.",
    )
    p.add_argument("name")
    p.add_argument(
        "--scheduled-time",
        metavar="ISO",
        help="a timer's scheduled time (default: now), e.g. 2026-03-01T02:30:00Z",
    )
    p.add_argument(
        "--lease-wait",
        type=float,
        default=None,
        metavar="S",
        help="seconds to wait while another run holds the table's lease (default 300)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--state",
        metavar="STATE",
        help="the state store for this run, as app.yaml's `state:` (default: app.yaml's, or "
        "LAKEFN_STATE); a job gets lakebase?instance=NAME&database=DB from `lakefn bundle`",
    )
    app_arg(p)
    p.set_defaults(run=_run)

    p = sub.add_parser(
        "bundle",
        help="write a Databricks Asset Bundle: the App and a job per run_on: job function",
    )
    app_arg(p)
    p.add_argument("--out", "-o", help="bundle folder (default: <project>/bundle)")
    p.add_argument("--name", help="bundle name (default: the project folder's name)")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file the bundle would write differs",
    )
    p.add_argument(
        "--no-wheel",
        action="store_true",
        help="reference lakefn by version (from your package index) instead of shipping its wheel",
    )
    p.set_defaults(run=_bundle)


def _run(args: argparse.Namespace) -> int:
    from ..project import load_project
    from ..runtime import Runtime
    from .run import DEFAULT_LEASE_WAIT, parse_time, run_function

    scheduled = parse_time(args.scheduled_time) if args.scheduled_time else None
    wait = DEFAULT_LEASE_WAIT if args.lease_wait is None else max(0.0, args.lease_wait)
    project = load_project(args.app)
    if args.state:
        from ..checkpoints.selection import open_store

        runtime = Runtime(project, checkpoints=open_store(args.state, project.root))
    else:
        runtime = Runtime(project)
    try:
        report = runtime.run_sync(
            run_function(runtime, args.name, scheduled_time=scheduled, lease_wait=wait)
        )
    finally:
        runtime.close()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, default=str))
    else:
        stream = sys.stdout if report.ok else sys.stderr
        for line in report.lines():
            print(line, file=stream)
    return 0 if report.ok else 1


def _bundle(args: argparse.Namespace) -> int:
    from .bundle import write_bundle

    result = write_bundle(
        args.app, out=args.out, name=args.name, check=args.check, wheel=not args.no_wheel
    )
    for line in result.lines():
        print(line, file=sys.stderr if result.stale and args.check else sys.stdout)
    return 1 if result.stale and args.check else 0
