"""The console in a real browser: Playwright driving Debian's Chromium against the real server
(uvicorn on 127.0.0.1). Screenshots go to tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from lakefn.sources.local import create_table

from .test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

#: how long the page may take to show what the server already has (a failure bound, not a
#: measurement: a loaded machine is slow)
WAIT_MS = 30_000

APP = """\
access:
  admins: [ada@example.com]
  viewers: {viewers}
tables: {{source: local, local_root: catalog}}
state: state.db
functions:
  - name: hello
    trigger: {{type: http, method: POST, endpoint: /hello}}
  - name: nightly
    trigger: {{type: timer, schedule: "30 2 * * *", timezone: Europe/Amsterdam}}
  - name: orders_feed
    trigger: {{type: unity_table, check_interval: 3600, operations: [WRITE, MERGE]}}
    table_name: main.sales.orders
  - name: broken_feed
    trigger: {{type: unity_table, check_interval: 0.2, start: earliest}}
    table_name: main.sales.returns
"""

HELLO = """\
def main(event):
    name = (event.json() or {}).get("name", "world")
    event.log.warning("greeting %s", name)
    return {"hello": name}
"""
NIGHTLY = "def main(event):\n    event.log.warning('nightly ran')\n"
ORDERS = """\
def main(event):
    event.log.warning("got %d commits", len(event.commits))
    return {"commits": [c.operation for c in event.commits]}
"""
BROKEN = """\
def main(event):
    raise RuntimeError("the ledger at /secret/path refused version %d" % event.commits[0].version)
"""


@pytest.fixture
def console(project, serve, monkeypatch):
    """Start the project's server as `viewers` says; returns the server."""
    monkeypatch.delenv("DATABRICKS_APP_NAME", raising=False)
    monkeypatch.delenv("LAKEFN_ADMIN_TOKEN", raising=False)

    def start(viewers: str = "admins", *, as_app: bool = False):
        project.config(APP.format(viewers=viewers))
        project.function("hello", HELLO)
        project.function("nightly", NIGHTLY)
        project.function("orders_feed", ORDERS)
        project.function("broken_feed", BROKEN)
        catalog = project.root / "catalog"
        create_table(catalog, "main.sales.orders", [{"id": 1, "amount": 9.5}])
        create_table(catalog, "main.sales.returns", [{"id": 1}])
        if as_app:
            monkeypatch.setenv("DATABRICKS_APP_NAME", "sales-fn")
        return serve(project)

    return start


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def open_console(browser: Browser, url: str, **options) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, **options)
    page.goto(url + "/")
    # A mark the page keeps only as long as it is not loaded again.
    page.evaluate("window.__notReloaded = true")
    return page


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def test_the_console_shows_functions_tables_and_new_invocations_without_a_reload(
    console, browser
) -> None:
    from playwright.sync_api import expect

    server = console()
    page = open_console(browser, server.url)
    functions = page.locator("#functions")
    expect(functions.locator("tr[data-function=hello]")).to_contain_text("POST /hello")
    nightly = functions.locator("tr[data-function=nightly]")
    expect(nightly).to_contain_text("30 2 * * *")
    expect(nightly).to_contain_text("Europe/Amsterdam")
    expect(nightly).to_contain_text("next")  # the next fire time
    orders = functions.locator("tr[data-function=orders_feed]")
    expect(orders).to_contain_text("main.sales.orders")
    expect(orders).to_contain_text("WRITE, MERGE")
    table_row = page.locator("#tables tr[data-function=orders_feed]")
    expect(table_row).to_have_attribute("data-state", "healthy", timeout=WAIT_MS)
    expect(page.locator("#project")).to_contain_text(str(server.runtime.project.path))

    # A call from outside the browser shows up in the open page.
    reply = httpx.post(f"{server.url}/hello", json={"name": "Grace"})
    assert reply.json() == {"hello": "Grace"}
    entry = page.locator("#invocation-list details.inv[data-function=hello]")
    expect(entry).to_have_count(1, timeout=WAIT_MS)
    expect(functions.locator("tr[data-function=hello]")).to_contain_text("1 call")
    entry.locator("summary").click()
    expect(entry).to_contain_text("greeting Grace")  # what the function logged
    assert not_reloaded(page)

    # The filter narrows the live list.
    page.select_option("#filters select[name=status]", "error")
    expect(page.locator("#invocation-list details.inv[data-function=hello]")).to_have_count(
        0, timeout=WAIT_MS
    )
    expect(
        page.locator("#invocation-list details.inv[data-function=broken_feed]").first
    ).to_be_visible(timeout=WAIT_MS)
    assert "status=error" in page.url and not_reloaded(page)
    shot(page, "live")


def test_run_and_simulate_show_their_results(console, browser) -> None:
    from playwright.sync_api import expect

    server = console()
    page = open_console(browser, server.url)
    page.select_option("form[data-action=run] select[name=function]", "hello")
    page.fill("form[data-action=run] textarea[name=payload]", '{"name": "Ada"}')
    page.get_by_role("button", name="Run").click()
    result = page.locator("#result")
    expect(result).to_contain_text("Ran hello", timeout=WAIT_MS)
    expect(result).to_contain_text('"hello": "Ada"')
    expect(result.locator(".badge")).to_have_text("ok")
    expect(result).to_contain_text("greeting Ada")

    page.select_option("form[data-action=simulate] select[name=function]", "orders_feed")
    page.fill("form[data-action=simulate] input[name=operation]", "MERGE")
    page.get_by_role("button", name="Simulate").click()
    expect(result).to_contain_text("Simulated MERGE for orders_feed", timeout=WAIT_MS)
    expect(result).to_contain_text('"MERGE"')

    # A bad payload is said plainly, and nothing runs.
    page.fill("form[data-action=run] textarea[name=payload]", "{nope")
    page.get_by_role("button", name="Run").click()
    expect(result).to_contain_text("not valid JSON", timeout=WAIT_MS)
    assert not_reloaded(page)
    entries = page.locator("#invocation-list details.inv[data-function=orders_feed]")
    expect(entries.first).to_contain_text("simulated", timeout=WAIT_MS)

    # Rewind a table from its row, in the live part that refreshes meanwhile.
    orders = page.locator("#tables tr[data-function=orders_feed]")
    expect(orders).to_have_attribute("data-state", "healthy", timeout=WAIT_MS)
    orders.locator("details.rewind summary").click()
    orders.locator("input[name=version]").fill("-1")
    orders.get_by_role("button", name="Set checkpoint").click()
    expect(result).to_contain_text("Rewound orders_feed", timeout=WAIT_MS)
    expect(result).to_contain_text("checkpoint 0 → -1")
    expect(result).to_contain_text("version 0 is delivered again")
    assert not_reloaded(page)
    shot(page, "actions")


def test_without_javascript_the_page_reads_and_run_still_works(console, browser) -> None:
    from playwright.sync_api import expect

    server = console()
    httpx.post(f"{server.url}/hello", json={"name": "Lin"})
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(server.url + "/")
    expect(page.locator("#invocation-list details.inv[data-function=hello]")).to_have_count(1)
    page.fill("form[data-action=run] textarea[name=payload]", '{"name": "Kim"}')
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result")).to_contain_text('"hello": "Kim"')
    context.close()


def test_a_failing_table_function_shows_as_failing_with_its_error(console, browser) -> None:
    from playwright.sync_api import expect

    server = console()
    page = open_console(browser, server.url)
    row = page.locator("#tables tr[data-function=broken_feed]")
    expect(row).to_have_attribute("data-state", "failing", timeout=WAIT_MS)
    expect(row.locator(".badge")).to_have_text("failing")
    expect(row).to_contain_text("RuntimeError: the ledger at /secret/path refused version 0")
    expect(row).to_contain_text("next try in")
    shot(page, "failing")


def test_a_viewer_of_a_databricks_app_sees_no_error_messages(console, browser) -> None:
    from playwright.sync_api import expect

    server = console("all", as_app=True)
    headers = {"X-Forwarded-Email": "bob@example.com", "X-Forwarded-Host": "sales-fn.example.com"}
    page = open_console(browser, server.url, extra_http_headers=headers)
    row = page.locator("#tables tr[data-function=broken_feed]")
    expect(row).to_have_attribute("data-state", "failing", timeout=WAIT_MS)
    expect(row).to_contain_text("RuntimeError")
    expect(page.locator("header")).to_contain_text("bob@example.com")
    expect(page.locator("header")).to_contain_text("viewer")
    entry = page.locator("#invocation-list details.inv[data-function=broken_feed]").first
    expect(entry).to_be_visible(timeout=WAIT_MS)
    entry.locator("summary").click()
    text = page.locator("body").inner_text()
    assert "/secret/path" not in text and "ledger" not in text
    assert page.locator("#actions").count() == 0  # read-only
    # The page's state warning: a Databricks App's disk does not survive a restart.
    expect(page.locator("#project .warning")).to_contain_text("wiped on every restart")
    shot(page, "viewer")


def test_a_user_the_app_does_not_name_gets_a_403_page(console, browser) -> None:
    from playwright.sync_api import expect

    server = console("admins", as_app=True)
    page = browser.new_page(extra_http_headers={"X-Forwarded-Email": "eve@example.com"})
    response = page.goto(server.url + "/")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("You don't have access to this console")
    expect(page.locator("body")).to_contain_text("eve@example.com")
    expect(page.locator("body")).to_contain_text("access.admins")
    text = page.locator("body").inner_text()
    assert "hello" not in text and "main.sales" not in text
    shot(page, "forbidden")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_narrow_window_needs_no_sideways_scrolling(console, browser, scheme) -> None:
    from playwright.sync_api import expect

    server = console()
    httpx.post(f"{server.url}/hello", json={"name": "a rather long name for a narrow window"})
    page = browser.new_page(viewport={"width": 400, "height": 800}, color_scheme=scheme)
    page.goto(server.url + "/")
    expect(page.locator("#tables tr[data-function=broken_feed]")).to_have_attribute(
        "data-state", "failing", timeout=WAIT_MS
    )
    page.locator("#invocation-list details.inv summary").first.click()
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (background == "rgb(17, 23, 28)") == (scheme == "dark")
    shot(page, f"narrow-{scheme}")
