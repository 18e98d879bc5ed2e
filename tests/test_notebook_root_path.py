"""Behind a notebook proxy, pages the server renders must point back through the proxy."""

from __future__ import annotations

import sys
import types

import httpx
import pytest

from lakefn.notebook.background import BackgroundServer
from lakefn.notebook.links import proxy_root_path

APP = """\
functions:
  - name: hello
    trigger: {type: http, method: POST, endpoint: /hello}
"""


class _Conf:
    values = {
        "spark.databricks.clusterUsageTags.clusterOwnerOrgId": "4242",
        "spark.databricks.clusterUsageTags.clusterId": "0101-abcdef",
        "spark.databricks.workspaceUrl": "adb-1.azuredatabricks.net",
    }

    def get(self, key: str, default: object = None) -> object:
        return self.values.get(key, default)


def test_root_path_per_proxy() -> None:
    spark = types.SimpleNamespace(conf=_Conf())
    databricks = {"DATABRICKS_RUNTIME_VERSION": "15.4"}
    hub = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}
    assert proxy_root_path("0.0.0.0", 8000, env=databricks, user_ns={"spark": spark}) == (
        "/driver-proxy/o/4242/0101-abcdef/8000"
    )
    assert proxy_root_path("127.0.0.1", 8000, env=hub, user_ns={}) == "/user/ada/proxy/8000"
    assert proxy_root_path("127.0.0.1", 8000, env={}, user_ns={}) == ""


def test_docs_fetch_openapi_through_the_driver_proxy(
    project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.config(APP)
    project.function("hello", "def main(event):\n    return {'hello': 'world'}\n")
    shell = types.SimpleNamespace(user_ns={"spark": types.SimpleNamespace(conf=_Conf())})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    server = BackgroundServer(project.runtime(), "127.0.0.1", 0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        prefix = f"/driver-proxy/o/4242/0101-abcdef/{server.port}"
        # The proxy strips its prefix before forwarding: routes answer on the bare paths...
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200
        # ...and the page asks the browser for the schema through the proxy.
        assert f"'{prefix}/openapi.json'" in docs.text
        assert httpx.get(f"{base}/openapi.json").status_code == 200
        assert httpx.post(f"{base}/hello", json={}).status_code == 200
    finally:
        server.stop()


def test_the_proxied_link_signs_the_browser_in_to_the_console(
    project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakefn.notebook.session import Session

    project.config(APP)
    project.function("hello", "def main(event):\n    return {'hello': 'world'}\n")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    monkeypatch.delenv("LAKEFN_ADMIN_TOKEN", raising=False)
    session = Session({})
    session.load(project.root / "app.yaml")
    try:
        status = session.serve("127.0.0.1", 0)
        link = status.link
        assert link is not None and link.kind == "jupyterhub"
        assert link.console_url.startswith(f"/user/ada/proxy/{status.port}/?token=")
        assert link.console_url in status._repr_html_()
        token = link.console_url.split("?token=")[1]
        base = f"http://127.0.0.1:{status.port}"
        relayed = {"X-Forwarded-For": "10.0.0.7"}  # what jupyter-server-proxy adds
        assert httpx.get(f"{base}/", headers=relayed).status_code == 403
        signed_in = httpx.get(f"{base}/?token={token}", headers=relayed)
        assert signed_in.status_code in (200, 303), signed_in.text
        cookie = signed_in.headers["set-cookie"]
        assert f"Path=/user/ada/proxy/{status.port}" in cookie and "HttpOnly" in cookie
        # The proxy strips its prefix; the browser sends the cookie back on every page after.
        again = httpx.get(f"{base}/", headers={**relayed, "Cookie": cookie.split(";")[0]})
        assert again.status_code == 200 and "hello" in again.text
    finally:
        session.close()
