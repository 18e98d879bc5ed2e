"""A Databricks workspace double over real HTTP on 127.0.0.1: the REST endpoints lakefn's
Lakebase store calls through databricks-sdk, with the JSON shapes of the real ones, so the
SDK's own client, models and errors are what the tests exercise.

    GET  /.well-known/databricks-config      host metadata (the SDK probes it in `Config()`)
    GET  /api/2.0/database/instances/{name}  a DatabaseInstance, or 404 RESOURCE_DOES_NOT_EXIST
    GET  /api/2.0/preview/scim/v2/Me         the caller; for a service principal `userName` is
                                             its application id
    POST /api/2.0/database/credentials       {"request_id", "instance_names"} -> {"token",
                                             "expiration_time"}: a credential for an hour

Every /api/ call must carry `Authorization: Bearer <token>` (a personal access token, as
DATABRICKS_TOKEN gives the SDK); others are answered 401 like the real workspace and noted in
`refused`. Every call is recorded in `calls`. An unknown path is a 404 ENDPOINT_NOT_FOUND,
noted in `unknown`, so a test can tell lakefn asked for nothing else.

A minted credential is handed to `on_credential` (when set) before the answer goes out: the
tests make it the password of the Postgres role, as Lakebase accepts its own credentials.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

#: a personal access token of the job's run-as principal
TOKEN = "dapi0123456789abcdef0123456789abcdef"
#: a service principal's application id: its SCIM userName and its Postgres role
SERVICE_PRINCIPAL = "6f2c1b9e-4d3a-4e8f-9a7b-2c5d8e1f0a34"
WORKSPACE_ID = "1234567890123456"
ACCOUNT_ID = "0d1c2b3a-4f5e-6d7c-8b9a-0f1e2d3c4b5a"
#: how long Lakebase credentials live
CREDENTIAL_SECONDS = 3600


@dataclass
class Call:
    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _rfc3339(seconds: float) -> str:
    stamp = datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class FakeWorkspace:
    """The workspace: its instances, the caller, and everything it was asked.

    `clock` (epoch seconds) dates the credentials' `expiration_time`: a test hands in the same
    clock it moves the store by."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        user: str = SERVICE_PRINCIPAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.user = user
        self.clock = clock
        self.instances: dict[str, dict[str, Any]] = {}
        self.calls: list[Call] = []
        self.refused: list[Call] = []
        self.unknown: list[Call] = []
        #: the credentials minted, in order: {"token", "expiration_time", "instance_names"}
        self.credentials: list[dict[str, Any]] = []
        self.on_credential: Callable[[str], None] | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- set-up ------------------------------------------------------------------------------

    def start(self) -> FakeWorkspace:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def env(self) -> dict[str, str]:
        """What points databricks-sdk's `Config()` at this workspace (PAT auth)."""
        return {"DATABRICKS_HOST": self.url, "DATABRICKS_TOKEN": self.token}

    def add_instance(self, name: str, host: str, *, state: str = "AVAILABLE") -> dict[str, Any]:
        """A database instance as GET /api/2.0/database/instances/{name} returns it."""
        stopped = state == "STOPPED"
        instance = {
            "name": name,
            "uid": str(uuid.uuid4()),
            "creator": "ada@example.com",
            "creation_time": "2026-01-15T09:30:00Z",
            "state": state,
            "pg_version": "16",
            "capacity": "CU_1",
            "effective_capacity": "CU_1",
            "effective_stopped": stopped,
            "node_count": 1,
            "effective_node_count": 1,
            "enable_readable_secondaries": False,
            "effective_enable_readable_secondaries": False,
            "retention_window_in_days": 7,
            "effective_retention_window_in_days": 7,
            "enable_pg_native_login": True,
            "effective_enable_pg_native_login": True,
            "read_write_dns": host,
            "read_only_dns": f"ro-{host}",
        }
        with self._lock:
            self.instances[name] = instance
        return instance

    def api_calls(self, prefix: str = "/api/") -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.startswith(prefix)]

    # -- answering ---------------------------------------------------------------------------

    def _answer(self, call: Call) -> tuple[int, dict[str, Any]]:
        if call.method == "GET" and call.path == "/.well-known/databricks-config":
            return 200, {
                "oidc_endpoint": f"{self.url}/oidc",
                "account_id": ACCOUNT_ID,
                "workspace_id": WORKSPACE_ID,
                "cloud": "aws",
            }
        if not call.path.startswith("/api/"):
            return self._not_found(call)
        if call.headers.get("authorization") != f"Bearer {self.token}":
            self.refused.append(call)
            return 401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}
        prefix = "/api/2.0/database/instances/"
        if call.method == "GET" and call.path.startswith(prefix):
            name = unquote(call.path[len(prefix) :])
            instance = self.instances.get(name)
            if instance is None:
                return 404, {
                    "error_code": "RESOURCE_DOES_NOT_EXIST",
                    "message": f"Database instance '{name}' does not exist.",
                }
            return 200, dict(instance)
        if call.method == "GET" and call.path == "/api/2.0/preview/scim/v2/Me":
            return 200, {
                "schemas": [
                    "urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:workspace:2.0:User",
                ],
                "id": "7713924526712238",
                "userName": self.user,
                "displayName": "lakefn jobs",
                "active": True,
                "emails": [],
                "groups": [{"display": "users", "value": "5018309541920161", "type": "direct"}],
            }
        if call.method == "POST" and call.path == "/api/2.0/database/credentials":
            return self._credential(call)
        return self._not_found(call)

    def _credential(self, call: Call) -> tuple[int, dict[str, Any]]:
        body = call.body or {}
        names = body.get("instance_names")
        if not body.get("request_id") or not isinstance(names, list) or not names:
            return 400, {
                "error_code": "INVALID_PARAMETER_VALUE",
                "message": "request_id and at least one of instance_names or claims are required",
            }
        missing = [n for n in names if n not in self.instances]
        if missing:
            return 404, {
                "error_code": "RESOURCE_DOES_NOT_EXIST",
                "message": f"Database instance '{missing[0]}' does not exist.",
            }
        token = f"lbcred-{len(self.credentials) + 1}-{uuid.uuid4().hex}"
        credential = {
            "token": token,
            "expiration_time": _rfc3339(self.clock() + CREDENTIAL_SECONDS),
        }
        if self.on_credential is not None:
            self.on_credential(token)
        with self._lock:
            self.credentials.append({**credential, "instance_names": list(names)})
        return 200, credential

    def _not_found(self, call: Call) -> tuple[int, dict[str, Any]]:
        self.unknown.append(call)
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for {call.path}"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        workspace = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                call = Call(
                    self.command,
                    urlsplit(self.path).path,
                    body,
                    {k.lower(): v for k, v in self.headers.items()},
                )
                with workspace._lock:
                    workspace.calls.append(call)
                status, answer = workspace._answer(call)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the calls are recorded; stderr stays quiet

        return Handler
