"""Who may use lakefn's own routes: one policy for the console, /lakefn/* and the admin invoke.

    admin   everything: loopback callers that came through no proxy (and name this machine
            in Host); callers with `Authorization: Bearer $LAKEFN_ADMIN_TOKEN` or a browser
            that opened the console once with `?token=$LAKEFN_ADMIN_TOKEN` (a cookie);
            as a Databricks App, the users that app.yaml `access.admins` names
    viewer  read-only, error text hidden: as a Databricks App, every signed-in user when
            `access.viewers: all`
    none    anyone else: 403

`/healthz` and the project's own function routes are not guarded here.

A proxy on the same machine (the Databricks Apps proxy, nginx, a tunnel) makes every caller
arrive from loopback, so a request that bears any header a proxy sets is never trusted as
local. Forwarded identity (`X-Forwarded-Email`) is believed only as a Databricks App
(`DATABRICKS_APP_NAME` set), where the platform's proxy sets it and strips what clients send.

Actions a browser can send (the console's forms, the admin invoke) also refuse requests that
another site's page made (`cross_site`, `ActionGuard`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

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


class Grant(NamedTuple):
    """A caller's role and what earned it: `via` is loopback | token | app | rebound (loopback,
    but under another site's name) | none; `who` is the Databricks App user's email."""

    role: Role
    via: str
    who: str = ""


class AccessPolicy:
    def __init__(
        self, config: AccessConfig | None = None, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.config = config or AccessConfig()
        self.environ = environ  # read per request: the token may be set after start

    def grant(self, headers: Mapping[str, str], client_host: str | None) -> Grant:
        token = self.environ.get(TOKEN_ENV)
        if bearer_token_matches(headers.get("authorization"), token):
            return Grant(Role.ADMIN, "token")
        if token and cookie_matches(headers.get("cookie"), token):
            return Grant(Role.ADMIN, "token")
        proxied = any(is_proxy_header(name) for name in headers)
        if not proxied:
            if is_loopback(client_host) and host_is_local(headers.get("host")):
                return Grant(Role.ADMIN, "loopback")
            return Grant(Role.NONE, "rebound" if is_loopback(client_host) else "none")
        if self.running_as_app:
            email = (headers.get("x-forwarded-email") or "").strip().lower()
            return Grant(self._app_user_role(email), "app", email)
        return Grant(Role.NONE, "none")

    @property
    def running_as_app(self) -> bool:
        return bool(self.environ.get(APP_NAME_ENV))

    def role(self, headers: Mapping[str, str], client_host: str | None) -> Role:
        return self.grant(headers, client_host).role

    def _app_user_role(self, email: str) -> Role:
        if not email:
            return Role.NONE
        if email in self.config.admins:
            return Role.ADMIN
        return Role.VIEWER if self.config.viewers == "all" else Role.NONE

    def grant_of(self, request: Request) -> Grant:
        client = request.client
        return self.grant(request.headers, client.host if client else None)

    def role_of(self, request: Request) -> Role:
        return self.grant_of(request).role


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
        grant = policy.grant_of(request)
        if grant.role < need:
            raise HTTPException(status_code=403, detail=refusal(need))
        if request.method == "POST":
            problem = cross_site(request.headers, grant)
            if problem:
                raise HTTPException(status_code=403, detail=problem)
        return grant.role

    return check


# -- actions from a browser ---------------------------------------------------------------------
#
# A browser attaches whatever makes a caller an admin (being on loopback, the App's sign-in
# cookie) to requests that other sites' pages make, so an action must prove it came from the
# console's own page: the browser's own word on where it came from (Sec-Fetch-Site, Origin),
# and a token that only a page this server rendered for this caller holds.


def host_is_local(host_header: str | None) -> bool:
    """May a loopback caller that names this Host be believed local? An IP literal,
    `localhost`, or a single-label name (this machine's, a container's); not a dotted DNS name,
    which is what a page of another site uses to reach 127.0.0.1 as itself (DNS rebinding) and
    then read this server's answers. No Host at all (HTTP/1.0) names nothing and passes."""
    if not host_header:
        return True
    try:
        hostname = urlsplit(f"//{host_header}").hostname or ""
    except ValueError:
        return False
    if hostname == "localhost" or hostname.endswith(".localhost") or "." not in hostname:
        return bool(hostname)
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True


#: the cookie that stands for `LAKEFN_ADMIN_TOKEN` in a browser (see `console_cookie`)
COOKIE = "lakefn_console"


def console_cookie(token: str) -> str:
    """The cookie's value for an admin token: derived, so the token itself never sits in the
    browser; stable while the token is, so a restart does not sign anyone out."""
    key = os.fsencode(token.strip())
    return hmac.new(key, b"lakefn console cookie", hashlib.sha256).hexdigest()


def cookie_matches(header: str | None, token: str | None) -> bool:
    if not header or not token or not token.strip():
        return False
    wanted = console_cookie(token).encode()
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            try:
                given = value.strip().encode("ascii")
            except UnicodeEncodeError:
                return False
            return hmac.compare_digest(given, wanted)
    return False


def cross_site(headers: Mapping[str, str], grant: Grant) -> str | None:
    """Why a POST looks like another site's page sent it; None when it does not. Callers that
    are not browsers (curl, httpx, the notebook) send neither header and pass."""
    fetched_from = headers.get("sec-fetch-site", "").lower()
    if fetched_from in ("same-origin", "none"):
        # The browser vouches for it; comparing Origin with Host would only trip over a
        # proxy that rewrites Host.
        return None
    if fetched_from:
        return f"refused: a page of another site ({fetched_from}) sent this request"
    origin = headers.get("origin")  # older browsers: no Sec-Fetch-Site
    if origin and origin != "null":
        # Behind the Databricks Apps proxy the browser's host is the forwarded one.
        host = headers.get("x-forwarded-host") if grant.via == "app" else None
        host = host or headers.get("host", "")
        if (urlsplit(origin).netloc or "").lower() != host.lower():
            return f"refused: the request came from {origin}, not from this server's pages"
    elif origin == "null":
        return "refused: the request came from an opaque origin"
    return None


class ActionGuard:
    """CSRF tokens for the console's actions: an HMAC of the caller's identity under a secret
    made when the process starts, so a token works only for whom it was rendered and dies
    with the process. Nothing to store, nothing to configure."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    def token(self, grant: Grant) -> str:
        subject = f"{grant.via}|{grant.who}".encode()
        return hmac.new(self._secret, subject, hashlib.sha256).hexdigest()

    def refusal(self, headers: Mapping[str, str], grant: Grant, supplied: str | None) -> str | None:
        """Why an action must not run; None when it may. The caller must already be admin."""
        problem = cross_site(headers, grant)
        if problem:
            return problem
        if not supplied or not hmac.compare_digest(supplied.encode(), self.token(grant).encode()):
            return "refused: the form is stale or was not made by this server; reload the page"
        return None
