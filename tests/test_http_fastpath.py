"""The fast path to function routes answers exactly as the full FastAPI stack does.

Each test runs the same project twice under real uvicorn on loopback: as `create_app` builds
it (static function routes dispatched by a dict lookup) and with a project middleware added,
which sends every request through FastAPI's stack and router. Whatever a client can see must
match: status, headers, body, for every kind of request the lookup could get wrong.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from lakefn._limits import PROTOCOL
from lakefn.server import create_app

APP = """\
http:
  max_body_bytes: 100
functions:
  - name: read
    trigger: {type: http, method: GET, endpoint: /read}
  - name: echo
    trigger: {type: http, method: POST, endpoint: /echo}
  - name: item
    trigger: {type: http, method: GET, endpoint: "/items/{item_id}"}
  - name: special
    trigger: {type: http, method: GET, endpoint: /items/special}
  - name: me
    trigger: {type: http, method: GET, endpoint: /users/me}
  - name: user
    trigger: {type: http, method: GET, endpoint: "/users/{user_id}"}
  - name: slash
    trigger: {type: http, method: GET, endpoint: /slash/}
  - name: text
    trigger: {type: http, method: PUT, endpoint: /text}
  - name: nothing
    trigger: {type: http, method: DELETE, endpoint: /read}
  - name: teapot
    trigger: {type: http, method: GET, endpoint: /teapot}
  - name: boom
    trigger: {type: http, method: GET, endpoint: /boom}
  - name: headers
    trigger: {type: http, method: GET, endpoint: /headers}
"""

READ = """\
def main(event):
    return {
        "method": event.method, "path": event.path, "query": list(event.query.multi_items()),
        "path_params": dict(event.path_params), "user": event.user,
        "custom": event.headers.get("X-Custom"), "body": event.text(),
    }
"""


@pytest.fixture
def project_dir(project):
    project.config(APP)
    project.function("read", READ)
    project.function("item", READ)
    project.function("special", "def main(event):\n    return 'special'\n")
    project.function("slash", READ)
    project.function("me", "def main(event):\n    return 'me'\n")
    project.function("user", READ)
    project.function("echo", "def main(event):\n    return {'got': event.json()}\n")
    project.function("text", "async def main(event):\n    return event.text().upper()\n")
    project.function("nothing", "async def main(event):\n    return None\n")
    project.function(
        "teapot", "import lakefn\n\ndef main(event):\n    raise lakefn.HttpError(418, 'tea')\n"
    )
    project.function("boom", "async def main(event):\n    raise ValueError('kaput')\n")
    project.function(
        "headers",
        "def main(event):\n"
        "    raw = event.headers.raw\n"
        "    return [len(raw), sum(len(k) + len(v) + 4 for k, v in raw)]\n",
    )
    return project


class Passthrough:
    """A project's own middleware: its presence must send requests through the full stack."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@contextlib.contextmanager
def serving(app: Any, root_path: str = "", http: Any = PROTOCOL) -> Iterator[httpx.Client]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        access_log=False,
        ws="none",
        http=http,
        root_path=root_path,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = sock.getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextlib.contextmanager
def both(project, root_path: str = "") -> Iterator[tuple[httpx.Client, httpx.Client, Any]]:
    """The project served with the fast path and without it."""
    fast_app = create_app(runtime=project.runtime())
    full_app = create_app(runtime=project.runtime())
    full_app.add_middleware(Passthrough)
    try:
        with serving(fast_app, root_path) as fast, serving(full_app, root_path) as full:
            yield fast, full, fast_app
    finally:
        fast_app.state.runtime.close()
        full_app.state.runtime.close()


def seen(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """What a client sees, less what differs between two servers by nature."""
    base = str(response.request.url.copy_with(path="/", query=None)).rstrip("/")
    headers = [
        (k, v.replace(base, "<server>"))  # a redirect names its server
        for k, v in response.headers.multi_items()
        if k not in ("date", "server")
    ]
    body = response.content
    if response.headers.get("content-type", "").startswith("text/html"):
        # The console (`//read` is `/` to uvicorn): each server shows its own invocations.
        headers = [(k, v) for k, v in headers if k != "content-length"]
        body = b"<the console>"
    elif response.status_code == 500:  # each server numbers its invocations itself
        data = response.json()
        data["invocation_id"] = "?"
        body = repr(sorted(data.items())).encode()
    return response.status_code, headers, body


def chunked(data: bytes) -> Iterator[bytes]:
    yield data[:3]
    yield data[3:]


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/read", {}),
    ("GET", "/read?x=1&x=2&y=a%20b&empty=&flag", {}),
    ("HEAD", "/read", {}),
    (
        "GET",
        "/read",
        {"headers": {"X-Forwarded-Email": "ada@example.com", "X-Custom": "\xe9".encode("latin-1")}},
    ),
    ("GET", "/read", {"headers": {"X-Forwarded-User": "ada", "x-forwarded-email": ""}}),
    ("GET", "/read", {"content": b"a body on a GET"}),
    ("POST", "/read", {}),  # 405, and its Allow header
    ("PATCH", "/read", {}),
    ("DELETE", "/read", {}),  # another function on the same path: 204
    ("GET", "/read/", {}),  # redirect to the path without the slash
    ("GET", "/slash", {}),  # and to the one with it
    ("GET", "/slash/", {}),
    ("GET", "/re%61d", {}),  # percent-encoded: the path is decoded before routing
    ("GET", "/READ", {}),
    ("GET", "/read%2F", {}),
    ("GET", "//read", {}),
    ("GET", "/items/7", {}),
    ("GET", "/items/special", {}),  # declared after /items/{item_id}: that route wins
    ("GET", "/users/me", {}),  # declared before /users/{user_id}: it wins
    ("GET", "/users/7", {}),
    ("HEAD", "/users/me", {}),
    ("POST", "/echo", {"json": {"a": [1, 2]}}),
    ("POST", "/echo", {"chunks": b'{"chunked": true}'}),
    ("POST", "/echo", {"content": b"x" * 101}),  # past max_body_bytes: 413
    ("POST", "/echo", {"chunks": b"y" * 101}),
    ("POST", "/echo", {"content": b"not json"}),
    ("PUT", "/text", {"content": "grüße".encode()}),
    ("GET", "/teapot", {}),
    ("GET", "/boom", {}),
    ("GET", "/read", {"headers": {f"x-h{i}": "v" for i in range(101)}}),  # 431
    ("GET", "/read", {"headers": {"x-big": "v" * 70_000}}),
    ("GET", "/healthz", {}),
    ("GET", "/nowhere", {}),
]


@pytest.mark.parametrize("root_path", ["", "/prefix"])
def test_static_routes_answer_as_the_full_stack_does(project_dir, root_path) -> None:
    with both(project_dir, root_path) as (fast, full, fast_app):
        prefixes = ["", root_path] if root_path else [""]
        for method, path, kwargs in REQUESTS:
            for prefix in prefixes:
                url = prefix + path
                got = seen(fast.request(method, url, **_fresh(kwargs)))
                expected = seen(full.request(method, url, **_fresh(kwargs)))
                assert got == expected, f"{method} {url}"
        # and the fast path did serve them: the lookup holds the static routes...
        table = _table(fast_app)
        assert ("GET", "/read") in table and ("HEAD", "/read") in table
        assert ("DELETE", "/read") in table and ("GET", "/slash/") in table
        assert ("GET", "/users/me") in table
        # ...and answers them (behind a proxy prefix too) without the stack behind it
        stack, passed = fast_app.middleware_stack, []

        async def recorded(scope: Any, receive: Any, send: Any) -> None:
            passed.append(scope["path"])
            await stack(scope, receive, send)

        fast_app.middleware_stack = recorded
        assert fast.get("/read").json()["path"] == root_path + "/read"  # the proxy stripped it
        assert passed == []
        assert fast.get("/healthz").status_code == 200
        assert passed == [root_path + "/healthz"]


def _fresh(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A chunked body (no Content-Length) is a generator: each request gets its own."""
    if "chunks" not in kwargs:
        return kwargs
    rest = {k: v for k, v in kwargs.items() if k != "chunks"}
    return {**rest, "content": chunked(kwargs["chunks"])}


def _table(app: Any) -> dict[tuple[str, str], Any]:
    return dict(app.fast_routes)


def test_a_route_shadowed_by_an_earlier_one_is_not_taken_by_the_lookup(project_dir) -> None:
    with both(project_dir) as (fast, _, fast_app):
        assert fast.get("/items/special").json()["path_params"] == {"item_id": "special"}
        assert ("GET", "/items/special") not in _table(fast_app)


def test_a_catch_all_declared_first_keeps_every_path(project, serve) -> None:
    project.config(
        """\
        functions:
          - name: anything
            trigger: {type: http, method: GET, endpoint: "/{rest:path}"}
          - name: exact
            trigger: {type: http, method: GET, endpoint: /exact}
        """
    )
    project.function("anything", "def main(event):\n    return {'caught': event.path}\n")
    project.function("exact", "def main(event):\n    return 'exact'\n")
    live = serve(project)
    assert live.client.get("/exact").json() == {"caught": "/exact"}
    assert live.client.get("/healthz").json()["status"] == "ok"


def test_a_project_middleware_sees_function_requests(project_dir) -> None:
    """A project that adds middleware to the app lakefn built gets it run on every request."""

    class Stamp(Passthrough):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            async def stamped(message: Any) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message["headers"], (b"x-stamp", b"yes")]
                await send(message)

            await self.app(scope, receive, stamped)

    app = create_app(runtime=project_dir.runtime())
    app.add_middleware(Stamp)
    try:
        with serving(app) as client:
            assert client.get("/read").headers["x-stamp"] == "yes"
    finally:
        app.state.runtime.close()


def test_the_event_of_a_fast_route_carries_the_request(project_dir, serve) -> None:
    live = serve(project_dir)
    data = live.client.get(
        "/read?q=1&q=2", headers={"X-Custom": "c", "X-Forwarded-Email": "ada@example.com"}
    ).json()
    assert data == {
        "method": "GET",
        "path": "/read",
        "query": [["q", "1"], ["q", "2"]],
        "path_params": {},
        "user": "ada@example.com",
        "custom": "c",
        "body": "",
    }


def test_a_sync_function_whose_stopiteration_escapes_fails_instead_of_hanging(
    project, serve
) -> None:
    """`next()` on an empty iterator in a sync function: a 500 like any error (an async
    function's becomes a RuntimeError the same way), not a request that never ends."""
    project.config(
        """\
        functions:
          - name: first
            trigger: {type: http, method: GET, endpoint: /first}
        """
    )
    project.function("first", "def main(event):\n    return next(iter([]))\n")
    live = serve(project)
    r = live.client.get("/first")
    assert r.status_code == 500 and "failed" in r.json()["error"]
    (entry,) = live.runtime.journal.entries(function="first")
    assert entry.status == "error" and "StopIteration" in (entry.error or "")


def test_the_header_limits_hold_on_the_fast_path_under_plain_uvicorn(project_dir) -> None:
    # `uvicorn app:app` counts no header bytes itself (lakefn serve does): the fast path,
    # which skips the middleware that checks them, must check them at the same bounds.
    from lakefn._limits import MAX_HEADER_BYTES, MAX_HEADERS

    fast_app = create_app(runtime=project_dir.runtime())
    full_app = create_app(runtime=project_dir.runtime())
    full_app.add_middleware(Passthrough)
    try:
        with (
            serving(fast_app, http="httptools") as fast,
            serving(full_app, http="httptools") as full,
        ):
            count, size = fast.get("/headers", headers={"x-pad": ""}).json()
            assert ("GET", "/headers") in _table(fast_app)  # answered by the lookup
            fill = {"x-pad": "p" * (MAX_HEADER_BYTES - size)}
            more = {f"x-{i}": "" for i in range(MAX_HEADERS - count)}
            cases = {
                "bytes at the limit": (fill, 200),
                "one byte more": ({"x-pad": fill["x-pad"] + "p"}, 431),
                "headers at the limit": ({"x-pad": "", **more}, 200),
                "one header more": ({"x-pad": "", **more, "x-last": ""}, 431),
            }
            for name, (headers, status) in cases.items():
                got, expected = (
                    fast.get("/headers", headers=headers),
                    full.get("/headers", headers=headers),
                )
                assert (got.status_code, got.content) == (expected.status_code, expected.content), (
                    name
                )
                assert got.status_code == status, name
                if status == 431:
                    assert "header" in got.json()["detail"], name
    finally:
        fast_app.state.runtime.close()
        full_app.state.runtime.close()
