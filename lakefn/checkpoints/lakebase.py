"""`state: lakebase`: the PostgreSQL store on a Databricks App's database resource.

Databricks Apps sets PGHOST, PGPORT, PGDATABASE, PGUSER (the App's service principal),
PGSSLMODE and PGAPPNAME; libpq reads them itself. The password is a workspace OAuth token that
lives an hour and is checked only at login, so each new connection asks databricks-sdk for one
(the SDK hands back its cached token while it is still good, and a new one after). PGPASSWORD,
when set, wins: a native Postgres role, or a local run against any PostgreSQL.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from .._exceptions import (
    BadStateOptions,
    LakebaseNotConfigured,
    StateNeedsPackage,
    StateStoreUnavailable,
)
from .postgres import DEFAULT_SCHEMA, PostgresCheckpointStore

if TYPE_CHECKING:
    from databricks.sdk.core import Config

#: what Databricks Apps sets from a database resource, and that libpq needs at least
REQUIRED = ("PGHOST", "PGDATABASE", "PGUSER")


class OAuthPassword:
    """A password source for `PostgresCheckpointStore`: the bearer token databricks-sdk's
    `Config` authenticates with, fetched per call. Never logged, never in a message."""

    def __init__(self, config: Config | None = None) -> None:
        self._config = config
        self._lock = threading.Lock()

    def _sdk_config(self) -> Config:
        with self._lock:
            if self._config is None:
                try:
                    from databricks.sdk.core import Config
                except ImportError:
                    raise StateNeedsPackage(
                        "lakebase", "databricks-sdk", "databricks", "its OAuth token"
                    ) from None
                self._config = Config()
            return self._config

    def __call__(self) -> str | None:
        if os.environ.get("PGPASSWORD"):
            return None  # libpq uses it as is
        config = self._sdk_config()
        try:
            headers: dict[str, Any] = config.authenticate()
        except Exception as exc:  # noqa: BLE001 - any SDK failure: a store we cannot log in to
            raise StateStoreUnavailable(
                "lakebase", f"databricks-sdk could not give an OAuth token: {type(exc).__name__}"
            ) from None
        scheme, _, token = str(headers.get("Authorization", "")).partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise StateStoreUnavailable(
                "lakebase",
                "databricks-sdk's authentication gives no bearer token; use OAuth (as a "
                "Databricks App does) or set PGPASSWORD",
            )
        return token


class LakebaseCheckpointStore(PostgresCheckpointStore):
    name = "lakebase"

    def __init__(
        self, *, schema: str = DEFAULT_SCHEMA, config: Config | None = None, **kwargs: Any
    ) -> None:
        missing = [name for name in REQUIRED if not os.environ.get(name)]
        if missing:
            raise LakebaseNotConfigured(missing)
        self.token = OAuthPassword(config)
        super().__init__("", schema=schema, password=self.token, **kwargs)

    @classmethod
    def from_state(
        cls, state: str, project_root: Path, *, clock: Callable[[], float] = time.time
    ) -> LakebaseCheckpointStore:
        _, _, query = state.partition("?")
        options = dict(parse_qsl(query))
        unknown = set(options) - {"schema"}
        if unknown:
            raise BadStateOptions(state, "lakebase", "?schema=NAME", unknown)
        return cls(schema=options.get("schema", DEFAULT_SCHEMA), clock=clock)
