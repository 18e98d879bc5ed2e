"""`state: lakebase`: the PostgreSQL store on Lakebase, found one of two ways.

As a Databricks App with a database resource, Databricks Apps sets PGHOST, PGPORT,
PGDATABASE, PGUSER (the App's service principal), PGSSLMODE and PGAPPNAME; libpq reads them
itself. The password is a workspace OAuth token that lives an hour and is checked only at
login, so each new connection asks databricks-sdk for one (the SDK hands back its cached token
while it is still good, and a new one after). PGPASSWORD, when set, wins: a native Postgres
role, or a local run against any PostgreSQL.

Anywhere else (a Databricks Job above all, which gets none of the App's variables) the store
finds the instance itself, given its name (`lakebase?instance=NAME`, or
LAKEFN_LAKEBASE_INSTANCE): databricks-sdk says where it is (`read_write_dns`), who we are
(the current user's name; a service principal's is its application id, the name of its
Postgres role) and mints a database credential for it, the password. A credential lives an
hour and is checked only at login: one is kept and a new one minted `RENEW_BEFORE` seconds
before it expires, not one per connection. Port 5432 and sslmode require, unless libpq's own
PGPORT / PGSSLMODE say otherwise. The App's variables win when all are set: an App logs in
with the resource it was granted, and the instance name is then not looked up.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import psycopg
from psycopg.conninfo import make_conninfo

from .._exceptions import (
    BadLakebaseName,
    BadStateOptions,
    LakebaseNotConfigured,
    StateNeedsPackage,
    StateStoreUnavailable,
)
from ._pg_connections import Connections
from .postgres import DEFAULT_SCHEMA, PostgresCheckpointStore, logger

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

#: what Databricks Apps sets from a database resource, and that libpq needs at least
REQUIRED = ("PGHOST", "PGDATABASE", "PGUSER")
#: where the instance and database come from when the `state:` setting names none
INSTANCE_ENV = "LAKEFN_LAKEBASE_INSTANCE"
DATABASE_ENV = "LAKEFN_LAKEBASE_DATABASE"
#: the database every Lakebase instance has
DEFAULT_DATABASE = "databricks_postgres"
#: the options `state: lakebase?...` takes, as the message for an unknown one shows them
OPTIONS = ("schema", "instance", "database")
KNOWN_OPTIONS = "?schema=NAME&instance=NAME&database=NAME"
#: a credential's life (Lakebase: an hour), when the answer gives no readable expiry
CREDENTIAL_LIFE = 3600.0
#: seconds before its expiry a credential is replaced: a login must never race its end
RENEW_BEFORE = 300.0
#: instance states that take no connections, and what to do about each
NOT_SERVING = {
    "STOPPED": "start it in the workspace (Compute > Lakebase Postgres) and run again",
    "STARTING": "run again once it is AVAILABLE",
    "DELETING": "name another instance",
}
_INSTANCE_NAME = re.compile(r"[A-Za-z0-9-]{1,63}")
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")
_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)?")


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


class InstanceLogin:
    """Where and as whom to log in to Lakebase instance `instance`, found through
    databricks-sdk, and the database credential to log in with. `clock` (epoch seconds) is
    what a credential's expiry is judged by."""

    def __init__(
        self,
        instance: str,
        database: str,
        *,
        config: Config | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.instance = instance
        self.database = database
        self.where = f"lakebase instance {instance!r} (database {database})"
        #: credentials minted so far
        self.minted = 0
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._workspace: WorkspaceClient | None = None
        self._target: tuple[str, str] | None = None
        self._token: str | None = None
        self._renew_at = 0.0

    def conninfo(self) -> str:
        """The instance's address and our role; looked up once, and again after `forget`."""
        with self._lock:
            if self._target is None:
                self._target = self._find()
            host, user = self._target
        # No port: libpq's default, 5432, is Lakebase's (PGPORT, when set, says otherwise).
        sslmode = os.environ.get("PGSSLMODE") or "require"
        return make_conninfo(host=host, user=user, dbname=self.database, sslmode=sslmode)

    def forget(self, *, credential: bool) -> None:
        """A login failed: look the instance up again next time (it may have stopped or
        moved), and with `credential`, mint a new credential too (it was refused)."""
        with self._lock:
            self._target = None
            if credential:
                self._token = None

    def password(self) -> str:
        """The credential, minted anew only when the one kept is near its expiry."""
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._renew_at:
                self._token, self._renew_at = self._mint(now)
            return self._token

    # -- the workspace's answers -------------------------------------------------------------

    def _client(self) -> WorkspaceClient:
        if self._workspace is None:
            try:
                from databricks.sdk import WorkspaceClient
                from databricks.sdk.core import Config
            except ImportError:
                raise StateNeedsPackage(
                    f"lakebase?instance={self.instance}", "databricks-sdk", "databricks"
                ) from None
            if not hasattr(WorkspaceClient, "database"):  # the Lakebase API came in 0.57
                raise StateNeedsPackage(
                    f"lakebase?instance={self.instance}", "databricks-sdk>=0.57", "databricks"
                )
            try:
                self._workspace = WorkspaceClient(config=self._config or Config())
            except Exception as exc:  # noqa: BLE001 - no credentials: said plainly
                raise self._unavailable("databricks-sdk has no workspace to ask", exc) from None
        return self._workspace

    def _find(self) -> tuple[str, str]:
        workspace = self._client()  # StateNeedsPackage first, without databricks-sdk
        from databricks.sdk.errors import NotFound

        try:
            instance = workspace.database.get_database_instance(name=self.instance)
        except NotFound:
            raise self._unavailable(
                "the workspace has no such instance (or the caller may not see it)"
            ) from None
        except Exception as exc:  # noqa: BLE001 - any SDK failure: an instance we cannot find
            raise self._unavailable("databricks-sdk could not look it up", exc) from None
        state = instance.state.value if instance.state is not None else None
        if state in NOT_SERVING:
            raise self._unavailable(f"it is {state}: {NOT_SERVING[state]}")
        if not instance.read_write_dns:
            raise self._unavailable(f"it has no address yet (state {state})")
        try:
            user = workspace.current_user.me().user_name
        except Exception as exc:  # noqa: BLE001
            raise self._unavailable("databricks-sdk could not say who is logging in", exc) from None
        if not user:
            raise self._unavailable("databricks-sdk gives no user name to log in as")
        return instance.read_write_dns, user

    def _mint(self, now: float) -> tuple[str, float]:
        try:
            credential = self._client().database.generate_database_credential(
                request_id=str(uuid.uuid4()), instance_names=[self.instance]
            )
        except (StateNeedsPackage, StateStoreUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._unavailable("databricks-sdk could not mint a credential", exc) from None
        if not credential.token:
            raise self._unavailable("the workspace gave an empty credential")
        self.minted += 1
        expires = _epoch(getattr(credential, "expiration_time", None))
        left = CREDENTIAL_LIFE if expires is None else expires - now
        # Bounded both ways: a clock far off the workspace's must neither mint per connection
        # nor keep a credential past its hour.
        keep = min(max(left - RENEW_BEFORE, 60.0), CREDENTIAL_LIFE - RENEW_BEFORE)
        return credential.token, now + keep

    def _unavailable(self, reason: str, exc: BaseException | None = None) -> StateStoreUnavailable:
        if exc is not None:
            said = " ".join(str(exc).split())
            reason += f": {type(exc).__name__}" + (f": {said}" if said else "")
        return StateStoreUnavailable(self.where, reason)


def _epoch(text: str | None) -> float | None:
    """An RFC 3339 time as the workspace writes it (nanoseconds allowed) in epoch seconds."""
    found = _TIMESTAMP.fullmatch((text or "").strip())
    if found is None:
        return None
    zone = found[3] if found[3] and found[3] not in "Zz" else "+00:00"
    fraction = float(f"0.{found[2]}") if found[2] else 0.0
    return datetime.fromisoformat(found[1] + zone).timestamp() + fraction


class _InstanceConnections(Connections):
    """Connections to wherever the instance is: its address is asked for before the first
    connection and again after a failed one, so a stopped instance says so."""

    def __init__(self, login: InstanceLogin, like: Connections) -> None:
        super().__init__(
            "", password=login.password, keep=like._keep, connect_timeout=like._connect_timeout
        )
        self.login = login

    def connect(self) -> psycopg.Connection[Any]:
        self.conninfo = self.login.conninfo()
        try:
            return super().connect()
        except psycopg.OperationalError as exc:
            said = str(exc)
            refused = "authentication failed" in said
            # Not after any failure: a network blip says nothing about where the instance is,
            # and each look-up is two workspace calls made while other connections wait.
            if refused or "could not translate host name" in said:
                self.login.forget(credential=refused)
            if not refused:
                raise
            # The usual first-run trouble: the principal has no Postgres role there yet.
            raise psycopg.OperationalError(
                f"{exc}; the principal logging in needs a Postgres role on the instance "
                "(the instance's Permissions, or databricks_create_role)"
            ) from None


def check_name(value: str, what: str, where: str) -> str:
    """`value` as a Lakebase `what` ("instance" or "database") name; BadLakebaseName naming
    `where` it came from when it cannot be one."""
    # A database name also travels in a job's `--state lakebase?...&database=NAME`, filled
    # in by the bundle unquoted: only characters a query string passes through as they are.
    pattern = _INSTANCE_NAME if what == "instance" else _DATABASE_NAME
    if pattern.fullmatch(value) is None:
        raise BadLakebaseName(where, what, value)
    return value


def _from_env(name: str, what: str) -> str | None:
    value = os.environ.get(name)
    return None if not value else check_name(value, what, name)


class LakebaseCheckpointStore(PostgresCheckpointStore):
    """PostgreSQL on Lakebase: the App's database resource (the PG* variables) when all its
    variables are set, else the instance named by `instance` (or LAKEFN_LAKEBASE_INSTANCE),
    database `database` (or LAKEFN_LAKEBASE_DATABASE, default databricks_postgres)."""

    name = "lakebase"

    def __init__(
        self,
        *,
        schema: str = DEFAULT_SCHEMA,
        instance: str | None = None,
        database: str | None = None,
        config: Config | None = None,
        **kwargs: Any,
    ) -> None:
        missing = [name for name in REQUIRED if not os.environ.get(name)]
        self.login: InstanceLogin | None = None
        if not missing:  # an App's database resource: libpq reads the PG* variables
            if instance is not None:
                logger.warning(
                    "state: lakebase names instance %r, but PGHOST, PGDATABASE and PGUSER are "
                    "set (%s@%s/%s), as a Databricks App's database resource sets them: those "
                    "win; unset them to use the instance",
                    instance,
                    os.environ["PGUSER"],
                    os.environ["PGHOST"],
                    os.environ["PGDATABASE"],
                )
            self.token = OAuthPassword(config)
            super().__init__("", schema=schema, password=self.token, **kwargs)
            return
        if instance is not None:
            check_name(instance, "instance", "lakebase instance")
        instance = instance if instance is not None else _from_env(INSTANCE_ENV, "instance")
        if instance is None:
            raise LakebaseNotConfigured(missing, instance_hint=True)
        if database is not None:
            check_name(database, "database", "lakebase database")
        database = database or _from_env(DATABASE_ENV, "database") or DEFAULT_DATABASE
        login = InstanceLogin(
            instance, database, config=config, clock=kwargs.get("clock", time.time)
        )
        self.login = login
        super().__init__("", schema=schema, password=login.password, **kwargs)
        self.where = login.where
        self._connections = _InstanceConnections(login, self._connections)

    @classmethod
    def from_state(
        cls, state: str, project_root: Path, *, clock: Callable[[], float] = time.time
    ) -> LakebaseCheckpointStore:
        _, _, query = state.partition("?")
        options = dict(parse_qsl(query, keep_blank_values=True))
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise BadStateOptions(state, "lakebase", KNOWN_OPTIONS, unknown)
        for what in ("instance", "database"):
            if what in options:
                check_name(options[what], what, f"state {state!r}")
        return cls(
            schema=options.get("schema", DEFAULT_SCHEMA),
            instance=options.get("instance"),
            database=options.get("database"),
            clock=clock,
        )
