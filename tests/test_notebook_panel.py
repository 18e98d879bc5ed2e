"""The ipywidgets panel (without a browser: buttons are clicked through their Python side) and
the link building for local Jupyter, JupyterHub and Databricks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ipywidgets as widgets
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from lakefn.notebook import Session
from lakefn.notebook.links import build_link, databricks_context, local_url
from lakefn.notebook.panel import Panel

from .test_notebook_magics import ip, sample  # noqa: F401 - the fixtures

VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def session(sample: Path) -> Iterator[Session]:  # noqa: F811
    session = Session()
    session.load(sample)
    yield session
    session.close()


def eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Wait for something a worker thread does; returns as soon as it is seen (the bound only
    ends a wait for what never comes, so it is generous for a loaded machine)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def row(panel: Panel, name: str) -> widgets.HBox:
    (found,) = [r for r in panel.rows.children if f"lakefn-function-{name}" in r._dom_classes]
    return found


def parts(panel: Panel, name: str) -> tuple[widgets.Widget, widgets.Button, widgets.HTML]:
    _, control, button, outcome = row(panel, name).children
    return control, button, outcome


def test_a_row_per_function_with_the_right_controls(session: Session) -> None:
    panel = session.panel()
    assert len(panel.rows.children) == 3
    payload, run, _ = parts(panel, "example_http")
    assert isinstance(payload, widgets.Textarea) and run.description == "Run"
    assert "http POST /run-example" in row(panel, "example_http").children[0].value
    timer_box, timer_run, _ = parts(panel, "scheduled_task")
    assert isinstance(timer_box, widgets.Textarea) and timer_run.description == "Run"
    operation, simulate, _ = parts(panel, "unity_monitor")
    assert isinstance(operation, widgets.Dropdown) and "MERGE" in operation.options
    assert simulate.description == "Simulate"
    assert "_data.tpch.dim_customer" in panel.tables.value
    assert "not serving" in panel.status.value and panel.serve_button.description == "Serve"


def shown(ip: InteractiveShell, value: Any) -> list[dict[str, Any]]:  # noqa: F811
    """What a kernel sends for a cell whose value is `value` (ipykernel's displayhook formats it
    with the shell's display formatter): the formatted data, or what the object displayed."""
    with capture_output() as captured:
        data, _ = ip.display_formatter.format(value)
    return [output.data for output in captured.outputs] + ([data] if data else [])


def displayed(ip: InteractiveShell, cell: str) -> list[dict[str, Any]]:  # noqa: F811
    with capture_output() as captured:
        ip.run_cell(cell).raise_error()
    return [output.data for output in captured.outputs]


def test_the_panel_magic_shows_the_widget_in_the_cell(
    ip: InteractiveShell,  # noqa: F811
    sample: Path,  # noqa: F811
) -> None:
    # ipywidgets 8 shows widgets through their mime bundle, 7 through _ipython_display_ (which
    # 8 lacks): the same widget view either way. `make test-ipywidgets7` runs this on 7.
    ip.run_line_magic("lakefn", f"load {sample}")
    panel = ip.run_line_magic("lakefn", "panel")  # the cell's value
    ip.user_ns["panel"] = panel
    for data in (*shown(ip, panel), *displayed(ip, "display(panel)")):
        assert data[VIEW]["model_id"] == panel.widget.model_id, data
    assert len(shown(ip, panel)) == len(displayed(ip, "display(panel)")) == 1
    panel.close()  # a closed widget cannot render: its text stands in, and nothing fails
    [data] = shown(ip, panel)
    assert VIEW not in data and "lakefn" in data["text/plain"]


@pytest.mark.parametrize("serving", [False, True], ids=["stopped", "serving"])
def test_run_and_simulate_land_in_the_log(session: Session, serving: bool) -> None:
    if serving:
        session.serve(port=0)
    panel = session.panel()
    payload, run, outcome = parts(panel, "example_http")
    payload.value = '{"name": "Ada"}'
    run.click()
    assert eventually(lambda: "Ada" in outcome.value), outcome.value
    assert eventually(lambda: "example_http [http] ok" in panel.log.value)
    assert "greeting Ada" in panel.log.value  # the function's own log line
    assert not run.disabled
    operation, simulate, sim_outcome = parts(panel, "unity_monitor")
    operation.value = "MERGE"
    simulate.click()
    assert eventually(lambda: "MERGE" in sim_outcome.value), sim_outcome.value
    assert eventually(lambda: "unity_monitor [unity_table simulated] ok" in panel.log.value)
    # newest first
    assert panel.log.value.index("unity_monitor") < panel.log.value.index("example_http")


def test_a_bad_payload_is_shown_in_the_row(session: Session) -> None:
    panel = session.panel()
    payload, run, outcome = parts(panel, "example_http")
    payload.value = "{nope"
    run.click()
    assert "payload is not JSON" in outcome.value


def test_requests_to_the_server_appear_live_and_the_log_is_capped(session: Session) -> None:
    panel = session.panel(log_lines=5)
    status = session.serve(port=0)
    assert eventually(lambda: "serving" in panel.status.value)
    assert panel.serve_button.description == "Stop"
    for i in range(8):
        httpx.post(status.local_url + "run-example", json={"name": f"n{i}"})
    assert eventually(lambda: panel.log.value.count("example_http [http] ok") == 5)


def test_the_serve_button_starts_and_stops_the_server(session: Session) -> None:
    session.default_port = 0
    panel = session.panel()
    panel.serve_button.click()
    assert session.serving and "serving" in panel.status.value
    panel.serve_button.click()
    assert not session.serving and "not serving" in panel.status.value


def test_loading_again_rebinds_the_panel(session: Session, sample: Path) -> None:  # noqa: F811
    panel = session.panel()
    session.invoke("example_http")
    assert eventually(lambda: "example_http" in panel.log.value)
    session.load(sample)
    # The new runtime's journal starts from the history kept in the state store.
    assert "example_http" in panel.log.value
    session.invoke("scheduled_task")
    assert eventually(lambda: "scheduled_task" in panel.log.value)


def cells(panel: Panel) -> str:
    """The tables view without its cells' styling."""
    return re.sub(r"<td [^>]*>", "<td>", panel.tables.value)


def test_lag_per_table_follows_the_watcher(session: Session, sample: Path) -> None:  # noqa: F811
    from lakefn._tables_cli import sample_customers
    from lakefn.sources.local import append

    panel = session.panel()
    runtime = session.require()
    check = runtime.watcher.check
    session.submit(check("unity_monitor")).result()  # the first check records version 0
    session.submit(check("unity_monitor")).result()  # the second finds nothing newer
    panel._on_session("tick")
    assert "<td>0</td><td>0</td><td>0</td>" in cells(panel)  # processed, latest, lag
    (sample.parent / "functions" / "unity_monitor_function.py").write_text(
        "def main(event):\n    raise RuntimeError('not today')\n"
    )
    session.reload("unity_monitor")
    append(runtime.project.local_root, "_data.tpch.dim_customer", sample_customers(100, 1))
    session.submit(check("unity_monitor")).result()  # fails: the version stays pending
    assert eventually(lambda: "<td>0</td><td>1</td><td>1</td>" in cells(panel))
    panel._on_session("tick")  # the error is noted after the journal heard of the failure
    assert (
        "not today" in panel.tables.value and "unity_monitor [unity_table] error" in panel.log.value
    )


def test_close_unsubscribes(session: Session) -> None:
    panel = session.panel()
    panel.close()
    session.invoke("example_http")
    assert "no invocations yet" in panel.log.value


# -- links ----------------------------------------------------------------------------------------


def test_local_link() -> None:
    link = build_link("127.0.0.1", 8000, env={})
    assert (link.url, link.local_url, link.kind) == ("http://127.0.0.1:8000/",) * 2 + ("local",)
    assert link.docs_url == "http://127.0.0.1:8000/docs"
    assert local_url("0.0.0.0", 81) == "http://127.0.0.1:81/"
    assert local_url("::", 81) == "http://[::1]:81/"


def test_jupyterhub_link_goes_through_the_server_proxy() -> None:
    link = build_link("127.0.0.1", 8000, env={"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"})
    assert link.url == "/user/ada/proxy/8000/" and link.kind == "jupyterhub"
    assert link.local_url == "http://127.0.0.1:8000/"


class Option:
    """A Scala Option as py4j hands it over."""

    def __init__(self, value: str | None) -> None:
        self.value = value

    def isDefined(self) -> bool:  # noqa: N802 - Scala's name
        return self.value is not None

    def get(self) -> str | None:
        return self.value


class FakeDbutils:
    def __init__(self, tags: dict[str, str], cluster: str | None, host: str | None) -> None:
        context = type(
            "Context",
            (),
            {
                "tags": lambda _: type("Tags", (), {"get": lambda _, k: Option(tags.get(k))})(),
                "clusterId": lambda _: Option(cluster),
                "browserHostName": lambda _: Option(host),
            },
        )()
        notebook = type("Nb", (), {"getContext": lambda _: context})()
        dbutils = type("Db", (), {"notebook": lambda _: notebook})()
        entry = type("Entry", (), {"getDbutils": lambda _: dbutils})()
        self.notebook = type("NbMod", (), {"entry_point": entry})()


class FakeConf:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


DATABRICKS = {"DATABRICKS_RUNTIME_VERSION": "15.4"}


def test_databricks_link_from_the_notebook_context() -> None:
    dbutils = FakeDbutils({"orgId": "1234"}, "0101-abc", "adb-1.azuredatabricks.net")
    link = build_link("0.0.0.0", 8000, env=DATABRICKS, user_ns={"dbutils": dbutils})
    assert link.url == "https://adb-1.azuredatabricks.net/driver-proxy/o/1234/0101-abc/8000/"
    assert link.kind == "databricks" and link.local_url == "http://127.0.0.1:8000/"


def test_databricks_link_from_spark_conf_when_dbutils_says_nothing() -> None:
    spark = type("Spark", (), {})()
    spark.conf = FakeConf(
        {
            "spark.databricks.clusterUsageTags.clusterOwnerOrgId": "42",
            "spark.databricks.clusterUsageTags.clusterId": "c-1",
        }
    )
    dbutils = FakeDbutils({}, None, None)
    link = build_link("0.0.0.0", 9000, env=DATABRICKS, user_ns={"spark": spark, "dbutils": dbutils})
    assert link.url == "/driver-proxy/o/42/c-1/9000/"  # relative: same origin as the notebook
    spark.conf.values["spark.databricks.workspaceUrl"] = "dbc-9.cloud.databricks.com"
    assert databricks_context({"spark": spark}).workspace_host == "dbc-9.cloud.databricks.com"


def test_databricks_without_a_context_falls_back_to_localhost() -> None:
    broken = type("Spark", (), {"conf": property(lambda _: 1 / 0)})()
    link = build_link("127.0.0.1", 8000, env=DATABRICKS, user_ns={"spark": broken})
    assert link.kind == "local" and link.url == "http://127.0.0.1:8000/"


def test_the_status_shows_the_proxied_link(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    status = session.serve(port=0)
    assert status.url == f"/user/ada/proxy/{status.port}/"
    assert httpx.get(status.local_url + "healthz").status_code == 200
    assert f"(in the kernel: http://127.0.0.1:{status.port}/)" in repr(status)
