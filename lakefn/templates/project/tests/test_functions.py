"""Tests for this project's functions: run them with `pytest`.

The `lakefn` fixture comes with lakefn. It loads app.yaml with a temporary state file and local
catalog, so tests never touch .lakefn/, and its clock stands still until a test moves it.
"""

from datetime import datetime, timezone

from lakefn.testing import LakefnHarness


def test_hello_greets_by_name(lakefn: LakefnHarness) -> None:
    assert lakefn.invoke("hello", {"name": "Ada"}) == {"message": "hello, Ada"}


def test_hello_over_http(lakefn: LakefnHarness) -> None:
    response = lakefn.client.post("/hello", json={})
    assert response.status_code == 200
    assert response.json() == {"message": "hello, world"}


def test_every_call_is_recorded(lakefn: LakefnHarness) -> None:
    lakefn.invoke("hello", {"name": "Ada"})
    invocation = lakefn.last_invocation
    assert (invocation.function, invocation.status) == ("hello", "ok")


def test_tick_reports_its_scheduled_time(lakefn: LakefnHarness) -> None:
    at = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert lakefn.fire_timer("tick", at=at) == {"scheduled_time": "2026-01-01T12:00:00+00:00"}


# A unity_table function (uncomment `on_orders` in app.yaml) is tested on real local Delta
# tables through the real watcher, or with a simulated commit:
#
# def test_on_orders_sees_new_versions(lakefn):
#     lakefn.tables.create("main.sales.orders", [{"id": 1}])
#     assert lakefn.check("on_orders") is None       # the first check records version 0
#     lakefn.tables.append("main.sales.orders", [{"id": 2}])
#     result = lakefn.check("on_orders")             # delivers version 1
#
# def test_on_orders_on_a_merge(lakefn):
#     result = lakefn.simulate_table_change("on_orders", operation="MERGE", rows=[{"id": 3}])
