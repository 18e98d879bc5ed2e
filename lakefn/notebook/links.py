"""Where a browser reaches a server started inside a notebook kernel.

The kernel's `127.0.0.1:<port>` is only reachable from the user's browser when the kernel runs
on the user's machine. Elsewhere the notebook server proxies it, under a path that depends on
where the kernel lives:

- Databricks notebook: the driver proxy, `https://<workspace>/driver-proxy/o/<org>/<cluster>/<port>/`
- JupyterHub with jupyter-server-proxy: `<JUPYTERHUB_SERVICE_PREFIX>proxy/<port>/`
- anywhere else: `http://127.0.0.1:<port>/`
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit


@dataclass(frozen=True)
class ServerLink:
    """`url` is what the user clicks; `local_url` is what code in the kernel calls."""

    url: str
    local_url: str
    kind: str  # local | jupyterhub | databricks
    #: behind a proxy every request looks relayed, so the console signs the browser in with
    #: the admin token once (it becomes a cookie); None for a local link, which needs none
    token: str | None = None

    @property
    def docs_url(self) -> str:
        return self.url + "docs"

    @property
    def console_url(self) -> str:
        return self.url + (f"?token={quote(self.token)}" if self.token else "")


@dataclass(frozen=True)
class DatabricksContext:
    org_id: str
    cluster_id: str
    workspace_host: str | None = None


def local_url(host: str, port: int) -> str:
    # 0.0.0.0 and :: listen everywhere, but are not addresses a client can call.
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def build_link(
    host: str,
    port: int,
    *,
    env: Mapping[str, str] | None = None,
    user_ns: Mapping[str, Any] | None = None,
) -> ServerLink:
    """The link to show for a server on `host:port`, given the kernel's environment."""
    env = os.environ if env is None else env
    local = local_url(host, port)
    if env.get("DATABRICKS_RUNTIME_VERSION"):
        context = databricks_context(user_ns or {})
        if context is not None:
            path = f"/driver-proxy/o/{context.org_id}/{context.cluster_id}/{port}/"
            base = f"https://{context.workspace_host}" if context.workspace_host else ""
            return ServerLink(base + path, local, "databricks")
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        # Relative to the notebook page's origin, which is the hub's: no host needed.
        return ServerLink(f"{prefix.rstrip('/')}/proxy/{port}/", local, "jupyterhub")
    return ServerLink(local, local, "local")


def proxy_root_path(
    host: str,
    port: int,
    *,
    env: Mapping[str, str] | None = None,
    user_ns: Mapping[str, Any] | None = None,
) -> str:
    """The path prefix a notebook proxy serves this server under ("" when none).

    Both proxies strip it before forwarding, so routes still match; handed to uvicorn as
    `root_path`, it makes the pages the app renders (FastAPI's /docs fetching /openapi.json)
    point back through the proxy instead of at the workspace's or hub's root.
    """
    if user_ns is None:
        ipython = sys.modules.get("IPython")  # only if a notebook already imported it
        shell = ipython.get_ipython() if ipython is not None else None
        user_ns = getattr(shell, "user_ns", None) or {}
    link = build_link(host, port, env=env, user_ns=user_ns)
    return "" if link.kind == "local" else urlsplit(link.url).path.rstrip("/")


def databricks_context(user_ns: Mapping[str, Any]) -> DatabricksContext | None:
    """Org and cluster id from the notebook context (dbutils), else from Spark's conf."""
    return _from_dbutils(user_ns.get("dbutils")) or _from_spark(user_ns.get("spark"))


def _from_dbutils(dbutils: Any) -> DatabricksContext | None:
    if dbutils is None:
        return None
    try:
        context = dbutils.notebook.entry_point.getDbutils().notebook().getContext()
        tags = context.tags()
        org = _option(tags.get("orgId"))
        cluster = _option(context.clusterId()) or _option(tags.get("clusterId"))
        host = _option(context.browserHostName()) or _option(tags.get("browserHostName"))
    except Exception:  # noqa: BLE001 - the context API is undocumented; Spark conf is the fallback
        return None
    if not org or not cluster:
        return None
    return DatabricksContext(str(org), str(cluster), str(host) if host else None)


def _from_spark(spark: Any) -> DatabricksContext | None:
    if spark is None:
        return None

    def conf(key: str) -> str | None:
        try:
            value = spark.conf.get(key, None)
        except Exception:  # noqa: BLE001 - Spark Connect refuses some keys; treat as unknown
            return None
        return str(value) if value else None

    org = conf("spark.databricks.clusterUsageTags.clusterOwnerOrgId")
    cluster = conf("spark.databricks.clusterUsageTags.clusterId")
    if not org or not cluster:
        return None
    return DatabricksContext(org, cluster, conf("spark.databricks.workspaceUrl"))


def _option(value: Any) -> Any:
    """Unwrap a Scala Option (`isDefined()` / `get()`) as py4j hands it over; pass plain values."""
    if value is None:
        return None
    is_defined = getattr(value, "isDefined", None)
    if callable(is_defined):
        return value.get() if is_defined() else None
    return value
