"""`%lakefn` and `%%lakefn function NAME`: thin IPython magics over `lakefn.notebook.Session`."""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Integer, Unicode, observe

from .._defaults import DEFAULT_PORT
from .._exceptions import LakefnError
from .._json_input import commit_from_flags
from .session import Session
from .views import FunctionsView, InvocationView


class _HelpShown(Exception):
    """argparse printed `-h` help; nothing else to do."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}\n{self.format_usage().strip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise UsageError(message or f"usage: {self.format_usage().strip()}")
        raise _HelpShown()


def build_parser() -> _Parser:
    # argparse %-formats a given usage: the magic's own % signs are doubled.
    parser = _Parser(prog="%lakefn", usage=_usage().replace("%", "%%"), add_help=False)
    commands = parser.add_subparsers(
        dest="command", parser_class=_Parser, metavar="SUBCOMMAND", prog="%lakefn"
    )

    _add_serving(commands)
    _add_running(commands)

    checkpoints = commands.add_parser("checkpoints", help="table checkpoints and leases")
    checkpoints.add_argument("action", nargs="?", choices=["set"], help="set: move one")
    checkpoints.add_argument("function", nargs="?")
    checkpoints.add_argument("version", nargs="?", type=int)
    checkpoints.add_argument("--table", help="the table (default: the function's own)")
    checkpoints.add_argument(
        "--force", action="store_true", help="even while a live process delivers the table"
    )

    commands.add_parser("panel", help="a control panel")
    return parser


def _add_serving(commands: argparse._SubParsersAction[_Parser]) -> None:
    """load, serve, stop, status."""
    load = commands.add_parser("load", help="load app.yaml")
    load.add_argument("path", nargs="?", help="app.yaml or its folder (default: ./app.yaml)")

    serve = commands.add_parser("serve", help="serve in the background")
    serve.add_argument(
        "--host", help="address to listen on (default: %%config LakefnMagics.default_host)"
    )
    serve.add_argument(
        "--port", type=int, help="port (default: %%config LakefnMagics.default_port; 0: any free)"
    )

    commands.add_parser("stop", help="stop the server")
    commands.add_parser("status", help="serving or not, and where")


def _add_running(commands: argparse._SubParsersAction[_Parser]) -> None:
    """invoke, simulate, reload, logs, run."""
    invoke = commands.add_parser("invoke", help="run a function once")
    invoke.add_argument("name")
    invoke.add_argument("payload", nargs="?", help="JSON: the body of an HTTP function")

    simulate = commands.add_parser("simulate", help="hand a table function a new commit")
    simulate.add_argument("name")
    simulate.add_argument("--operation", default="WRITE", help="Delta operation (default WRITE)")
    simulate.add_argument(
        "--replay-from", type=int, help="replay the table's real history from version V"
    )
    simulate.add_argument("--version", type=int, help="version of the fabricated commit")
    simulate.add_argument("--rows", help="JSON list of row objects: the commit's changes")

    reload = commands.add_parser("reload", help="re-import functions")
    reload.add_argument("name", nargs="?")

    logs = commands.add_parser("logs", help="the last invocations")
    logs.add_argument(
        "-n", type=int, default=None, help="how many (default: %%config LakefnMagics.log_lines)"
    )

    run = commands.add_parser("run", help="run a timer or table function as its job would")
    run.add_argument("name")
    run.add_argument("--scheduled-time", help="ISO time of the tick (timers; default now)")
    run.add_argument(
        "--lease-wait", type=float, help="seconds to wait for another run's lease (default 300)"
    )


def _usage() -> str:
    # One help text: the magic's docstring (what `%lakefn?` shows), also argparse's usage.
    return (inspect.getdoc(LakefnMagics.lakefn) or "").split("\n\n", 1)[-1]


def parse_json(text: str, what: str) -> Any:
    """JSON as typed after a magic: bare (`{"a": 1}`) or shell-quoted (`'{"a": 1}'`)."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = []
    if len(parts) == 1:
        try:
            return json.loads(parts[0])
        except ValueError as exc:
            raise UsageError(f"{what} is not valid JSON: {exc}") from None
    raise UsageError(f"{what} is not valid JSON: {text}")


@magics_class
class LakefnMagics(Magics):
    """The `%lakefn` magics; `%config LakefnMagics` lists and sets these settings."""

    default_host = Unicode(
        "", help="Address `%lakefn serve` listens on; empty: 127.0.0.1 (0.0.0.0 on Databricks)."
    ).tag(config=True)
    default_port = Integer(
        DEFAULT_PORT, help="Port `%lakefn serve` listens on; 0 picks a free one."
    ).tag(config=True)
    log_lines = Integer(20, help="Invocations `%lakefn logs` shows by default.").tag(config=True)
    panel_log_lines = Integer(50, help="Invocations the panel's log keeps.").tag(config=True)

    def __init__(self, shell: Any = None, session: Session | None = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self.session = session or Session(getattr(shell, "user_ns", None))
        self._apply_defaults()
        self.parser = build_parser()

    @observe("default_host", "default_port")
    def _defaults_changed(self, change: Any) -> None:
        if hasattr(self, "session"):
            self._apply_defaults()

    def _apply_defaults(self) -> None:
        self.session.default_host = self.default_host or None
        self.session.default_port = self.default_port

    @line_cell_magic
    def lakefn(self, line: str, cell: str | None = None) -> Any:
        """Run lakefn functions from a notebook.

        %lakefn load [PATH]                    load app.yaml (default ./app.yaml)
        %lakefn serve [--host H] [--port P]    serve in the background; returns with a link
        %lakefn stop                           stop the server; the port is free at once
        %lakefn status                         serving or not, and where
        %lakefn invoke NAME [JSON]             run a function once (JSON: the HTTP body)
        %lakefn simulate NAME [--operation OP] [--replay-from V] [--version V] [--rows JSON]
                                               a new commit (or replayed history) for a
                                               table function
        %lakefn reload [NAME]                  re-import one function (default: all)
        %lakefn logs [-n N]                    the last N invocations
        %lakefn run NAME [--scheduled-time ISO]  run a timer or table function as its job would
        %lakefn checkpoints                    table checkpoints and leases
        %lakefn checkpoints set FUNCTION VERSION [--force]
                                               rewind or skip ahead: delivery resumes
                                               after VERSION
        %lakefn panel                          an ipywidgets control panel

        %%lakefn function NAME                 write the cell to functions/NAME_function.py and
                                               reload it (NAME must be declared in app.yaml)

        Every subcommand is also a Python call: `lakefn.notebook.load(...)`, `.serve()`,
        `.invoke(name, payload)`, ... `%lakefn SUBCOMMAND -h` shows its options;
        `%config LakefnMagics` shows the settings (default host and port, log lines).
        """
        try:
            if cell is not None:
                return self._cell(line, cell)
            return self._line(line)
        except _HelpShown:
            return None
        except LakefnError as exc:
            # Our own errors are messages for the user, not bugs: no traceback.
            raise UsageError(str(exc)) from None

    # -- subcommands -----------------------------------------------------------------------------

    def _line(self, line: str) -> Any:
        words = line.strip().split(None, 2)
        if not words:
            return self.session.status()
        if words[0] == "invoke" and len(words) > 1 and not words[1].startswith("-"):
            # The payload is taken as typed: JSON's quotes would not survive shell splitting.
            payload = parse_json(words[2] if len(words) > 2 else "", "the payload")
            return self.session.view(self.session.invoke(words[1], payload))
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"cannot parse {line!r}: {exc}") from None
        args = self.parser.parse_args(argv)
        handler = getattr(self, f"_do_{args.command}")
        return handler(args)

    def _do_load(self, args: argparse.Namespace) -> Any:
        return FunctionsView(self.session.load(args.path))

    def _do_serve(self, args: argparse.Namespace) -> Any:
        return self.session.serve(args.host, args.port)

    def _do_stop(self, args: argparse.Namespace) -> Any:
        return self.session.stop()

    def _do_status(self, args: argparse.Namespace) -> Any:
        return self.session.status()

    def _do_invoke(self, args: argparse.Namespace) -> Any:
        payload = parse_json(args.payload or "", "the payload")
        return self.session.view(self.session.invoke(args.name, payload))

    def _do_simulate(self, args: argparse.Namespace) -> InvocationView:
        commit = commit_from_flags(args, lambda text: parse_json(text, "--rows"))
        return self.session.view(self.session.simulate(args.name, commit))

    def _do_run(self, args: argparse.Namespace) -> Any:
        from ..jobs.run import parse_time

        try:
            at = parse_time(args.scheduled_time) if args.scheduled_time else None
        except LakefnError as exc:
            raise UsageError(str(exc)) from None
        return self.session.run(args.name, at, lease_wait=args.lease_wait)

    def _do_reload(self, args: argparse.Namespace) -> None:
        names = self.session.reload(args.name)
        print(f"lakefn: reloaded {', '.join(names)}")

    def _do_logs(self, args: argparse.Namespace) -> Any:
        n = self.log_lines if args.n is None else args.n
        if n < 1:
            raise UsageError("-n must be at least 1")
        return self.session.logs(n)

    def _do_checkpoints(self, args: argparse.Namespace) -> Any:
        from ..checkpoints.tools import list_checkpoints, set_checkpoint

        runtime = self.session.require()
        if args.action is None:
            return list_checkpoints(runtime.project, runtime.checkpoints)
        if args.function is None or args.version is None:
            raise UsageError("usage: %lakefn checkpoints set FUNCTION VERSION [--force]")
        if self.session.serving and args.table is None:
            # The notebook's own server holds the lease: it moves the checkpoint itself, as the
            # console does, and delivers from there on its next check.
            move = runtime.watcher.set_checkpoint(args.function, args.version, force=args.force)
            return self.session.submit(move).result()
        return set_checkpoint(
            runtime.project,
            runtime.checkpoints,
            args.function,
            args.version,
            table=args.table,
            force=args.force,
        )

    def _do_panel(self, args: argparse.Namespace) -> Any:
        return self.session.panel(log_lines=self.panel_log_lines)

    def _cell(self, line: str, cell: str) -> None:
        words = line.split()
        if len(words) != 2 or words[0] != "function":
            raise UsageError("cell magic usage: %%lakefn function NAME")
        name = words[1]
        path, reloaded = self.session.write_function(name, cell)
        if reloaded:
            print(f"lakefn: wrote {path} and reloaded {name}")
            return
        print(
            f"lakefn: wrote {path}, but {name!r} is not declared in app.yaml, so nothing runs "
            f"it yet. Declare it under `functions:` with a trigger, e.g.\n"
            f"  - name: {name}\n    trigger:\n      type: http\n      method: POST\n"
            f"      endpoint: /{name.replace('_', '-')}\n"
            "then run %lakefn load again."
        )
