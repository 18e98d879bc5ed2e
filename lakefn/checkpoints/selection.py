"""Where checkpoints, leases and the journal live: app.yaml's `state:`, a path or a URL.

    .lakefn/state.db, sqlite:///state.db     a SQLite file (the local default; relative paths
                                             resolve against app.yaml's folder)
    postgresql://user@host:5432/db?sslmode=require[&schema=lakefn]
                                             any PostgreSQL (password from the URL, PGPASSWORD
                                             or ~/.pgpass, as libpq does)
    lakebase[?schema=lakefn]                 a Databricks App's database resource: the PG*
                                             variables, a fresh OAuth token per connection
    lakebase?instance=NAME[&database=DB]     a Lakebase instance found by name through
                                             databricks-sdk (a job, a notebook, a laptop)

Stores are looked up by scheme and imported only when chosen, so `import lakefn` never imports
psycopg or databricks-sdk. Every store class builds itself from the setting with
`from_state(state, project_root, *, clock=None)`. `clock`, when given, is the seconds the
runtime lives by (its `Clock`): the store judges lease expiry on it, the same time the watcher
renews by, so a lease is never judged on two clocks. A store from elsewhere (a plug-in, a
test) is added with `register_store(scheme, "module:Class")` before the project is loaded.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._exceptions import BadStateSetting, LakefnError, StateNeedsPackage

if TYPE_CHECKING:
    from ..abc import CheckpointStore
    from ..project import Project

logger = logging.getLogger("lakefn")


@dataclass(frozen=True)
class StoreEntry:
    """A `state:` scheme's store: `target` is "module:Class" (imported only when chosen) or
    the class; `form` how the setting reads in messages (None: an alias, not listed); `extra`
    the `pip install 'lakefn[extra]'` that brings its driver (None: nothing to install)."""

    target: str | type[Any]
    form: str | None = None
    extra: str | None = None


#: scheme -> its store; adding a store to lakefn is one module and one line here
STORES: dict[str, StoreEntry] = {
    "sqlite": StoreEntry(
        "lakefn.checkpoints.sqlite:SQLiteCheckpointStore", "a file path, sqlite:///path"
    ),
    "postgresql": StoreEntry(
        "lakefn.checkpoints.postgres:PostgresCheckpointStore",
        "postgresql://user@host:5432/db",
        "postgres",
    ),
    "postgres": StoreEntry("lakefn.checkpoints.postgres:PostgresCheckpointStore", None, "postgres"),
    "lakebase": StoreEntry(
        "lakefn.checkpoints.lakebase:LakebaseCheckpointStore", "lakebase", "postgres"
    ),
}
_BUILT_IN = frozenset(STORES)
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def register_store(
    scheme: str, target: str | type[Any], *, form: str | None = None, extra: str | None = None
) -> None:
    """Add a state store: app.yaml accepts `state: <scheme>://...` in projects loaded after
    this call. `target` is a `CheckpointStore` class with `from_state(state, project_root, *,
    clock=None)`, or "module:Class" naming one; `form` shows the setting in messages
    (default `<scheme>://...`); `extra` is the lakefn extra that installs its driver."""
    scheme = scheme.lower()
    if scheme in _BUILT_IN:
        raise ValueError(f"{scheme!r} is one of lakefn's own state stores")
    if not _SCHEME.fullmatch(scheme):
        raise ValueError(f"{scheme!r} is no URL scheme (a letter, then letters, digits, + - .)")
    found = STORES.get(scheme)
    if found is not None and found.target is not target:
        raise ValueError(f"a state store {scheme!r} is already registered")
    STORES[scheme] = StoreEntry(target, form or f"{scheme}://...", extra)


def unregister_store(scheme: str) -> None:
    """Forget a store added with `register_store` (lakefn's own stay)."""
    if scheme in _BUILT_IN:
        raise ValueError(f"{scheme!r} is one of lakefn's own state stores")
    STORES.pop(scheme, None)


def accepted_forms() -> str:
    """What the message for a bad `state:` shows as the accepted forms."""
    forms = [entry.form for entry in STORES.values() if entry.form]
    return ", ".join(forms[:-1]) + f", or {forms[-1]}" if len(forms) > 1 else "".join(forms)


def scheme_of(state: str) -> str:
    """The store kind a `state:` value names; LakefnError when it names none."""
    text = state.strip()
    if not text:
        raise BadStateSetting(text, forms=accepted_forms())
    if text == "lakebase" or text.startswith("lakebase?"):
        return "lakebase"
    if "://" not in text:
        return "sqlite"  # a plain path
    scheme = text.split("://", 1)[0].lower()
    if scheme not in STORES:
        from .._plugins import load_plugins

        load_plugins()  # an installed package may offer it
    if scheme not in STORES or scheme == "lakebase":
        raise BadStateSetting(redact(text), "scheme", forms=accepted_forms())
    if scheme == "sqlite" and not text.startswith("sqlite:///"):
        raise BadStateSetting(text, "sqlite")
    return scheme


def state_kind(state: str) -> str | None:
    """`scheme_of(state)`, or None when the setting names no store (it could not open one)."""
    try:
        return scheme_of(state)
    except LakefnError:
        return None


def sqlite_path(state: str, project_root: Path) -> Path:
    """The file of a SQLite `state:`: `sqlite:///rel` or `sqlite:////abs` (SQLAlchemy's
    convention) or a plain path, relative ones against the project's folder."""
    text = state.strip()
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    path = Path(text).expanduser()
    return path if path.is_absolute() else project_root / path


def project_state(project: Project) -> str:
    """The project's `state:` setting, `LAKEFN_STATE` winning."""
    return os.environ.get("LAKEFN_STATE") or project.config.state


def open_store(
    state: str, project_root: str | os.PathLike[str], *, clock: Callable[[], float] | None = None
) -> CheckpointStore:
    """The checkpoint store `state` names (see the module docstring). `clock` is the seconds
    its leases expire by; None keeps the store's own (wall-clock seconds)."""
    scheme = scheme_of(state)
    entry = STORES[scheme]
    store_class = entry.target
    if isinstance(store_class, str):
        module_name, _, class_name = store_class.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if entry.extra is None:
                raise
            raise StateNeedsPackage(redact(state), exc.name, entry.extra) from None
        store_class = getattr(module, class_name)
    root = Path(project_root)
    if clock is None:
        return store_class.from_state(state, root)  # type: ignore[no-any-return]
    if "clock" not in inspect.signature(store_class.from_state).parameters:
        # Its leases would expire on its own time while the watcher renews on `clock`: two
        # owners could deliver the same table. Refused rather than risked.
        raise BadStateSetting(
            redact(state),
            f"the {scheme} store cannot take the runtime's clock (its from_state has no "
            "`clock` argument), and a runtime on a clock of its own (a FakeClock) must judge "
            "leases on that clock; run on the system clock, or give from_state a `clock`",
        )
    return store_class.from_state(state, root, clock=clock)  # type: ignore[no-any-return]


def open_project_store(
    project: Project, *, clock: Callable[[], float] | None = None
) -> CheckpointStore:
    """The project's store (leases on `clock`, see `open_store`); as a Databricks App on a
    local file, with a warning first."""
    warning = ephemeral_state_warning(project)
    if warning:
        logger.warning("%s", warning)
    return open_store(project_state(project), project.root, clock=clock)


def redact(state: str) -> str:
    """`state` fit to show: a password in the URL replaced by ***."""
    if "://" not in state:
        return state
    parts = urlsplit(state)
    if parts.password is None:
        return state
    netloc = parts.netloc.rsplit("@", 1)
    shown = f"{parts.username}:***@{netloc[-1]}"
    return parts._replace(netloc=shown).geturl()


def ephemeral_state_warning(project: Project, *, deployed: bool | None = None) -> str | None:
    """Running as a Databricks App, watching tables, with checkpoints on the App's own disk:
    that disk starts empty at every deploy or restart, so versions committed meanwhile would
    never be delivered. The warning says so and names the fix; None when all is well.
    `deployed` (default: whether DATABRICKS_APP_NAME is set) asks as if deployed."""
    from ..triggers import KINDS

    if deployed is None:
        deployed = bool(os.environ.get("DATABRICKS_APP_NAME"))
    if not deployed:
        return None
    watched = [
        f.name for f in project.config.functions if KINDS[f.kind].uses_table and f.run_on == "app"
    ]
    state = project_state(project)
    if not watched or state_kind(state) != "sqlite":
        return None
    return (
        f"state is a local SQLite file ({state}), and a Databricks App's disk is emptied at "
        "every deploy and restart: the table versions committed meanwhile would never be "
        f"delivered to {', '.join(watched)}. Add a database resource (Lakebase) to the App "
        "and set `state: lakebase` in app.yaml."
    )


def with_state_warning(project: Project, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """/lakefn/tables rows, each carrying the ephemeral-state warning when there is one."""
    warning = ephemeral_state_warning(project)
    if warning:
        for row in rows:
            row["state_warning"] = warning
    return rows
