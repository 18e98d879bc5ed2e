"""Where checkpoints, leases and the journal live: app.yaml's `state:`, a path or a URL.

    .lakefn/state.db, sqlite:///state.db     a SQLite file (the local default; relative paths
                                             resolve against app.yaml's folder)
    postgresql://user@host:5432/db?sslmode=require[&schema=lakefn]
                                             any PostgreSQL (password from the URL, PGPASSWORD
                                             or ~/.pgpass, as libpq does)
    lakebase[?schema=lakefn]                 a Databricks App's database resource: the PG*
                                             variables, a fresh OAuth token per connection

Stores are looked up by scheme and imported only when chosen, so `import lakefn` never imports
psycopg or databricks-sdk. A store class builds itself from the setting with
`from_state(state, project_root)`; SQLite's, which predates URLs, is handed its file path.
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._exceptions import BadStateSetting, LakefnError, StateNeedsPackage

if TYPE_CHECKING:
    from ..abc import CheckpointStore
    from ..project import Project

logger = logging.getLogger("lakefn")

#: scheme -> "module:Class"; adding a store is one module and one line here
STORES = {
    "sqlite": "lakefn.checkpoints.sqlite:SQLiteCheckpointStore",
    "postgresql": "lakefn.checkpoints.postgres:PostgresCheckpointStore",
    "postgres": "lakefn.checkpoints.postgres:PostgresCheckpointStore",
    "lakebase": "lakefn.checkpoints.lakebase:LakebaseCheckpointStore",
}

#: what the message for a bad `state:` shows as the accepted forms
FORMS = "a file path, sqlite:///path, postgresql://user@host:5432/db, or lakebase"


def scheme_of(state: str) -> str:
    """The store kind a `state:` value names; LakefnError when it names none."""
    text = state.strip()
    if not text:
        raise BadStateSetting(text, forms=FORMS)
    if text == "lakebase" or text.startswith("lakebase?"):
        return "lakebase"
    if "://" not in text:
        return "sqlite"  # a plain path
    scheme = text.split("://", 1)[0].lower()
    if scheme not in STORES or scheme == "lakebase":
        raise BadStateSetting(redact(text), "scheme", forms=FORMS)
    if scheme == "sqlite" and not text.startswith("sqlite:///"):
        raise BadStateSetting(text, "sqlite")
    return scheme


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


def open_store(state: str, project_root: str | os.PathLike[str]) -> CheckpointStore:
    """The checkpoint store `state` names (see the module docstring)."""
    scheme = scheme_of(state)
    module_name, _, class_name = STORES[scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StateNeedsPackage(redact(state), exc.name, "postgres") from None
    store_class = getattr(module, class_name)
    root = Path(project_root)
    factory = getattr(store_class, "from_state", None)
    if factory is None:
        return store_class(sqlite_path(state, root))  # type: ignore[no-any-return]
    return factory(state, root)  # type: ignore[no-any-return]


def open_project_store(project: Project) -> CheckpointStore:
    """The project's store; as a Databricks App on a local file, with a warning first."""
    warning = ephemeral_state_warning(project)
    if warning:
        logger.warning("%s", warning)
    return open_store(project_state(project), project.root)


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
    try:
        local = scheme_of(state) == "sqlite"
    except LakefnError:
        return None
    if not watched or not local:
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
