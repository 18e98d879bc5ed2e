"""Tests for this project's functions; the `lakefn` fixture comes with lakefn."""


def test_hello_greets_by_name(lakefn):
    assert lakefn.invoke("hello", {"name": "Ada"}) == {"message": "hello, Ada"}


def test_hello_over_http(lakefn):
    response = lakefn.client.post("/hello", json={})
    assert response.status_code == 200
    assert response.json() == {"message": "hello, world"}


def test_tick_reports_its_scheduled_time(lakefn):
    from datetime import datetime, timezone

    at = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    assert lakefn.fire_timer("tick", at=at) == {"scheduled_time": "2026-01-01T12:00:00+00:00"}
