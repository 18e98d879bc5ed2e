"""`lakefn checkpoints [set]` and `lakefn logs`: the state store, as an operator sees it.

Both open the store that app.yaml's `state:` (or LAKEFN_STATE) names, so they read and change
what a deployed App uses when pointed at the same PostgreSQL or Lakebase database.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from ._exceptions import BadCount, NoJournal


def add_state_parsers(sub: Any, app_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    cp = sub.add_parser(
        "checkpoints", help="list table checkpoints and leases; rewind or skip ahead"
    )
    app_arg(cp)
    cp.add_argument("--json", action="store_true", help="print JSON")
    cp.set_defaults(run=_list)
    csub = cp.add_subparsers(dest="checkpoints_command", metavar="ACTION")
    p = csub.add_parser(
        "set",
        help="set a function's checkpoint: delivery resumes after VERSION",
        description="Set FUNCTION's checkpoint (the last version handed over) to VERSION: "
        "the next delivery starts at VERSION + 1. Lower to reprocess, higher to skip; "
        "-1 redelivers from version 0.",
    )
    p.add_argument("function")
    p.add_argument("version", type=_checkpoint_version)
    p.add_argument("--table", help="the table (default: the function's own)")
    p.add_argument(
        "--force",
        action="store_true",
        help="even while a live process delivers the table (it resumes from the new value)",
    )
    app_arg(p)
    p.set_defaults(run=_set)

    p = sub.add_parser("logs", help="the invocation journal, from the state store")
    p.add_argument("-n", type=int, default=20, help="how many, newest last (default 20)")
    p.add_argument("--function", "-f", help="only this function's")
    p.add_argument("--json", action="store_true", help="print JSON, one object a line")
    app_arg(p)
    p.set_defaults(run=_logs)


def _checkpoint_version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a version is a whole number, not {text!r}") from None
    if value < -1:
        raise argparse.ArgumentTypeError("a checkpoint is -1 (before version 0) or more")
    return value


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from .checkpoints.selection import open_project_store
    from .project import load_project

    project = load_project(args.app)
    return project, open_project_store(project)


def _list(args: argparse.Namespace) -> int:
    from .checkpoints.tools import list_checkpoints

    project, store = _open(args)
    try:
        rows = list_checkpoints(project, store)
    finally:
        store.close()
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
        return 0
    print(repr(rows))
    return 0


def _set(args: argparse.Namespace) -> int:
    from .checkpoints.tools import set_checkpoint

    project, store = _open(args)
    try:
        moved = set_checkpoint(
            project, store, args.function, args.version, table=args.table, force=args.force
        )
    finally:
        store.close()
    print(moved)
    return 0


def _logs(args: argparse.Namespace) -> int:
    from .journal import Invocation, journal_store_for

    if args.n < 1:
        raise BadCount("-n")
    project, store = _open(args)
    journal, owned = journal_store_for(store)
    try:
        if journal is None:
            raise NoJournal(project.config.state)
        rows = journal.recent_invocations(args.n, args.function)
    finally:
        if owned and journal is not None:
            journal.close()
        store.close()
    for row in reversed(rows):
        if args.json:
            print(json.dumps(row, default=str))
            continue
        print(format_invocation(Invocation.from_dict(row)))
    return 0


def format_invocation(inv: Any) -> str:
    duration = "-" if inv.duration is None else f"{inv.duration * 1000:.1f} ms"
    head = (
        f"{inv.started_at.strftime('%Y-%m-%d %H:%M:%S')}  {inv.function}  {inv.status}  "
        f"{duration}  {inv.trigger}  attempt {inv.attempt}  {inv.id}"
    )
    detail = inv.detail or {}
    if "versions" in detail:
        head += f"  versions {detail['versions'][0]}..{detail['versions'][-1]}"
    lines = [head]
    if inv.error:
        lines.append(f"    error: {inv.error}")
    lines.extend(f"    | {line}" for line in inv.logs)
    return "\n".join(lines)
