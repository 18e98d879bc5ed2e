"""HTTP triggers on a real uvicorn server: events, return values, errors, limits, load."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

APP = """\
http:
  max_body_bytes: 1000
functions:
  - name: echo
    trigger: {type: http, method: POST, endpoint: "/echo/{item}"}
  - name: shapes
    trigger: {type: http, method: GET, endpoint: /shapes}
  - name: boom
    trigger: {type: http, method: GET, endpoint: /boom}
  - name: teapot
    retry: {max_attempts: 3, backoff_seconds: 0}
    trigger: {type: http, method: GET, endpoint: /teapot}
  - name: counter
    trigger: {type: http, method: POST, endpoint: /count}
  - name: slow
    timeout: 0.3
    trigger: {type: http, method: GET, endpoint: /slow}
  - name: flaky
    retry: {max_attempts: 3, backoff_seconds: 0}
    trigger: {type: http, method: GET, endpoint: /flaky}
  - name: odd
    retry: {max_attempts: 3, backoff_seconds: 0}
    trigger: {type: http, method: GET, endpoint: /odd}
  - name: hang
    timeout: 0.2
    trigger: {type: http, method: GET, endpoint: /hang}
"""


@pytest.fixture
def server(project, serve):
    project.config(APP)
    project.function(
        "echo",
        """\
        def main(event):
            return {
                "method": event.method, "path": event.path, "query": dict(event.query),
                "path_params": dict(event.path_params), "json": event.json(),
                "header": event.headers.get("x-custom"), "user": event.user,
                "body_len": len(event.body), "function": event.function_name,
                "attempt": event.attempt, "simulated": event.simulated,
                "has_id": len(event.invocation_id) > 0,
            }
        """,
    )
    project.function(
        "shapes",
        """\
        from starlette.responses import Response
        from datetime import datetime, timezone
        from decimal import Decimal

        import lakefn
        import pydantic

        class Price(pydantic.BaseModel):
            amount: Decimal
            at: datetime

        def main(event):
            kind = event.query.get("kind")
            if kind == "list":
                return [1, 2, 3]
            if kind == "text":
                return "plain words"
            if kind == "none":
                return None
            if kind == "response":
                return Response("<b>x</b>", media_type="text/html", status_code=202)
            if kind == "datetime":
                return {"at": datetime(2026, 1, 2, tzinfo=timezone.utc)}
            if kind == "decimal":
                return {"whole": Decimal("2"), "part": Decimal("2.5")}
            if kind == "model":  # pydantic's JSON: a Decimal is a string there
                return Price(amount=Decimal("1.5"), at=datetime(2026, 1, 2, tzinfo=timezone.utc))
            if kind == "bad_detail":
                raise lakefn.HttpError(422, {"x": float("nan")})
            return {"kind": kind}
        """,
    )
    project.function("boom", "def main(event):\n    raise ValueError('kaput')\n")
    project.function(
        "teapot",
        "import lakefn\n\ndef main(event):\n    raise lakefn.HttpError(418, {'why': 'tea'})\n",
    )
    project.function(
        "counter",
        """\
        import asyncio
        CALLS = []

        async def main(event):
            n = event.json()["n"]
            CALLS.append(n)
            await asyncio.sleep(0.01)
            return {"n": n, "calls": len(CALLS)}
        """,
    )
    project.function(
        "slow", "import time\n\ndef main(event):\n    time.sleep(2)\n    return 'late'\n"
    )
    project.function(
        "flaky",
        """\
        ATTEMPTS = []

        def main(event):
            ATTEMPTS.append(event.attempt)
            if event.attempt < 3:
                raise RuntimeError(f"attempt {event.attempt} fails")
            return {"attempts": ATTEMPTS}
        """,
    )
    project.function(
        "odd",
        """\
        import dataclasses, sys

        import lakefn

        @dataclasses.dataclass
        class Half:
            a: int
            b: int = dataclasses.field(init=False)  # never set: reading it raises

        def main(event):
            kind = event.query["kind"]
            if kind == "nan":
                return {"x": float("nan")}
            if kind == "dataclass":
                return Half(1)
            if kind == "http_nan":
                raise lakefn.HttpError(418, {"x": float("nan")})
            if kind == "surrogate":
                return {"x": "\\ud800"}
            if kind == "timeout_error":
                raise TimeoutError("the downstream service timed out")
            if kind == "exit":
                sys.exit(2)
            if kind == "loop":  # a list that holds itself
                answer = [1]
                answer.append(answer)
                return {"x": answer}
            if kind == "deep":
                answer = []
                for _ in range(100_000):
                    answer = [answer]
                return answer
        """,
    )
    project.function("hang", "import time\n\ndef main(event):\n    time.sleep(3)\n")
    return serve(project)


@pytest.mark.parametrize(
    ("kind", "status", "says"),
    [
        ("nan", 500, "cannot be sent as JSON"),
        ("dataclass", 500, "cannot be sent as JSON"),
        ("http_nan", 500, "cannot be sent as JSON"),
        ("surrogate", 500, "cannot be sent as JSON"),
        ("loop", 500, "cannot be sent as JSON"),
        ("deep", 500, "cannot be sent as JSON"),
        ("timeout_error", 500, "failed"),  # the function's own TimeoutError is not lakefn's timeout
        ("exit", 500, "failed"),
    ],
)
def test_what_cannot_be_answered_is_a_500_with_the_invocation_id(
    server, kind, status, says
) -> None:
    r = server.client.get("/odd", params={"kind": kind})
    assert r.status_code == status and says in r.json()["error"]
    entry = server.client.get("/lakefn/invocations", params={"function": "odd"}).json()[0]
    assert entry["id"] == r.json()["invocation_id"] and entry["status"] == "error"
    assert server.client.get("/healthz").status_code == 200


@pytest.mark.parametrize("kind", ["nan", "dataclass", "http_nan"])
def test_an_answer_that_cannot_be_sent_is_journaled_once_not_retried(server, kind) -> None:
    # The function ran, and would return the same again: retrying only repeats its effects.
    r = server.client.get("/odd", params={"kind": kind})
    assert r.status_code == 500 and "cannot be sent as JSON" in r.json()["error"]
    params = {"function": "odd", "limit": 1000}
    entries = [
        e
        for e in server.client.get("/lakefn/invocations", params=params).json()
        if e["id"] == r.json()["invocation_id"]
    ]
    assert [(e["attempt"], e["status"]) for e in entries] == [(1, "error")]
    assert entries[0].get("detail") == ({"http_status": 500} if kind == "http_nan" else None)


def test_a_result_that_cannot_be_sent_is_recorded_as_failed_when_it_is_recorded(server) -> None:
    # What watches the journal as entries come in (the notebook panel's log, the store's
    # sampling of successes) must see the failure, not an "ok" turned into one afterwards.
    seen: list[tuple[str, str, str | None]] = []
    unsubscribe = server.runtime.journal.subscribe(
        lambda entry: seen.append((entry.id, entry.status, entry.error))
    )
    try:
        r = server.client.get("/odd", params={"kind": "nan"})
    finally:
        unsubscribe()
    assert r.status_code == 500
    [(entry_id, status, error)] = [s for s in seen if s[0] == r.json()["invocation_id"]]
    assert status == "error" and "cannot be sent as JSON" in (error or "")


def test_deeply_nested_json_is_a_400(server) -> None:
    r = server.client.post("/echo/1", content=b"[" * 900)  # under the body limit of 1000
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]


def test_timed_out_calls_do_not_starve_the_next_ones(server) -> None:
    async def hang_many() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            replies = await asyncio.gather(*(client.get("/hang") for _ in range(45)))
            return [r.status_code for r in replies]

    # 20 run and time out (504) while their threads sleep on; the rest wait for one of the 20
    # slots of `hang` (half the pool) and are turned away (503): the pool keeps room for others.
    assert set(asyncio.run(hang_many())) <= {503, 504}
    r = server.client.get("/shapes", timeout=2)
    assert r.status_code == 200


def test_the_event_carries_the_request(server) -> None:
    r = server.client.post(
        "/echo/42?x=1&y=two",
        json={"name": "Ada"},
        headers={"X-Custom": "yes", "X-Forwarded-Email": "ada@example.com"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["method"] == "POST" and body["path"] == "/echo/42"
    assert body["query"] == {"x": "1", "y": "two"} and body["path_params"] == {"item": "42"}
    assert body["json"] == {"name": "Ada"} and body["header"] == "yes"
    assert body["user"] == "ada@example.com"
    assert body["function"] == "echo" and body["attempt"] == 1 and body["simulated"] is False
    assert body["has_id"] is True


def test_forwarded_user_is_used_when_there_is_no_email(server) -> None:
    r = server.client.post("/echo/1", json={}, headers={"X-Forwarded-User": "123@456"})
    assert r.json()["user"] == "123@456"
    assert server.client.post("/echo/1", json={}).json()["user"] is None


@pytest.mark.parametrize(
    ("kind", "status", "content_type", "body"),
    [
        ("dict", 200, "application/json", b'{"kind":"dict"}'),
        ("list", 200, "application/json", b"[1,2,3]"),
        ("text", 200, "text/plain; charset=utf-8", b"plain words"),
        ("none", 204, None, b""),
        ("response", 202, "text/html; charset=utf-8", b"<b>x</b>"),
        ("datetime", 200, "application/json", b'{"at":"2026-01-02T00:00:00+00:00"}'),
        ("decimal", 200, "application/json", b'{"whole":2,"part":2.5}'),
        ("model", 200, "application/json", b'{"amount":"1.5","at":"2026-01-02T00:00:00Z"}'),
    ],
)
def test_return_values_map_to_responses(server, kind, status, content_type, body) -> None:
    r = server.client.get("/shapes", params={"kind": kind})
    assert r.status_code == status
    assert r.headers.get("content-type") == content_type
    assert r.content.replace(b", ", b",").replace(b": ", b":") == body


def test_http_error_answers_with_its_status(server) -> None:
    r = server.client.get("/teapot")
    assert r.status_code == 418 and r.json() == {"detail": {"why": "tea"}}
    assert r.headers["content-type"] == "application/json"
    # An answer, not a failure: journaled as ok with its status, and never retried.
    [entry] = server.client.get("/lakefn/invocations", params={"function": "teapot"}).json()
    assert (entry["status"], entry["attempt"], entry["detail"]) == ("ok", 1, {"http_status": 418})


def test_an_http_error_whose_detail_cannot_be_sent_is_the_functions_500(server) -> None:
    r = server.client.get("/shapes", params={"kind": "bad_detail"})
    assert r.status_code == 500
    said = r.json()["error"]
    assert said.startswith("function 'shapes' returned a dict that cannot be sent as JSON: ")
    entry = server.client.get("/lakefn/invocations", params={"function": "shapes"}).json()[0]
    assert (entry["id"], entry["status"]) == (r.json()["invocation_id"], "error")


def test_what_is_not_json_is_named_with_what_may_be_returned() -> None:
    from lakefn.triggers.http_routes import encode_json

    with pytest.raises(TypeError) as caught:
        encode_json({"x": object()})
    assert str(caught.value) == (
        "a builtins.object is not JSON: return dicts, lists, str, numbers, bool, None, "
        "datetimes, UUIDs, Decimals, Enums, dataclasses or pydantic models"
    )


def test_a_body_that_is_not_json_is_a_400_saying_so(server) -> None:
    r = server.client.post(
        "/echo/1", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["detail"]


def test_an_exception_is_a_500_with_the_invocation_id_and_the_server_keeps_serving(
    server, caplog
) -> None:
    with caplog.at_level(logging.ERROR, logger="lakefn.functions.boom"):
        r = server.client.get("/boom")
    assert r.status_code == 500
    invocation_id = r.json()["invocation_id"]
    assert "kaput" not in r.text  # the error stays in the log, not in the answer
    assert any(
        invocation_id in rec.getMessage() and "kaput" in rec.getMessage() for rec in caplog.records
    )
    journal = server.client.get("/lakefn/invocations", params={"function": "boom"}).json()
    assert journal[0]["id"] == invocation_id and journal[0]["status"] == "error"
    assert "ValueError: kaput" in journal[0]["error"]
    assert server.client.get("/shapes").status_code == 200


def test_the_body_limit_answers_413(server) -> None:
    r = server.client.post("/echo/1", content=b"x" * 1001)
    assert r.status_code == 413 and "1000 bytes" in r.json()["detail"]

    def chunks():
        for _ in range(20):
            yield b"y" * 100

    r = server.client.post("/echo/1", content=chunks())  # chunked: no content-length
    assert r.status_code == 413
    assert server.client.post("/echo/1", content=b'{"a": 1}').status_code == 200


def test_timeout_answers_504_and_is_journaled(server) -> None:
    r = server.client.get("/slow")
    assert r.status_code == 504 and "timed out" in r.json()["error"]
    entry = server.client.get("/lakefn/invocations", params={"function": "slow"}).json()[0]
    assert entry["status"] == "timeout" and entry["duration_ms"] < 1500


def test_retry_runs_the_function_again_until_it_succeeds(server) -> None:
    r = server.client.get("/flaky")
    assert r.status_code == 200 and r.json() == {"attempts": [1, 2, 3]}
    entries = server.client.get("/lakefn/invocations", params={"function": "flaky"}).json()
    assert [e["status"] for e in entries[:3]] == ["ok", "error", "error"]
    assert len({e["id"] for e in entries[:3]}) == 1


def test_200_concurrent_requests_are_all_answered_once(server) -> None:
    async def fire() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:
            return await asyncio.gather(*(client.post("/count", json={"n": i}) for i in range(200)))

    responses = asyncio.run(fire())
    assert all(r.status_code == 200 for r in responses)
    assert sorted(r.json()["n"] for r in responses) == list(range(200))
    assert max(r.json()["calls"] for r in responses) == 200


def test_openapi_lists_the_function_routes(server) -> None:
    paths = server.client.get("/openapi.json").json()["paths"]
    assert "post" in paths["/echo/{item}"] and "get" in paths["/shapes"]
    assert paths["/echo/{item}"]["post"]["summary"] == "echo"


def test_lakefn_routes(server) -> None:
    assert server.client.get("/healthz").json()["status"] == "ok"
    names = [f["name"] for f in server.client.get("/lakefn/functions").json()]
    assert names == ["echo", "shapes", "boom", "teapot", "counter", "slow", "flaky", "odd", "hang"]
    assert server.client.get("/lakefn/tables").json() == []


def test_manual_invoke_is_for_loopback_or_the_admin_token(server, monkeypatch) -> None:
    r = server.client.post("/lakefn/functions/echo/invoke", json={"hi": 1})
    assert r.status_code == 200
    assert r.json()["result"]["json"] == {"hi": 1} and r.json()["invocation"]["status"] == "ok"
    proxied = {"X-Forwarded-For": "203.0.113.9"}
    assert server.client.post("/lakefn/functions/echo/invoke", headers=proxied).status_code == 403
    for header in (
        {"Forwarded": "for=203.0.113.9"},
        {"X-Real-IP": "203.0.113.9"},
        {"Via": "1.1 gw"},
    ):
        assert (
            server.client.post("/lakefn/functions/echo/invoke", headers=header).status_code == 403
        )
    monkeypatch.setenv("LAKEFN_ADMIN_TOKEN", "s3cret")
    wrong = {**proxied, "Authorization": "Bearer nope"}
    assert server.client.post("/lakefn/functions/echo/invoke", headers=wrong).status_code == 403
    right = {**proxied, "Authorization": "Bearer s3cret"}
    assert server.client.post("/lakefn/functions/echo/invoke", headers=right).status_code == 200
    missing = server.client.post("/lakefn/functions/nope/invoke")
    assert missing.status_code == 404 and "the project has" in missing.json()["detail"]
    assert server.client.post("/lakefn/functions/echo/invoke", content=b"{x").status_code == 400


def test_a_response_result_is_shown_as_what_a_client_gets() -> None:
    from starlette.responses import Response

    from lakefn.triggers.http_routes import plain_result

    shown = plain_result(Response("<b>x</b>", media_type="text/html", status_code=202))
    assert shown == {"status_code": 202, "media_type": "text/html", "body": "<b>x</b>"}
    assert plain_result({"a": 1}) == {"a": 1}
