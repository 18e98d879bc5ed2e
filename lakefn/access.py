"""Who may use lakefn's own routes: one policy for the console, /lakefn/* and the admin invoke.

    admin   everything: loopback callers that came through no proxy; callers with
            `Authorization: Bearer $LAKEFN_ADMIN_TOKEN`; as a Databricks App, the users that
            app.yaml `access.admins` names
    viewer  read-only, error text hidden: as a Databricks App, every signed-in user when
            `access.viewers: all`
    none    anyone else: 403

`/healthz` and the project's own function routes are not guarded here.

A proxy on the same machine (the Databricks Apps proxy, nginx, a tunnel) makes every caller
arrive from loopback, so a request that bears any header a proxy sets is never trusted as
local. Forwarded identity (`X-Forwarded-Email`) is believed only as a Databricks App
(`DATABRICKS_APP_NAME` set), where the platform's proxy sets it and strips what clients send.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, Mapping

from fastapi import HTTPException, Request

from .config import AccessConfig

TOKEN_ENV = "LAKEFN_ADMIN_TOKEN"
APP_NAME_ENV = "DATABRICKS_APP_NAME"

#: header names (lower case) that only a proxy sets, or that ask to be believed about the
#: client: whole names, prefixes and parts. Not a list of known proxies: any of these marks
#: a request as relayed.
_PROXY_NAMES = frozenset({"via", "forwarded", "x-cluster-client-ip", "x-remote-addr"})
_PROXY_PREFIXES = ("x-forwarded", "cf-", "x-original", "x-envoy-", "x-amz-cf-", "fastly-")
_PROXY_PARTS = (
    "forwarded",
    "real-ip",
    "client-ip",
    "connecting-ip",
    "original-",
    "remote-ip",
    "remote-addr",
    "proxy-",
)


class Role(enum.IntEnum):
    NONE = 0
    VIEWER = 1
    ADMIN = 2


def is_proxy_header(name: str) -> bool:
    name = name.lower()
    return (
        name in _PROXY_NAMES
        or name.startswith(_PROXY_PREFIXES)
        or any(part in name for part in _PROXY_PARTS)
    )


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped loopback (`::ffff:127.0.0.1`, what a dual-stack socket
    reports for an IPv4 caller)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def bearer_token_matches(header: str | None, token: str | None) -> bool:
    """`Authorization: Bearer <token>`, the scheme in any case (RFC 7235), compared in constant
    time as the bytes that travelled, so that no header or token, however odd, can raise."""
    if not header or not token:
        return False
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    try:
        given = credentials.strip().encode("latin-1")  # how ASGI servers decode header bytes
    except UnicodeEncodeError:
        return False  # not something that came over the wire
    wanted = os.fsencode(token.strip())  # the environment's bytes; strip: a token file's newline
    return bool(wanted) and hmac.compare_digest(given, wanted)


class AccessPolicy:
    def __init__(
        self, config: AccessConfig | None = None, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.config = config or AccessConfig()
        self.environ = environ  # read per request: the token may be set after start

    def role(self, headers: Mapping[str, str], client_host: str | None) -> Role:
        if bearer_token_matches(headers.get("authorization"), self.environ.get(TOKEN_ENV)):
            return Role.ADMIN
        proxied = any(is_proxy_header(name) for name in headers)
        if not proxied:
            return Role.ADMIN if is_loopback(client_host) else Role.NONE
        if self.environ.get(APP_NAME_ENV):
            return self._app_user_role(headers.get("x-forwarded-email"))
        return Role.NONE

    def _app_user_role(self, email: str | None) -> Role:
        if not email:
            return Role.NONE
        if email.strip().lower() in self.config.admins:
            return Role.ADMIN
        return Role.VIEWER if self.config.viewers == "all" else Role.NONE

    def role_of(self, request: Request) -> Role:
        client = request.client
        return self.role(request.headers, client.host if client else None)


def refusal(need: Role) -> str:
    what = "invoking functions by hand" if need is Role.ADMIN else "this route"
    return (
        f"{what} is allowed from loopback (not through a proxy), or with "
        f"Authorization: Bearer ${TOKEN_ENV}; as a Databricks App, for the users app.yaml "
        "`access` names"
    )


def requires(policy: AccessPolicy, need: Role) -> Callable[[Request], Awaitable[Role]]:
    """A FastAPI dependency: 403 unless the caller has at least `need`; else the caller's
    role, for a route that shows less to viewers."""

    async def check(request: Request) -> Role:
        role = policy.role_of(request)
        if role < need:
            raise HTTPException(status_code=403, detail=refusal(need))
        return role

    return check
