"""`lakefn tables create|append|history|list`: real local Delta tables for trying triggers out."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from ._defaults import LOCAL_CATALOG, LOCAL_ROOT_ENV
from ._exceptions import LakefnError, NoRowsGiven, RowsFileError
from ._json_input import check_rows
from ._tablename import TableName


def add_tables_parser(sub: Any, app_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    tables = sub.add_parser(
        "tables", help="create and change local Delta tables (the local catalog)"
    )
    tsub = tables.add_subparsers(dest="tables_command", metavar="ACTION", required=True)

    p = tsub.add_parser("create", help="create a table from rows (or a sample)")
    p.add_argument("name", type=_table, help="catalog.schema.table")
    _rows_args(p)
    p.add_argument("--sample", action="store_true", help="fill it with sample customer rows")
    p.add_argument("--no-cdf", action="store_true", help="without the change data feed")
    p.add_argument("--if-not-exists", action="store_true", help="do nothing if it exists")
    app_arg(p)
    p.set_defaults(run=_create)

    p = tsub.add_parser("append", help="commit rows to a table (a new version)")
    p.add_argument("name", type=_table)
    _rows_args(p)
    p.add_argument("--overwrite", action="store_true", help="replace the table's rows")
    app_arg(p)
    p.set_defaults(run=_append)

    p = tsub.add_parser("history", help="the table's commits, newest first")
    p.add_argument("name", type=_table)
    p.add_argument("-n", type=int, default=20, help="how many (default 20)")
    app_arg(p)
    p.set_defaults(run=_history)

    p = tsub.add_parser("list", help="tables in the local catalog")
    app_arg(p)
    p.set_defaults(run=_list)


def _rows_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows", help="JSON list of objects, e.g. '[{\"id\": 1}]', or @file.json")
    p.add_argument("--file", type=Path, help="rows from a .json, .csv or .parquet file")


def _table(text: str) -> TableName:
    try:
        return TableName.parse(text)
    except LakefnError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _root(args: argparse.Namespace) -> Path:
    from .project import find_app_yaml, load_project

    app_yaml = find_app_yaml(args.app)
    if app_yaml.exists():
        return load_project(app_yaml, apply_env=False).local_root
    import os

    return Path(os.environ.get(LOCAL_ROOT_ENV) or LOCAL_CATALOG).resolve()


def _rows(args: argparse.Namespace) -> Any:
    from .cli import read_json_arg

    if args.file is not None:
        return _read_file(args.file)
    rows = read_json_arg(args.rows, "--rows")
    return None if rows is None else check_rows(rows, "--rows", non_empty=True)


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise RowsFileError(path, "no such file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path)
    if suffix == ".csv":
        import pyarrow.csv as pcsv

        return pcsv.read_csv(path)
    if suffix == ".json":
        from .cli import read_json_arg

        return read_json_arg(f"@{path}", "--file")
    raise RowsFileError(path, "use a .json, .csv or .parquet file")


SAMPLE_SEGMENTS = ["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"]


def sample_customers(start: int = 1, count: int = 5) -> list[dict[str, Any]]:
    """Rows shaped like TPC-H's customer dimension."""
    return [
        {
            "c_custkey": key,
            "c_name": f"Customer#{key:09d}",
            "c_nationkey": key % 25,
            "c_acctbal": round(1000 + key * 13.37, 2),
            "c_mktsegment": SAMPLE_SEGMENTS[key % len(SAMPLE_SEGMENTS)],
            "updated": date(2026, 1, 1).isoformat(),
        }
        for key in range(start, start + count)
    ]


def _create(args: argparse.Namespace) -> int:
    from .sources.local import create_table, path_for

    root = _root(args)
    if args.if_not_exists and (path_for(root, args.name) / "_delta_log").is_dir():
        print(f"{args.name} exists at {path_for(root, args.name)}")
        return 0
    rows = sample_customers() if args.sample else _rows(args)
    if rows is None:
        raise NoRowsGiven("the table's first rows", "--rows, --file or --sample")
    version = create_table(root, args.name, rows, change_data_feed=not args.no_cdf)
    print(f"created {args.name} at {path_for(root, args.name)} (version {version})")
    return 0


def _append(args: argparse.Namespace) -> int:
    from .sources.local import append

    rows = _rows(args)
    if rows is None:
        raise NoRowsGiven("the rows to commit", "--rows or --file")
    version = append(_root(args), args.name, rows, mode="overwrite" if args.overwrite else "append")
    print(f"{args.name}: version {version}")
    return 0


def _history(args: argparse.Namespace) -> int:
    from .sources.local import LocalDeltaSource

    source = LocalDeltaSource(_root(args))
    commits = source.commits_since(args.name, -1)
    for commit in reversed(commits[-args.n :]):
        metrics = {k: v for k, v in commit.operation_metrics.items() if k.startswith("num")}
        print(
            f"{commit.version:>6}  {commit.timestamp:%Y-%m-%d %H:%M:%S}  {commit.operation:<14} "
            f"{json.dumps(metrics) if metrics else ''}"
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    root = _root(args)
    found = sorted(p.parent for p in root.glob("*/*/*/_delta_log"))
    for path in found:
        print(TableName(*path.relative_to(root).parts))  # quoted where a part needs it
    if not found:
        print(f"no tables under {root}")
    return 0
