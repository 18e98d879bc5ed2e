"""Who may see and do what, over every guarded route and every kind of caller, on the real app.

One policy (`lakefn.access`) guards the console, its actions, /lakefn/* and the admin invoke;
these tests call the real app (its lifespan running: timers, table watcher, log capture) as
each kind of caller, through httpx's ASGI transport with the caller's address."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

import httpx
import pytest

from lakefn.access import COOKIE, Grant, Role, console_cookie, cookie_matches, cross_site
from lakefn.server import create_app
from lakefn.sources.local import create_table

APP = """\
access:
  admins: [Ada@Example.com]
  viewers: {viewers}
tables: {{source: local, local_root: catalog}}
state: state.db
functions:
  - name: echo
    trigger: {{type: http, method: POST, endpoint: /echo}}
  - name: fails
    trigger: {{type: http, method: GET, endpoint: /fails}}
  - name: watch
    trigger: {{type: unity_table, check_interval: 3600}}
    table_name: main.sales.orders
"""

FAILS = """\
def main(event):
    event.log.warning("the log line s3cr3t-log")
    raise ValueError("password s3cr3t")
"""

TOKEN = "t0ken-for-tests"
APP_HOST = {"X-Forwarded-Host": "my-app.databricksapps.com", "Host": "my-app.databricksapps.com"}


@dataclass(frozen=True)
class Caller:
    name: str
    role: str  # what the policy must make of it: admin | viewer | none
    host: str = "127.0.0.1"
    headers: dict[str, str] = field(default_factory=dict)
    as_app: bool = False
    viewers: str = "admins"


def app_user(email: str) -> dict[str, str]:
    # What the Databricks Apps proxy sends with every request.
    return {"X-Forwarded-Email": email, **APP_HOST}


CALLERS = [
    Caller("loopback", "admin", headers={"Host": "127.0.0.1:8000"}),
    Caller("loopback-localhost", "admin", "::1", {"Host": "localhost:8000"}),
    Caller("token", "admin", "10.1.2.3", {"Authorization": f"Bearer {TOKEN}"}),
    Caller("token-cookie", "admin", "10.1.2.3", {"Cookie": f"{COOKIE}={console_cookie(TOKEN)}"}),
    Caller("wrong-token", "none", "10.1.2.3", {"Authorization": "Bearer nope"}),
    Caller("wrong-cookie", "none", "10.1.2.3", {"Cookie": f"{COOKIE}={'0' * 64}"}),
    Caller("remote", "none", "10.1.2.3"),
    Caller("proxied", "none", headers={"X-Forwarded-For": "203.0.113.9", "Host": "127.0.0.1"}),
    Caller("dns-rebinding", "none", headers={"Host": "evil.example.com:8000"}),
    Caller("app-admin", "admin", headers=app_user("ada@example.com"), as_app=True),
    Caller("app-viewer", "viewer", headers=app_user("bob@example.com"), as_app=True, viewers="all"),
    Caller("app-stranger", "none", headers=app_user("bob@example.com"), as_app=True),
    Caller("app-no-email", "none", headers=APP_HOST, as_app=True, viewers="all"),
    Caller("spoofed-outside-app", "none", headers=app_user("ada@example.com")),
    Caller("spoofed-remote", "none", "10.1.2.3", app_user("ada@example.com"), viewers="all"),
]

READS = ["/", "/lakefn/console/live", "/lakefn/functions", "/lakefn/invocations", "/lakefn/tables"]
ACTIONS = ["/lakefn/console/run", "/lakefn/console/simulate", "/lakefn/functions/echo/invoke"]


@pytest.fixture
def make_app(project, monkeypatch):
    """The real app for a project with an HTTP, a failing and a table function, started."""
    monkeypatch.setenv("LAKEFN_ADMIN_TOKEN", TOKEN)
    monkeypatch.delenv("DATABRICKS_APP_NAME", raising=False)

    def make(viewers: str):
        project.config(APP.format(viewers=viewers))
        project.function("echo", "def main(event):\n    return {'got': event.json()}\n")
        project.function("fails", FAILS)
        project.function("watch", "def main(event):\n    return len(event.commits)\n")
        create_table(project.root / "catalog", "main.sales.orders", [{"id": 1}])
        return create_app(runtime=project.runtime())

    return make


class Session:
    def __init__(self, app) -> None:
        self.app = app

    async def call(self, caller: Caller, method: str, path: str, **kwargs) -> httpx.Response:
        transport = httpx.ASGITransport(app=self.app, client=(caller.host, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            headers = {**caller.headers, **kwargs.pop("headers", {})}
            return await client.request(method, path, headers=headers, **kwargs)

    async def csrf(self, caller: Caller) -> str:
        page = await self.call(caller, "GET", "/")
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found, f"{caller.name}: no action form on the page"
        return found.group(1)


async def act(session: Session, caller: Caller, path: str, csrf: str) -> httpx.Response:
    if path.endswith("/invoke"):
        return await session.call(caller, "POST", path, json={"a": 1})
    form = {"csrf": csrf, "function": "echo", "payload": '{"a": 1}'}
    if path.endswith("simulate"):
        form = {"csrf": csrf, "function": "watch", "operation": "MERGE"}
    return await session.call(caller, "POST", path, data=form)


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c.name)
async def test_every_route_answers_each_caller_as_the_policy_says(
    make_app, monkeypatch, caller: Caller
) -> None:
    app = make_app(caller.viewers)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        await runtime.invoke("fails")  # an error and a log line whose text must not leak
        if caller.as_app:
            monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
        session = Session(app)
        # A form token from this caller's own page when it has one, else a local admin's.
        csrf = await session.csrf(caller if caller.role == "admin" else Caller("local", "admin"))

        wrong = []
        for path in READS:
            r = await session.call(caller, "GET", path)
            allowed = caller.role in ("admin", "viewer")
            if r.status_code != (200 if allowed else 403):
                wrong.append(f"GET {path}: {r.status_code}")
            if caller.role != "admin" and ("s3cr3t" in r.text):
                wrong.append(f"GET {path}: error text or log lines shown to a {caller.role}")
            if caller.role == "none" and ("echo" in r.text or "main.sales" in r.text):
                wrong.append(f"GET {path}: data shown to a stranger")
            if caller.role == "none" and path == "/" and "access" not in r.text:
                wrong.append("GET /: the 403 page does not say how to get access")
        for path in ACTIONS:
            r = await act(session, caller, path, csrf)
            if r.status_code != (200 if caller.role == "admin" else 403):
                wrong.append(f"POST {path}: {r.status_code} {r.text[:200]}")
        assert not wrong, "\n".join(wrong)

        if caller.role == "admin":
            page = (await session.call(caller, "GET", "/")).text
            assert "ValueError: password s3cr3t" in page and "s3cr3t-log" in page
            assert 'name="csrf"' in page
        if caller.role == "viewer":
            page = (await session.call(caller, "GET", "/")).text
            assert "ValueError" in page and "Run" not in re.sub(
                r"<script>.*</script>", "", page, flags=re.S
            )
            assert 'name="csrf"' not in page


async def test_actions_refuse_what_another_site_sent(make_app) -> None:
    app = make_app("admins")
    async with app.router.lifespan_context(app):
        session = Session(app)
        local = Caller("local", "admin", headers={"Host": "127.0.0.1:8000"})
        csrf = await session.csrf(local)
        form = {"csrf": csrf, "function": "echo", "payload": "{}"}
        run = "/lakefn/console/run"
        ok = await session.call(
            local,
            "POST",
            run,
            data=form,
            headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://127.0.0.1:8000"},
        )
        assert ok.status_code == 200 and "ok" in ok.text
        refused = {
            "no token": (await session.call(local, "POST", run, data={**form, "csrf": ""})),
            "forged token": (
                await session.call(local, "POST", run, data={**form, "csrf": "0" * 64})
            ),
            "cross-site": await session.call(
                local, "POST", run, data=form, headers={"Sec-Fetch-Site": "cross-site"}
            ),
            "same-site": await session.call(
                local, "POST", run, data=form, headers={"Sec-Fetch-Site": "same-site"}
            ),
            "other origin": await session.call(
                local, "POST", run, data=form, headers={"Origin": "https://evil.example.com"}
            ),
            "opaque origin": await session.call(
                local, "POST", run, data=form, headers={"Origin": "null"}
            ),
            "admin invoke, cross-site": await session.call(
                local,
                "POST",
                "/lakefn/functions/echo/invoke",
                json={},
                headers={"Sec-Fetch-Site": "cross-site"},
            ),
        }
        assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 403)
        assert "reload the page" in refused["forged token"].text
        # none of them ran: the only echo invocation is the allowed one
        assert [i.function for i in app.state.runtime.journal.entries()].count("echo") == 1


async def test_a_form_token_is_bound_to_whom_it_was_rendered_for(make_app, monkeypatch) -> None:
    app = make_app("admins")
    monkeypatch.setenv("DATABRICKS_APP_NAME", "my-app")
    project_admins = app.state.runtime.config.access.admins
    assert project_admins == ("ada@example.com",)
    async with app.router.lifespan_context(app):
        session = Session(app)
        ada = Caller("ada", "admin", headers=app_user("ada@example.com"), as_app=True)
        token_caller = Caller("token", "admin", "10.1.2.3", {"Authorization": f"Bearer {TOKEN}"})
        adas = await session.csrf(ada)
        form = {"csrf": adas, "function": "echo", "payload": "{}"}
        assert (
            await session.call(ada, "POST", "/lakefn/console/run", data=form)
        ).status_code == 200
        other = await session.call(token_caller, "POST", "/lakefn/console/run", data=form)
        assert other.status_code == 403


async def test_a_browser_trades_the_admin_token_for_a_cookie(make_app) -> None:
    app = make_app("admins")
    async with app.router.lifespan_context(app):
        session = Session(app)
        # Through a notebook's proxy: relayed, so not local; the link carries the token.
        proxied = Caller(
            "notebook", "none", headers={"X-Forwarded-For": "10.0.0.1", "Host": "127.0.0.1"}
        )
        wrong = await session.call(proxied, "GET", "/?token=nope")
        assert wrong.status_code == 403 and "LAKEFN_ADMIN_TOKEN" in wrong.text
        r = await session.call(proxied, "GET", f"/?token={TOKEN}")
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        assert TOKEN not in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        value = cookie.split(";")[0]
        signed_in = Caller("notebook", "admin", headers={**proxied.headers, "Cookie": value})
        page = await session.call(signed_in, "GET", "/")
        assert page.status_code == 200 and "echo" in page.text


async def test_the_cookie_is_scoped_to_the_proxy_prefix(make_app) -> None:
    app = make_app("admins")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(
            app=app, client=("127.0.0.1", 5000), root_path="/driver-proxy/o/1/2/8000"
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            r = await client.get(f"/?token={TOKEN}", headers={"X-Forwarded-Proto": "https"})
        assert r.headers["location"] == "/driver-proxy/o/1/2/8000/"
        cookie = r.headers["set-cookie"]
        assert "Path=/driver-proxy/o/1/2/8000/" in cookie and "Secure" in cookie


async def test_the_page_links_back_through_the_proxy_prefix(make_app) -> None:
    app = make_app("admins")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(
            app=app, client=("127.0.0.1", 5000), root_path="/user/ada/proxy/8000"
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            page = (await client.get("/")).text
        urls = re.findall(r'\s(?:action|href|data-src)="([^"]*)"', page)
        assert urls and all(u.startswith("/user/ada/proxy/8000/") for u in urls), urls


async def test_a_project_function_at_root_keeps_it(project) -> None:
    project.config("""\
        functions:
          - name: home
            trigger: {type: http, method: GET, endpoint: /}
        """)
    project.function("home", "def main(event):\n    return {'home': True}\n")
    app = create_app(runtime=project.runtime())
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        assert (await client.get("/")).json() == {"home": True}
        assert (await client.get("/lakefn/console/live")).status_code == 200


async def test_without_jinja2_the_console_says_what_to_install(project, monkeypatch) -> None:
    from lakefn.console import render

    project.config("functions: []\n")
    app = create_app(runtime=project.runtime())
    render.environment.cache_clear()
    monkeypatch.setitem(sys.modules, "jinja2", None)  # as if not installed
    try:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            r = await client.get("/")
        assert r.status_code == 500 and "pip install 'jinja2>=3.1'" in r.text
    finally:
        render.environment.cache_clear()


# -- the two checks a console action passes, each on its own ---------------------------------


def test_only_the_console_cookie_itself_lets_a_caller_in() -> None:
    good = console_cookie(TOKEN)
    assert cookie_matches(f"theme=dark; {COOKIE}={good}; other=1", TOKEN)
    assert cookie_matches(f"{COOKIE}= {good} ", TOKEN)
    assert not cookie_matches("theme=dark; other=1", TOKEN)  # cookies, none of them ours
    assert not cookie_matches(f"{COOKIE}={good[:-1]}x", TOKEN)
    assert not cookie_matches(f"{COOKIE}={good[:-1]}é", TOKEN)  # not even ASCII
    assert not cookie_matches(f"x{COOKIE}={good}", TOKEN)
    assert not cookie_matches(None, TOKEN)
    assert not cookie_matches(f"{COOKIE}={console_cookie('  ')}", "  ")  # a blank token: none


VIA_APP = Grant(Role.ADMIN, "app", "a@b.c")
VIA_LOOPBACK = Grant(Role.ADMIN, "loopback")


@pytest.mark.parametrize(
    ("headers", "grant", "refused"),
    [
        ({"sec-fetch-site": "same-origin"}, VIA_LOOPBACK, None),
        ({"sec-fetch-site": "none"}, VIA_LOOPBACK, None),  # typed in, or a bookmark
        ({"sec-fetch-site": "NONE"}, VIA_LOOPBACK, None),
        (
            {"sec-fetch-site": "same-site"},
            VIA_LOOPBACK,
            "a page of another site (same-site) sent this request",
        ),
        (
            {"sec-fetch-site": "cross-site"},
            VIA_LOOPBACK,
            "a page of another site (cross-site) sent this request",
        ),
        # older browsers send only Origin, compared with the host the browser asked for
        ({"origin": "http://Localhost:8000", "host": "localhost:8000"}, VIA_LOOPBACK, None),
        ({"origin": "http://localhost:8000", "host": "LOCALHOST:8000"}, VIA_LOOPBACK, None),
        (
            {"origin": "https://evil.example.com", "host": "localhost:8000"},
            VIA_LOOPBACK,
            "the request came from https://evil.example.com, not from this server's pages",
        ),
        (
            {"origin": "null", "host": "localhost:8000"},
            VIA_LOOPBACK,
            "the request came from an opaque origin",
        ),
        # behind the Databricks Apps proxy, that host is the forwarded one
        (
            {
                "origin": "https://app-1.aws.databricksapps.com",
                "host": "0.0.0.0:8000",
                "x-forwarded-host": "app-1.aws.databricksapps.com",
            },
            VIA_APP,
            None,
        ),
        (
            {
                "origin": "https://evil.example.com",
                "host": "0.0.0.0:8000",
                "x-forwarded-host": "app-1.aws.databricksapps.com",
            },
            VIA_APP,
            "the request came from https://evil.example.com, not from this server's pages",
        ),
        # ...and only there: a local caller cannot name the host it pleases
        (
            {
                "origin": "https://evil.example.com",
                "host": "localhost:8000",
                "x-forwarded-host": "evil.example.com",
            },
            VIA_LOOPBACK,
            "the request came from https://evil.example.com, not from this server's pages",
        ),
        ({}, VIA_LOOPBACK, None),  # curl, httpx, the notebook: no browser, nothing to forge
    ],
)
def test_a_console_action_from_another_sites_page_is_refused(
    headers: dict[str, str], grant: Grant, refused: str | None
) -> None:
    said = cross_site(headers, grant)
    assert said == (None if refused is None else f"refused: {refused}")
