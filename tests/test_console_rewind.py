"""Rewinding (or skipping ahead) a watched table's checkpoint from the console, on the real
server (uvicorn on 127.0.0.1, its table watcher running on a real local Delta table and a real
SQLite state file).

The table function appends every version it is handed to a file, so the file is what was
delivered. Nothing is timed: a test waits for what it expects to see in that file or the store.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from lakefn.checkpoints.sqlite import SQLiteCheckpointStore
from lakefn.checkpoints.tools import list_checkpoints
from lakefn.sources.local import append, create_table
from tests._serving import commit, wait_for

APP = """\
access:
  admins: [ada@example.com]
  viewers: all
tables: {source: local, local_root: catalog}
state: state.db
functions:
  - name: sink
    trigger: {type: unity_table, check_interval: 0.05}
    table_name: main.sales.orders
  - name: elsewhere
    trigger: {type: unity_table, check_interval: 3600}
    table_name: main.sales.returns
  - name: hello
    trigger: {type: http, method: POST, endpoint: /hello}
"""

#: notes each start in started.log; waits while `slow` exists; then records the versions
SINK = """\
import pathlib, time

ROOT = pathlib.Path(__file__).resolve().parent.parent

def main(event):
    with open(ROOT / "started.log", "a") as out:
        out.write(f"{event.commits[0].version}\\n")
    while (ROOT / "slow").exists():
        time.sleep(0.02)
    with open(ROOT / "delivered.log", "a") as out:
        out.write("".join(f"{c.version}\\n" for c in event.commits))
"""

ORDERS = "main.sales.orders"
RETURNS = "main.sales.returns"
#: another server's lease on `elsewhere`, taken before this one starts
OTHER = "other-host:4242:feedbeef"
REWIND = "/lakefn/console/rewind"
FRAGMENT = {"X-Lakefn-Fragment": "1"}


@pytest.fixture
def server(project, serve, monkeypatch):
    """The real server watching `orders` (every 0.05 s) from version 0 on; `elsewhere`'s
    lease is held by another live process."""
    monkeypatch.delenv("DATABRICKS_APP_NAME", raising=False)
    monkeypatch.delenv("LAKEFN_ADMIN_TOKEN", raising=False)
    project.config(APP)
    project.function("sink", SINK)
    project.function("elsewhere", "def main(event):\n    return None\n")
    project.function("hello", "def main(event):\n    return 'hi'\n")
    catalog = project.root / "catalog"
    create_table(catalog, ORDERS, [{"id": 0}])
    create_table(catalog, RETURNS, [{"id": 0}])
    append(catalog, RETURNS, [{"id": 1}])
    other = SQLiteCheckpointStore(project.root / "state.db")
    other.save(f"elsewhere|{RETURNS}", 0, expected=None)
    assert other.acquire(f"elsewhere|{RETURNS}", OTHER, 3600)
    other.close()
    live = serve(project)
    wait_for(lambda: checkpoint(live, "sink") == 0)  # the first check recorded where it starts
    return live


def checkpoint(server: Any, function: str) -> int | None:
    return row(server, function)["version"]


def row(server: Any, function: str) -> dict[str, Any]:
    rows = list_checkpoints(server.runtime.project, server.runtime.checkpoints)
    return next(r.to_dict() for r in rows if r.function == function)


def delivered(server: Any) -> list[int]:
    path = server.runtime.project.root / "delivered.log"
    return [int(v) for v in path.read_text().split()] if path.exists() else []


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "no action form on the page"
    return found.group(1)


def rewind(server: Any, function: str, version: str, **extra: str) -> httpx.Response:
    token = csrf(server.client.get("/").text)
    form = {"csrf": token, "function": function, "version": version, **extra}
    return server.client.post(REWIND, data=form, headers=FRAGMENT)


def test_an_admin_rewinds_a_watched_table_and_the_running_server_delivers_it_again(
    server,
) -> None:
    commit(server.runtime.project.root, 2, ORDERS)
    wait_for(lambda: delivered(server) == [1, 2])
    wait_for(lambda: checkpoint(server, "sink") == 2)

    page = server.client.get("/").text
    tables = page.split('id="tables"')[1]
    sink_row = re.search(r'<tr data-function="sink".*?</tr>', tables, re.S)
    assert sink_row and 'data-action="rewind"' in sink_row.group(0)
    assert 'max="2"' in sink_row.group(0)  # the form offers -1 .. latest

    # Without JavaScript: the form posts and the page comes back with the result on top.
    answer = server.client.post(
        REWIND, data={"csrf": csrf(page), "function": "sink", "version": "0"}
    )
    assert answer.status_code == 200, answer.text
    top = answer.text.split('id="live"')[0]
    assert "Rewound sink" in top and "checkpoint 2 → 0" in top
    assert "versions 1..2 are delivered again" in top
    # The server that watches the table moved it under its own lease and kept the lease ...
    assert row(server, "sink")["lease_holder"] == server.runtime.watcher.owner
    # ... and its watcher delivers those versions again, then goes on as before.
    wait_for(lambda: delivered(server) == [1, 2, 1, 2])
    wait_for(lambda: checkpoint(server, "sink") == 2)
    commit(server.runtime.project.root, 1, ORDERS)
    wait_for(lambda: delivered(server) == [1, 2, 1, 2, 3])

    # With JavaScript: the result alone, to show in place. Back to -1: the whole history.
    again = rewind(server, "sink", "-1")
    assert again.status_code == 200 and "Rewound sink" in again.text
    assert 'id="live"' not in again.text
    wait_for(lambda: delivered(server) == [1, 2, 1, 2, 3, 0, 1, 2, 3])


def test_a_rewind_while_a_delivery_runs_is_not_saved_over(server) -> None:
    root = server.runtime.project.root
    (root / "slow").touch()
    commit(root, 1, ORDERS)
    wait_for(lambda: (root / "started.log").exists())  # version 1 is being handed over
    # To the very version the running delivery started from: a compare-and-set alone would
    # let its save pass, and version 1 would not come again.
    answer = rewind(server, "sink", "0")
    assert answer.status_code == 200 and "checkpoint 0 → 0" in answer.text
    (root / "slow").unlink()
    wait_for(lambda: delivered(server) == [1, 1])
    wait_for(lambda: checkpoint(server, "sink") == 1)


def test_a_bad_version_is_a_clear_error_and_moves_nothing(server) -> None:
    said = {}
    for version in ("abc", "", "1.5", "-2", "7"):
        answer = rewind(server, "sink", version)
        assert answer.status_code == 400, (version, answer.text)
        said[version] = re.sub(r"\s+", " ", answer.text)
    assert (
        "the version is a whole number (-1 delivers from version 0), not &#39;abc&#39;"
        in (said["abc"])
    )
    assert "not &#39;&#39;" in said[""] and "not &#39;1.5&#39;" in said["1.5"]
    for version in ("-2", "7"):
        assert (
            f"version {version}: {ORDERS} is at version 0, so a checkpoint is -1" in (said[version])
        )
        assert "up to 0" in said[version]
    not_a_table = rewind(server, "hello", "0")
    assert not_a_table.status_code == 400
    assert "&#39;hello&#39; is not a unity_table function" in not_a_table.text
    assert checkpoint(server, "sink") == 0 and delivered(server) == []


def test_another_process_lease_is_refused_unless_forced(server) -> None:
    refused = rewind(server, "elsewhere", "-1")
    assert refused.status_code == 400
    text = re.sub(r"\s+", " ", refused.text)
    assert f"{OTHER} holds the lease" in text and "tick force" in text
    assert checkpoint(server, "elsewhere") == 0

    forced = rewind(server, "elsewhere", "1", force="on")
    assert forced.status_code == 200, forced.text
    assert "Skipped ahead elsewhere" in forced.text
    assert f"Took the lease from {OTHER}" in forced.text
    assert checkpoint(server, "elsewhere") == 1


def test_viewers_strangers_and_other_sites_cannot_rewind(server, monkeypatch) -> None:
    commit(server.runtime.project.root, 1, ORDERS)
    wait_for(lambda: delivered(server) == [1])
    token = csrf(server.client.get("/").text)
    form = {"csrf": token, "function": "sink", "version": "-1"}
    refused = {
        "no token": server.client.post(REWIND, data={**form, "csrf": ""}),
        "forged token": server.client.post(REWIND, data={**form, "csrf": "0" * 64}),
        "cross-site": server.client.post(
            REWIND, data=form, headers={"Sec-Fetch-Site": "cross-site"}
        ),
        "other origin": server.client.post(
            REWIND, data=form, headers={"Origin": "https://evil.example.com"}
        ),
    }
    # As a Databricks App: the platform's proxy names each user.
    monkeypatch.setenv("DATABRICKS_APP_NAME", "sales-fn")
    host = {
        "Host": "sales-fn.databricksapps.com",
        "X-Forwarded-Host": "sales-fn.databricksapps.com",
    }
    viewer = {**host, "X-Forwarded-Email": "bob@example.com"}
    viewer_page = server.client.get("/", headers=viewer)
    assert viewer_page.status_code == 200 and "sink" in viewer_page.text
    live = server.client.get("/lakefn/console/live", headers=viewer).text
    for shown in (viewer_page.text, live):
        assert 'data-action="rewind"' not in shown and 'name="csrf"' not in shown
    refused["viewer"] = server.client.post(REWIND, data=form, headers=viewer)
    refused["stranger"] = server.client.post(REWIND, data=form, headers=host)  # no user
    assert {k: r.status_code for k, r in refused.items()} == dict.fromkeys(refused, 403)
    assert "only admins may run actions" in refused["viewer"].text
    assert "reload the page" in refused["forged token"].text
    assert "another site" in refused["cross-site"].text

    # An App admin may, with a form token of their own page.
    admin = {**host, "X-Forwarded-Email": "ada@example.com"}
    own = csrf(server.client.get("/", headers=admin).text)
    ok = server.client.post(REWIND, data={**form, "csrf": own}, headers={**admin, **FRAGMENT})
    assert ok.status_code == 200 and "Rewound sink" in ok.text
    wait_for(lambda: delivered(server) == [1, 0, 1])
