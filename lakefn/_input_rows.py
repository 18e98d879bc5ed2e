"""Rows a user hands lakefn as JSON: a simulated commit's changes, or rows to write to a table.

One check for every door they come in by (`lakefn simulate --rows`, `%lakefn simulate --rows`,
`lakefn tables create/append --rows`, and the `rows` of a simulated commit posted to
`/lakefn/functions/{name}/invoke`), so each refuses the same input with the same message.
"""

from __future__ import annotations

from typing import Any

from ._exceptions import RowsError


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
