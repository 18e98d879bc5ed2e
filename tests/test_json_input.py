"""JSON a user hands lakefn is checked once, the same way at every door: rows from the CLI, the
magics and `lakefn tables`, and the simulated commit posted to the admin route."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakefn._exceptions import LakefnError, RowsError
from lakefn._json_input import check_rows

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
    ("payload", "message"),
    [
        ({"rows": "nope"}, "rows must be a JSON list of objects, one per row, e.g. "),
        ({"rows": [1, 2]}, "item 0 is a number"),
        ({"rows": {"id": 1}}, "got an object"),
        ({"operation": 5}, "operation must name an operation, e.g. WRITE, MERGE, DELETE"),
        ({"operation": " "}, "operation must name an operation"),
        ({"version": "3"}, "version must be a table version, 0 to 9223372036854775807; got '3'"),
        ({"version": -1}, "version must be a table version"),
        ({"replay_from": 2**64}, "replay_from must be a table version"),
        ({"version": True}, "version must be a table version"),
        ({"op": "MERGE"}, "an object with some of operation, rows, version, replay_from"),
    ],
)
def test_the_admin_route_answers_a_bad_simulated_commit_with_400_naming_the_problem(
    project, serve, payload: dict[str, object], message: str
) -> None:
    project.config(TABLE_FUNCTION)
    project.function("watch", "def main(event):\n    return len(event.commits)\n")
    server = serve(project)
    response = server.client.post("/lakefn/functions/watch/invoke", json=payload)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    assert server.runtime.journal.entries() == []  # refused before anything ran
    # a good simulated commit still runs the function
    ok = server.client.post(
        "/lakefn/functions/watch/invoke",
        json={"operation": "MERGE", "version": 4, "rows": [{"id": 1}]},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"] == 1


def test_a_rows_error_is_a_lakefn_error_so_every_front_door_shows_it_without_traceback() -> None:
    assert issubclass(RowsError, LakefnError)


def _table_project(root: Path) -> Path:
    (root / "functions").mkdir(parents=True)
    (root / "app.yaml").write_text(
        "functions:\n"
        "  - name: on_orders\n"
        "    trigger: {type: unity_table, start: earliest}\n"
        "    table_name: main.sales.orders\n"
    )
    (root / "functions" / "on_orders_function.py").write_text(
        "def main(event):\n    return [event.commits[0].operation, event.changes().num_rows]\n"
    )
    return root / "app.yaml"


def test_python_callers_name_a_simulated_commit_as_before_and_are_checked_the_same(
    tmp_path: Path,
) -> None:
    from lakefn.notebook.session import Session
    from lakefn.testing import LakefnHarness

    app = _table_project(tmp_path / "project")
    with LakefnHarness(app, tmp_path / "work") as lakefn:
        lakefn.tables.create("main.sales.orders", [{"id": 1}])
        # The fixture's method takes its arguments by position too, as it always did.
        assert lakefn.simulate_table_change("on_orders", "MERGE", [{"id": 2}]) == ["MERGE", 1]
        with pytest.raises(LakefnError, match=r"^rows must be a JSON list of objects"):
            lakefn.simulate_table_change("on_orders", rows=5)  # type: ignore[arg-type]
        with pytest.raises(LakefnError, match="replay_from must be"):
            lakefn.simulate_table_change("on_orders", replay_from=-1)

    from lakefn.testing import LocalTables

    LocalTables(app.parent / ".lakefn" / "catalog").create("main.sales.orders", [{"id": 1}])
    session = Session()
    try:
        session.load(str(app))
        assert session.simulate("on_orders", operation="DELETE").ok  # by keyword, as before
        with pytest.raises(LakefnError, match=r"^rows must be a JSON list of objects"):
            session.simulate("on_orders", rows=[1])  # type: ignore[list-item]
    finally:
        session.close()
