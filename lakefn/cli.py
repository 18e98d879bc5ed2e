"""`lakefn`: serve, validate, invoke, simulate, list functions, scaffold, local tables."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._defaults import ALL_INTERFACES, DEFAULT_PORT, LOCAL_HOST
from ._exceptions import BadPort, ConfigError, JsonInputError, LakefnError
from ._json_input import commit_from_flags


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except LakefnError as exc:
        print(f"lakefn {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lakefn",
        description="Python functions on HTTP calls, cron ticks and Delta table versions.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="serve the project (HTTP routes, timers, table watchers)")
    _app_arg(p)
    p.add_argument(
        "--host", help="address to bind (default 127.0.0.1; 0.0.0.0 under Databricks Apps)"
    )
    p.add_argument(
        "--port", type=_port, help=f"port (default $DATABRICKS_APP_PORT or {DEFAULT_PORT})"
    )
    p.add_argument("--reload", action="store_true", help="restart when project files change")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(run=_serve)

    p = sub.add_parser("validate", help="check app.yaml and import every function")
    p.add_argument("app", nargs="?", help="app.yaml or its folder (default: .)")
    p.set_defaults(run=_validate)

    p = sub.add_parser("functions", help="list the project's functions and triggers")
    _app_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_functions)

    _add_run_parsers(sub)

    p = sub.add_parser("init", help="create a new project that serves out of the box")
    p.add_argument("dir")
    p.set_defaults(run=_init)

    from ._tables_cli import add_tables_parser

    add_tables_parser(sub, _app_arg)

    from .jobs.cli import add_job_parsers

    add_job_parsers(sub, _app_arg)  # run, bundle

    from ._state_cli import add_state_parsers

    add_state_parsers(sub, _app_arg)
    return parser


def _add_run_parsers(sub: Any) -> None:
    """`lakefn invoke` and `lakefn simulate`: run one function by hand."""
    p = sub.add_parser("invoke", help="run one function once and print its result")
    p.add_argument("name")
    p.add_argument("--data", "-d", help="JSON input (the HTTP body), or @file.json")
    _app_arg(p)
    p.set_defaults(run=_invoke)

    p = sub.add_parser(
        "simulate", help="run a unity_table function as if its table got a new commit"
    )
    p.add_argument("name")
    p.add_argument(
        "--operation", "-o", default="WRITE", help="the commit's operation (default WRITE)"
    )
    p.add_argument("--rows", help="JSON list of changed rows, or @file.json")
    p.add_argument("--version", type=_version_number, help="version of the simulated commit")
    p.add_argument(
        "--replay-from",
        type=_version_number,
        metavar="V",
        help="replay real history from version V",
    )
    _app_arg(p)
    p.set_defaults(run=_simulate)


def _app_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", "-a", help="app.yaml or its folder (default: .)")


def _version() -> str:
    from . import __version__

    return f"lakefn {__version__}"


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0-65535)")
    return port


def _version_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a table version is a whole number, not {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("a table version is 0 or more")
    return value


def read_json_arg(text: str | None, what: str) -> Any:
    """Parse a JSON argument, or the file it names with a leading @."""
    if text is None:
        return None
    source = "argument"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise JsonInputError(what, source, exc.strerror, unreadable=True) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise JsonInputError(what, source, exc) from None


# -- commands ------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from ._serve import serve

    env_port = os.environ.get("DATABRICKS_APP_PORT")
    if args.port is not None:
        port = args.port
    elif env_port:
        try:
            port = _port(env_port)
        except argparse.ArgumentTypeError as exc:
            raise BadPort("DATABRICKS_APP_PORT", exc) from None
    else:
        port = DEFAULT_PORT
    host = args.host or (ALL_INTERFACES if env_port else LOCAL_HOST)
    return serve(args.app, host=host, port=port, reload=args.reload, log_level=args.log_level)


def _validate(args: argparse.Namespace) -> int:
    from .project import load_functions, load_project

    project = load_project(args.app, apply_env=False)
    registry = load_functions(project)
    kinds: dict[str, int] = {}
    for fn in project.config.functions:
        kinds[fn.kind] = kinds.get(fn.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in kinds.items()) or "no functions"
    for warning in project.warnings:
        print(f"WARNING {warning}", file=sys.stderr)
    print(f"{project.path}: ok ({len(registry.names)} functions: {summary})")
    _warn_ephemeral_state(project)
    return 0


def _warn_ephemeral_state(project: Any) -> None:
    from .checkpoints.selection import ephemeral_state_warning

    warning = ephemeral_state_warning(project, deployed=True)
    if warning:
        where = "" if os.environ.get("DATABRICKS_APP_NAME") else "if deployed as a Databricks App: "
        print(f"warning: {where}{warning}", file=sys.stderr)


def _functions(args: argparse.Namespace) -> int:
    from .project import load_project

    project = load_project(args.app, apply_env=False)
    rows = [
        {"name": fn.name, "trigger": fn.kind, "on": _trigger_summary(fn), "run_on": fn.run_on}
        for fn in project.config.functions
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max([len(r["name"]) for r in rows] + [4])
    for r in rows:
        job = "  (run_on: job)" if r["run_on"] == "job" else ""
        print(f"{r['name']:<{width}}  {r['trigger']:<11}  {r['on']}{job}")
    return 0


def _trigger_summary(fn: Any) -> str:
    from .triggers import kind

    return kind(fn.kind).summary(fn)


def _invoke(args: argparse.Namespace) -> int:
    from .runtime import Runtime

    payload = read_json_arg(args.data, "--data")
    runtime = Runtime.from_path(args.app)
    try:
        invocation = runtime.invoke_sync(args.name, payload)
    finally:
        runtime.close()
    return _report(invocation)


def _simulate(args: argparse.Namespace) -> int:
    from .runtime import Runtime

    commit = commit_from_flags(args, lambda text: read_json_arg(text, "--rows"))
    runtime = Runtime.from_path(args.app)
    try:
        invocation = runtime.run_sync(runtime.simulate_table_change(args.name, commit))
    finally:
        runtime.close()
    return _report(invocation)


def _report(invocation: Any) -> int:
    from ._exceptions import HttpError

    answer = invocation.exception
    if invocation.ok and isinstance(answer, HttpError):
        # An HTTP function answered with an error status: show it, and fail like curl -f.
        detail = json.dumps(answer.detail, ensure_ascii=False, default=str)
        print(f"{invocation.function} answered HTTP {answer.status}: {detail}", file=sys.stderr)
        return 1
    if not invocation.ok:
        print(
            f"{invocation.function} {invocation.status} (invocation {invocation.id}):",
            file=sys.stderr,
        )
        print(f"  {invocation.error}", file=sys.stderr)
        return 1
    from .triggers.http_routes import plain_result

    result = plain_result(invocation.result)
    if isinstance(result, str):
        print(result)
    elif result is not None:
        from fastapi.encoders import jsonable_encoder

        try:
            print(json.dumps(jsonable_encoder(result), indent=2, ensure_ascii=False))
        except (TypeError, ValueError):
            print(repr(result))
    return 0


def _init(args: argparse.Namespace) -> int:
    from ._scaffold import create_project

    target = create_project(Path(args.dir))
    print(f"created {target}")
    print(
        f"  cd {args.dir} && lakefn serve       # then: curl -X POST localhost:8000/hello -d '{{}}'"
    )
    print(f"  cd {args.dir} && pytest             # the project's own tests")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
