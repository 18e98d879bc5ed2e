"""What a user hands lakefn as JSON: rows (a simulated commit's changes, or rows to write to a
table) and the simulated commit a manual invoke of a unity_table function stands for.

One check for every door they come in by (`lakefn simulate --rows`, `%lakefn simulate --rows`,
`lakefn tables create/append --rows`, and the simulated commit posted to
`/lakefn/functions/{name}/invoke` or the console), so each refuses the same input with the same
message, and nothing that is not a commit reaches the watcher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._exceptions import BadOperation, BadSimulatedCommit, BadVersion, RowsError
from ._model import MAX_VERSION
from .events import SimulatedCommit

#: what a simulated commit may name (the fields of `SimulatedCommit`)
SIMULATED_COMMIT = ("operation", "rows", "version", "replay_from")


def check_simulated_commit(payload: Any, *, flags: bool = False) -> SimulatedCommit:
    """The simulated commit `payload` (parsed JSON, or None for the default one) names, or an
    InputError naming what is wrong: as `--replay-from` when the fields came from `flags`."""
    if payload is None:
        return SimulatedCommit()
    if not isinstance(payload, dict) or set(payload) - set(SIMULATED_COMMIT):
        raise BadSimulatedCommit(payload, SIMULATED_COMMIT)

    def named(field: str) -> str:
        return "--" + field.replace("_", "-") if flags else field

    operation = payload.get("operation")
    if operation is not None and not (isinstance(operation, str) and operation.strip()):
        raise BadOperation(named("operation"))
    for field in ("version", "replay_from"):
        value = payload.get(field)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
            raise BadVersion(named(field), value, MAX_VERSION)
    rows = payload.get("rows")
    return SimulatedCommit(
        operation=operation if operation is not None else SimulatedCommit.operation,
        rows=None if rows is None else check_rows(rows, named("rows")),
        version=payload.get("version"),
        replay_from=payload.get("replay_from"),
    )


def simulated_commit(
    operation: SimulatedCommit | str,
    rows: list[dict[str, Any]] | None,
    version: int | None,
    replay_from: int | None,
) -> SimulatedCommit:
    """The commit a Python caller names (`Session.simulate`, the fixture's
    `simulate_table_change`): a `SimulatedCommit` as it is, or one made of the arguments,
    checked as a posted one is."""
    if isinstance(operation, SimulatedCommit):
        return operation
    fields = {"operation": operation, "rows": rows, "version": version}
    return check_simulated_commit({**fields, "replay_from": replay_from})


def commit_from_flags(args: Any, parse_rows: Callable[[str], Any]) -> SimulatedCommit:
    """The commit `lakefn simulate` and `%lakefn simulate` name with their flags: `args` holds
    `operation`, `rows` (JSON text, read by `parse_rows`), `version` and `replay_from`."""
    fields = {field: getattr(args, field) for field in SIMULATED_COMMIT}
    fields["rows"] = None if fields["rows"] is None else parse_rows(fields["rows"])
    return check_simulated_commit(fields, flags=True)


def check_rows(
    value: Any, where: str = "--rows", *, non_empty: bool = False
) -> list[dict[str, Any]]:
    """`value` (parsed JSON) as a list of row objects, or RowsError naming `where` and the first
    problem: not a list, an empty list when `non_empty`, or an item that is not an object."""
    if not isinstance(value, list):
        raise RowsError(where, f"got {_kind(value)}", non_empty=non_empty)
    if non_empty and not value:
        raise RowsError(where, "got an empty list", non_empty=True)
    for index, row in enumerate(value):
        if not isinstance(row, dict):
            raise RowsError(where, f"item {index} is {_kind(row)}", non_empty=non_empty)
    return value


def _kind(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    return "a list" if isinstance(value, list) else type(value).__name__
