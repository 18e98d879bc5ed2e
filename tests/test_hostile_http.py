"""A hostile caller and a careless author against the real server (uvicorn on loopback): the
guard on lakefn's own routes, body and header limits, concurrency, what a function may return,
HEAD, route order, shutdown, and a fuzz of whole requests. One test per thing a user relies on.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import h11
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakefn._scaffold import create_project
from lakefn.server import create_app
from tests.conftest import ProjectDir

APP = """\
http:
  max_body_bytes: 1000
functions:
  - name: echo
    trigger: {type: http, method: POST, endpoint: /echo}
  - name: read
    trigger: {type: http, method: GET, endpoint: /read}
  - name: shapes
    trigger: {type: http, method: GET, endpoint: /shapes}
  - name: fails
    trigger: {type: http, method: GET, endpoint: /fails}
  - name: nap
    timeout: 0.2
    max_concurrency: 500
    trigger: {type: http, method: GET, endpoint: /nap}
  - name: slow
    trigger: {type: http, method: GET, endpoint: /slow}
  - name: quick
    trigger: {type: http, method: GET, endpoint: /quick}
  - name: single
    max_concurrency: 1
    trigger: {type: http, method: GET, endpoint: /single}
"""

#: a sync function that blocks until the test releases it, counting who is inside
BLOCKING = """\
import threading

RELEASE = threading.Event()
INSIDE = []

def main(event):
    INSIDE.append(1)
    RELEASE.wait(60)
    return {"done": True}
"""

SHAPES = """\
import dataclasses, datetime, decimal, enum, uuid
import pydantic


class Account:
    def __init__(self):
        self.user = "ada"
        self._password = "hunter2"


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Model(pydantic.BaseModel):
    name: str
    at: datetime.date


class Color(enum.Enum):
    RED = "red"


def main(event):
    kind = event.query["kind"]
    return {
        "object": lambda: {"account": Account()},
        "dataclass": lambda: Point(1, 2),
        "pydantic": lambda: [Model(name="m", at=datetime.date(2026, 1, 2))],
        "uuid": lambda: {"id": uuid.UUID(int=1)},
        "decimal": lambda: {"price": decimal.Decimal("1.50"), "n": decimal.Decimal("3")},
        "enum": lambda: {"color": Color.RED},
        "set": lambda: {"tags": {"a"}},
        "datetime": lambda: {"at": datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)},
    }[kind]()
"""


@pytest.fixture
def hostile(project: ProjectDir) -> ProjectDir:
    project.config(APP)
    project.function("echo", "def main(event):\n    return {'len': len(event.body)}\n")
    project.function("read", "def main(event):\n    return {'read': event.method}\n")
    project.function("shapes", SHAPES)
    project.function(
        "fails", "def main(event):\n    raise ValueError('password s3cr3t for alice@corp.com')\n"
    )
    for name in ("nap", "slow", "single"):
        project.function(name, BLOCKING)
    project.function("quick", "def main(event):\n    return {'quick': True}\n")
    return project


@pytest.fixture
def server(hostile, serve):
    live = serve(hostile)
    yield live
    for name in ("nap", "slow", "single"):  # let the blocked threads go
        module(live, name)["RELEASE"].set()


def module(live, name: str) -> dict:
    return live.runtime.registry.get(name).main.__globals__  # type: ignore[no-any-return]


def lakefn_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lakefn-fn")]


GUARDED = [
    ("GET", "/lakefn/functions"),
    ("GET", "/lakefn/invocations"),
    ("GET", "/lakefn/tables"),
    ("POST", "/lakefn/functions/echo/invoke"),
]

#: headers a proxy sets, none of them X-Forwarded-For (which uvicorn itself acts on)
PROXY_HEADERS = [
    {"X-Forwarded-Email": "ada@example.com"},
    {"X-Forwarded-Host": "app.example.com"},
    {"X-Forwarded-User": "123@456"},
    {"CF-Connecting-IP": "203.0.113.9"},
    {"X-Cluster-Client-Ip": "203.0.113.9"},
    {"X-Original-Forwarded-For": "203.0.113.9"},
    {"True-Client-IP": "203.0.113.9"},
    {"X-Real-IP": "203.0.113.9"},
    {"Forwarded": "for=203.0.113.9"},
    {"Via": "1.1 gw"},
    {"Fly-Client-IP": "203.0.113.9"},
]


def asgi_client(live, host: str) -> httpx.AsyncClient:
    """The real app, called as if from `host`: the way to be a non-loopback caller here."""
    app = create_app(runtime=live.runtime)
    transport = httpx.ASGITransport(app=app, client=(host, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://lakefn")


def call_as(live, host: str, method: str, path: str, **kwargs) -> httpx.Response:
    async def go() -> httpx.Response:
        async with asgi_client(live, host) as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


# -- who may use lakefn's own routes ----------------------------------------------------------


@pytest.mark.parametrize("headers", PROXY_HEADERS, ids=lambda h: next(iter(h)))
@pytest.mark.parametrize(("method", "path"), GUARDED, ids=lambda x: x)
def test_lakefn_routes_refuse_a_request_that_came_through_a_proxy(
    server, method, path, headers
) -> None:
    r = server.client.request(method, path, headers=headers)
    assert r.status_code == 403
    assert "LAKEFN_ADMIN_TOKEN" in r.json()["detail"]


@pytest.mark.parametrize(("method", "path"), GUARDED, ids=lambda x: x)
def test_lakefn_routes_refuse_a_caller_off_loopback_but_healthz_stays_open(
    server, method, path
) -> None:
    server.client.get("/fails")  # an error whose text must not leak
    r = call_as(server, "10.1.2.3", method, path)
    assert r.status_code == 403 and "s3cr3t" not in r.text
    assert call_as(server, "10.1.2.3", "GET", "/healthz").json()["status"] == "ok"


def test_a_refusal_says_what_was_refused_and_the_three_ways_in(server) -> None:
    admin = call_as(server, "10.1.2.3", "POST", "/lakefn/functions/echo/invoke").json()["detail"]
    route = call_as(server, "10.1.2.3", "GET", "/lakefn/invocations").json()["detail"]
    ways = (
        " is allowed from loopback (not through a proxy), or with Authorization: Bearer "
        "$LAKEFN_ADMIN_TOKEN; as a Databricks App, for the users app.yaml `access` names"
    )
    assert (admin, route) == ("invoking functions by hand" + ways, "this route" + ways)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_every_loopback_address_is_local(server, host) -> None:
    r = call_as(server, host, "POST", "/lakefn/functions/echo/invoke", json={"a": 1})
    assert r.status_code == 200 and r.json()["invocation"]["status"] == "ok"


def test_the_admin_token_scheme_is_case_insensitive(server, monkeypatch) -> None:
    monkeypatch.setenv("LAKEFN_ADMIN_TOKEN", "s3cret")
    for scheme in ("Bearer", "bearer", "BEARER"):
        r = call_as(server, "10.1.2.3", "POST", "/lakefn/functions/echo/invoke",
                    headers={"Authorization": f"{scheme} s3cret"})  # fmt: skip
        assert r.status_code == 200, scheme


def test_an_admin_token_read_from_a_file_with_its_newline_still_matches(
    server, monkeypatch
) -> None:
    monkeypatch.setenv("LAKEFN_ADMIN_TOKEN", "s3cret\n")
    headers = {"Authorization": "Bearer s3cret", "X-Forwarded-Email": "a@b.c"}
    assert server.client.post("/lakefn/functions/echo/invoke", headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("token", "header"),
    [
        ("s3cret", "Bearer s\u00e9cret".encode()),  # a non-ASCII header
        ("s3cret", b"Bearer \xff\xfe"),  # not even UTF-8
        ("s\u00e9cret", b"Bearer s3cret"),  # a non-ASCII token
        ("s3cret", b"Bearer"),
        ("s3cret", b"Basic s3cret"),
        ("s3cret", b"Bearer s3cret2"),
    ],
)
def test_a_wrong_or_odd_authorization_is_403_never_500(server, monkeypatch, token, header) -> None:
    monkeypatch.setenv("LAKEFN_ADMIN_TOKEN", token)
    headers = {"Authorization": header, "X-Forwarded-Email": "a@b.c"}
    r = server.client.post("/lakefn/functions/echo/invoke", headers=headers)
    assert r.status_code == 403


def test_a_non_ascii_admin_token_matches_the_same_bytes(server, monkeypatch) -> None:
    monkeypatch.setenv("LAKEFN_ADMIN_TOKEN", "s\u00e9cret")
    headers = {"Authorization": "Bearer s\u00e9cret".encode(), "X-Forwarded-Email": "a@b.c"}
    assert server.client.post("/lakefn/functions/echo/invoke", headers=headers).status_code == 200


ACCESS_APP = """\
access:
  admins: [Ada@Example.com]
  viewers: {viewers}
functions:
  - name: fails
    trigger: {{type: http, method: GET, endpoint: /fails}}
"""


@pytest.fixture
def databricks_app(project: ProjectDir, serve, monkeypatch):
    def start(viewers: str):
        project.config(ACCESS_APP.format(viewers=viewers))
        project.function("fails", "def main(event):\n    raise ValueError('password s3cr3t')\n")
        live = serve(project)
        live.client.get("/fails")
        return live

    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    return start


def as_user(email: str) -> dict[str, str]:
    # What the Databricks Apps proxy sends with every request.
    return {"X-Forwarded-Email": email, "X-Forwarded-Host": "my-app.databricksapps.com"}


def test_as_a_databricks_app_the_admins_may_do_everything(databricks_app) -> None:
    live = databricks_app("admins")
    r = live.client.get("/lakefn/invocations", headers=as_user("ada@example.com"))
    assert r.status_code == 200 and "s3cr3t" in r.json()[0]["error"]
    invoke = live.client.post("/lakefn/functions/fails/invoke", headers=as_user("ada@example.com"))
    assert invoke.status_code == 500 and invoke.json()["invocation"]["status"] == "error"


def test_as_a_databricks_app_other_users_are_refused_by_default(databricks_app) -> None:
    live = databricks_app("admins")
    for path in ("/lakefn/invocations", "/lakefn/functions"):
        assert live.client.get(path, headers=as_user("bob@example.com")).status_code == 403


def test_viewers_all_see_read_only_without_error_text(databricks_app) -> None:
    live = databricks_app("all")
    r = live.client.get("/lakefn/invocations", headers=as_user("bob@example.com"))
    assert r.status_code == 200
    assert r.json()[0]["error"] == "ValueError" and "s3cr3t" not in r.text
    functions = live.client.get("/lakefn/functions", headers=as_user("bob@example.com"))
    assert functions.status_code == 200 and "s3cr3t" not in functions.text
    invoke = live.client.post("/lakefn/functions/fails/invoke", headers=as_user("bob@example.com"))
    assert invoke.status_code == 403


def test_forwarded_identity_is_not_believed_outside_a_databricks_app(
    databricks_app, monkeypatch
) -> None:
    live = databricks_app("all")
    monkeypatch.delenv("DATABRICKS_APP_NAME")
    r = live.client.get("/lakefn/invocations", headers=as_user("ada@example.com"))
    assert r.status_code == 403


# -- limits -----------------------------------------------------------------------------------


def _chunked(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 100):
        yield data[i : i + 100]


def _json_of_size(size: int) -> bytes:
    body = json.dumps({"pad": ""}).encode()
    return json.dumps({"pad": "x" * (size - len(body))}).encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_of_exactly_the_limit_is_accepted_one_byte_more_is_413(server, chunked) -> None:
    exact, over = _json_of_size(1000), _json_of_size(1001)
    assert len(exact) == 1000
    for path in ("/echo", "/lakefn/functions/echo/invoke"):
        body = _chunked(exact) if chunked else exact
        r = server.client.post(path, content=body)
        assert r.status_code == 200, path
        r = server.client.post(path, content=_chunked(over) if chunked else over)
        assert r.status_code == 413 and "1000 bytes" in r.json()["detail"], path


def test_the_admin_invoke_route_refuses_a_body_past_the_limit_before_reading_it(server) -> None:
    r = server.client.post("/lakefn/functions/echo/invoke", content=b"[" + b"1," * 5000 + b"1]")
    assert r.status_code == 413


def test_timed_out_calls_leave_a_bounded_number_of_threads(server) -> None:
    async def many() -> list[httpx.Response]:
        # In waves of 50: each wave times out and leaves its threads behind, asleep.
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
            return await asyncio.gather(*(client.get("/nap") for _ in range(300)))

    replies = asyncio.run(many())
    statuses = {r.status_code for r in replies}
    assert statuses <= {503, 504} and 503 in statuses
    refused = next(r for r in replies if r.status_code == 503)
    assert int(refused.headers["Retry-After"]) > 0 and refused.json()["invocation_id"]
    assert len(lakefn_threads()) <= 40 + 64  # the pool, and the cap on abandoned threads
    timed_out = next(r for r in replies if r.status_code == 504).json()["invocation_id"]
    [entry] = [
        e
        for e in server.client.get(
            "/lakefn/invocations", params={"function": "nap", "limit": 1000}
        ).json()
        if e["id"] == timed_out
    ]
    assert entry["status"] == "timeout"
    assert entry["error"] == "function 'nap' did not finish within its timeout of 0.2 s"
    saturated = server.client.get("/quick")  # no more threads for now
    assert saturated.status_code == 503 and saturated.headers["Retry-After"] == "5"
    error = saturated.json()["error"]
    assert error.startswith("function 'quick' was not started: ")
    assert error.endswith(" timed-out calls still hold threads")
    assert int(error.split(": ", 1)[1].split()[0]) >= 64
    module(server, "nap")["RELEASE"].set()  # the sleepers return: threads free again
    assert wait_until(lambda: server.client.get("/quick").status_code == 200)


def wait_until(predicate, tries: int = 500) -> bool:
    import time

    for _ in range(tries):
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_one_slow_sync_function_does_not_starve_the_others(server) -> None:
    inside = module(server, "slow")["INSIDE"]

    async def scenario() -> tuple[int, list[int]]:
        async with httpx.AsyncClient(
            base_url=server.url, limits=httpx.Limits(max_connections=100), timeout=60
        ) as client:
            slow = [asyncio.create_task(client.get("/slow")) for _ in range(40)]
            while len(inside) < 20:  # as many as it may run at once are running
                await asyncio.sleep(0.01)
            # Not a speed limit: a starved call would wait for the 40 slow ones, forever here.
            quick = await client.get("/quick", timeout=15)
            module(server, "slow")["RELEASE"].set()
            return quick.status_code, [r.status_code for r in await asyncio.gather(*slow)]

    quick, slow = asyncio.run(scenario())
    assert quick == 200
    assert slow == [200] * 40  # the ones past its max_concurrency waited their turn


def test_max_concurrency_queues_then_answers_503_with_retry_after(server) -> None:
    inside = module(server, "single")["INSIDE"]

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=server.url, limits=httpx.Limits(max_connections=20), timeout=60
        ) as client:
            first = asyncio.create_task(client.get("/single"))
            while not inside:
                await asyncio.sleep(0.01)
            queued = [asyncio.create_task(client.get("/single")) for _ in range(4)]
            while server.runtime.invoker.gate(server.runtime.registry.get("single")).queued < 4:
                await asyncio.sleep(0.01)
            refused = await client.get("/single")  # the queue (4 per slot) is full
            module(server, "single")["RELEASE"].set()
            return [refused, await first, *await asyncio.gather(*queued)]

    refused, *served = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert "max_concurrency" in refused.json()["error"]
    assert [r.status_code for r in served] == [200] * 5
    assert len(inside) == 5


# -- what a function returns ------------------------------------------------------------------


DATA = [
    ("dataclass", {"x": 1, "y": 2}),
    ("pydantic", [{"name": "m", "at": "2026-01-02"}]),
    ("uuid", {"id": "00000000-0000-0000-0000-000000000001"}),
    ("decimal", {"price": 1.5, "n": 3}),
    ("enum", {"color": "red"}),
    ("set", {"tags": ["a"]}),
    ("datetime", {"at": "2026-01-02T00:00:00+00:00"}),
]


def test_data_goes_out_as_json_but_never_an_object_s_private_attributes(server) -> None:
    r = server.client.get("/shapes", params={"kind": "object"})
    assert r.status_code == 500
    assert "hunter2" not in r.text and "_password" not in r.text
    assert "Account" in r.json()["error"] and r.json()["invocation_id"]
    for kind, expected in DATA:
        r = server.client.get("/shapes", params={"kind": kind})
        assert r.status_code == 200 and r.json() == expected, kind


# -- HEAD, route order, the scaffold ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/read", "/healthz"])
def test_head_answers_like_get_without_a_body(server, path) -> None:
    r = server.client.head(path)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-type"] == "application/json"


def test_a_catch_all_route_does_not_shadow_lakefn_s_own(project, serve) -> None:
    project.config(
        """\
        functions:
          - name: anything
            trigger: {type: http, method: GET, endpoint: "/{rest:path}"}
        """
    )
    project.function("anything", "def main(event):\n    return {'caught': event.path}\n")
    live = serve(project)
    assert live.client.get("/healthz").json()["status"] == "ok"
    assert live.client.get("/lakefn/functions").json()[0]["name"] == "anything"
    assert "swagger" in live.client.get("/docs").text.lower()
    assert live.client.get("/else/where").json() == {"caught": "/else/where"}


def test_the_scaffold_hello_answers_400_for_a_json_array(tmp_path: Path, serve, monkeypatch):
    monkeypatch.delenv("LAKEFN_STATE", raising=False)
    root = create_project(tmp_path / "fresh")
    live = serve(ProjectDir(root))
    r = live.client.post("/hello", json=[1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["detail"]
    assert live.client.post("/hello", json={"name": "Ada"}).json() == {"message": "hello, Ada"}


# -- shutdown ---------------------------------------------------------------------------------


def test_a_request_cut_off_by_shutdown_gets_a_json_503_and_no_traceback(
    hostile, serve, caplog
) -> None:
    live = serve(hostile)
    inside = module(live, "slow")["INSIDE"]
    answer: list[httpx.Response] = []
    caller = threading.Thread(
        target=lambda: answer.append(httpx.get(f"{live.url}/slow", timeout=30))
    )
    with caplog.at_level(logging.WARNING):
        caller.start()
        assert wait_until(lambda: len(inside) == 1)
        live.background.stop()  # waits 2 s for it, then cuts it off
        caller.join(30)
        module(live, "slow")["RELEASE"].set()
    assert answer[0].status_code == 503 and "stopping" in answer[0].json()["detail"]
    assert not [r for r in caplog.records if r.exc_info], caplog.text  # no traceback
    assert "Exception in ASGI application" not in caplog.text


WAITING_HELPER = """\
import asyncio, threading

INSIDE = []
RELEASE = threading.Event()

async def wait_in_a_thread():
    INSIDE.append(1)
    await asyncio.get_running_loop().run_in_executor(None, RELEASE.wait)
"""


def test_an_async_call_awaiting_a_helper_is_cut_off_by_shutdown_as_stopping(project, serve) -> None:
    # The cancel lands in the helper's own await (functions/_waiting.py): still the server
    # stopping, not the function failing. (Python 3.10 has no Task.cancelling() to ask.)
    project.config(
        "functions:\n  - name: waits\n    trigger: {type: http, method: GET, endpoint: /waits}\n"
    )
    project.file("functions/_waiting.py", WAITING_HELPER)
    project.function(
        "waits",
        "import _waiting\n\nasync def main(event):\n    await _waiting.wait_in_a_thread()\n",
    )
    live = serve(project)
    helper = module(live, "waits")["_waiting"]
    answer: list[httpx.Response] = []
    caller = threading.Thread(
        target=lambda: answer.append(httpx.get(f"{live.url}/waits", timeout=30))
    )
    caller.start()
    try:
        assert wait_until(lambda: len(helper.INSIDE) == 1)
        live.background.stop()  # waits 2 s for it, then cuts it off
        caller.join(30)
    finally:
        helper.RELEASE.set()
    assert answer[0].status_code == 503 and "stopping" in answer[0].json()["detail"]


STREAMING = """\
import asyncio
from starlette.responses import StreamingResponse
STARTED = []
async def body():
    yield b"first chunk"
    STARTED.append(1)
    await asyncio.Event().wait()  # never ends: only shutdown stops it
def main(event):
    return StreamingResponse(body(), media_type="text/plain")
"""


def test_a_response_cut_off_mid_body_by_shutdown_closes_its_connection(project, serve) -> None:
    project.config(
        "functions:\n  - name: stream\n    trigger: {type: http, method: GET, endpoint: /stream}\n"
    )
    project.function("stream", STREAMING)
    live = serve(project)
    started = module(live, "stream")["STARTED"]
    ended: list[BaseException | None] = []

    def read_all() -> None:
        try:
            with httpx.stream("GET", f"{live.url}/stream", timeout=30) as response:
                for _ in response.iter_bytes():
                    pass
            ended.append(None)
        except httpx.HTTPError as exc:
            ended.append(exc)

    reader = threading.Thread(target=read_all)
    reader.start()
    assert wait_until(lambda: started)
    live.background.stop()  # 2 s of grace, then the response is cut off
    reader.join(10)
    assert ended, "the client was left waiting on a connection nobody serves"
    assert isinstance(ended[0], httpx.RemoteProtocolError)  # a body cut short, as it was
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught


# -- a fuzz of whole requests -----------------------------------------------------------------

_methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"])
_paths = st.sampled_from(["/echo", "/read", "/shapes", "/fails", "/nope", "/lakefn/functions",
                          "/lakefn/functions/echo/invoke", "/lakefn/functions/x/invoke",
                          "/lakefn/invocations", "/%00", "/echo/../read", "//", "/read?x=%ff"])  # fmt: skip
_token = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20
)
_header_names = _token.filter(lambda s: all(c not in s for c in '()<>@,;:\\"/[]?={}'))
_header_values = st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=_methods,
    path=_paths,
    headers=st.dictionaries(_header_names, _header_values, max_size=8),
    body=st.one_of(st.binary(max_size=2000), st.just(b'{"name": "x"}'), st.just(b"[1]")),
    length=st.sampled_from([None, None, None, None, None, "abc", -1, 0, 1, 1001, 5000]),
    chunked=st.booleans(),
)
def test_fuzzed_requests_get_a_status_with_a_json_body_and_the_server_lives(
    server, caplog, method, path, headers, body, length, chunked
) -> None:
    headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length",
               "transfer-encoding", "connection", "expect", "upgrade", "te", "trailer")}  # fmt: skip
    if length is not None and not chunked:
        headers["Content-Length"] = str(length).encode()
    content = _chunked(body) if chunked else body
    try:
        with httpx.Client(base_url=server.url, timeout=0.5) as client:
            r = client.request(method, path, headers=headers, content=content)
    except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.WriteError,
            httpx.ReadError, httpx.LocalProtocolError, h11.LocalProtocolError):  # fmt: skip
        r = None  # a lying Content-Length: the connection is dropped or the server waits
    if r is not None:
        assert 200 <= r.status_code < 600
        if method != "HEAD" and r.status_code != 204:
            if r.headers.get("content-type", "").startswith("text/html"):
                assert path in ("/", "//")  # the console at /, and nothing else, is a page
            else:
                json.loads(r.content)  # every other answer, ours or uvicorn's, is JSON
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert "Exception in ASGI application" not in caplog.text
