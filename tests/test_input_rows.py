"""Rows given as JSON are checked once, the same way at every door: the CLI, the magics,
`lakefn tables`, and the admin route's simulated commit."""

from __future__ import annotations

import pytest

from lakefn._exceptions import LakefnError, RowsError
from lakefn._input_rows import check_rows

TABLE_FUNCTION = """\
functions:
  - name: watch
    trigger: {type: unity_table, check_interval: 5}
    table_name: main.sales.orders
"""


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"id": 1}, "got an object"),
        ("[]", "got a string"),
        (None, "got null"),
        ([{"id": 1}, 2], "item 1 is a number"),
        ([[1]], "item 0 is a list"),
    ],
)
def test_rows_that_are_not_a_list_of_objects_are_refused_naming_the_problem(
    value: object, problem: str
) -> None:
    with pytest.raises(RowsError) as caught:
        check_rows(value, "--rows")
    message = str(caught.value)
    assert message.startswith("--rows must be a JSON list of objects")
    assert message.endswith(problem)


def test_an_empty_list_is_refused_only_where_rows_are_required() -> None:
    assert check_rows([], "--rows") == []
    with pytest.raises(RowsError, match=r"^--rows must be a non-empty JSON list .*empty list$"):
        check_rows([], "--rows", non_empty=True)
    rows = [{"id": 1}, {"id": 2}]
    assert check_rows(rows, non_empty=True) is rows


@pytest.mark.parametrize(
    ("rows", "problem"),
    [("nope", "got a string"), ([1, 2], "item 0 is a number"), ({"id": 1}, "got an object")],
)
def test_the_admin_route_answers_bad_simulated_rows_with_400_naming_them(
    project, serve, rows: object, problem: str
) -> None:
    project.config(TABLE_FUNCTION)
    project.function("watch", "def main(event):\n    return len(event.commits)\n")
    server = serve(project)
    response = server.client.post(
        "/lakefn/functions/watch/invoke", json={"operation": "MERGE", "rows": rows}
    )
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert detail.startswith("rows must be a JSON list of objects") and detail.endswith(problem)
    # good rows still make a simulated commit
    ok = server.client.post(
        "/lakefn/functions/watch/invoke", json={"operation": "MERGE", "rows": [{"id": 1}]}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"] == 1


def test_a_rows_error_is_a_lakefn_error_so_every_front_door_shows_it_without_traceback() -> None:
    assert issubclass(RowsError, LakefnError)
