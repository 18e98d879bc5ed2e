"""Checkpoint tools for operators: list every (function, table) position with its lease, and
move one (rewind to reprocess, skip ahead), as `lakefn checkpoints` and `%lakefn checkpoints` do.

Moving a checkpoint while a live process delivers that table is refused unless forced: the
holder keeps its position in memory while it holds the lease. Forced, the tool takes the lease
and keeps it for one lease period, so the holder's next renewal fails, it forgets its cached
position, and it resumes from the new checkpoint once the tool's lease runs out.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._exceptions import (
    BadCheckpointVersion,
    CheckpointBusy,
    CheckpointConflict,
    LeaseHeld,
    NotATableFunction,
    WrongTable,
)
from ..triggers import KINDS

if TYPE_CHECKING:
    from ..abc import CheckpointStore
    from ..project import Project

#: a watched function's seconds between checks (its lease is three of them) when its trigger
#: sets none: the unity_table default
DEFAULT_CHECK_INTERVAL = 30.0


@dataclass(frozen=True)
class CheckpointRow:
    """One watched (function, table): its checkpoint (the last version handed over) and lease."""

    function: str
    table: str
    version: int | None
    updated_at: datetime | None
    lease_holder: str | None
    lease_expires: datetime | None
    #: the store's time when this was read: a lease is live by the clock the store expires it
    #: by (a runtime's FakeClock, for a store it opened), not by this host's
    as_of: datetime | None = None

    @property
    def leased(self) -> bool:
        now = self.as_of or datetime.now(timezone.utc)
        return self.lease_expires is not None and self.lease_expires > now

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "table": self.table,
            "version": self.version,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "lease_holder": self.lease_holder if self.leased else None,
            "lease_expires": self.lease_expires.isoformat()
            if self.leased and self.lease_expires
            else None,
        }


def _when(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(float(seconds), timezone.utc)


def _details(store: CheckpointStore) -> list[dict[str, Any]]:
    """key, version, updated_at, owner, expires_at for every checkpoint the store holds."""
    details = getattr(store, "details", None)
    if callable(details):
        return list(details())
    from .sqlite import SQLiteCheckpointStore

    if isinstance(store, SQLiteCheckpointStore):
        # Its own read-only look at the file: the store's connection belongs to its users.
        db = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute(
                "SELECT c.key, c.version, c.updated_at, l.owner, l.expires_at "
                "FROM checkpoints c LEFT JOIN leases l ON l.key = c.key ORDER BY c.key"
            ).fetchall()
        finally:
            db.close()
        return [
            {"key": k, "version": v, "updated_at": u, "owner": o, "expires_at": e}
            for k, v, u, o, e in rows
        ]
    return [
        {"key": k, "version": v, "updated_at": None, "owner": None, "expires_at": None}
        for k, v in store.items().items()
    ]


def watched(project: Project) -> dict[str, tuple[str, float]]:
    """function -> (table, check_interval) for every function whose kind watches a table."""
    return {
        fn.name: (str(fn.table), getattr(fn.trigger, "check_interval", DEFAULT_CHECK_INTERVAL))
        for fn in project.config.functions
        if KINDS[fn.kind].uses_table and fn.table is not None
    }


class CheckpointList(list[CheckpointRow]):
    """The rows, shown as a table: as text in a terminal, as HTML in a notebook."""

    HEADERS = ("FUNCTION", "TABLE", "VERSION", "UPDATED", "LEASE HOLDER", "LEASE EXPIRES")

    def cells(self) -> list[list[str]]:
        out = []
        for row in self:
            shown = row.to_dict()
            out.append(
                [
                    row.function,
                    row.table,
                    "-" if row.version is None else str(row.version),
                    _short(shown["updated_at"]),
                    shown["lease_holder"] or "-",
                    _short(shown["lease_expires"]),
                ]
            )
        return out

    def __repr__(self) -> str:
        if not self:
            return "no unity_table functions and no checkpoints"
        table = [list(self.HEADERS), *self.cells()]
        widths = [max(len(r[i]) for r in table) for i in range(len(self.HEADERS))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(r, widths, strict=True)).rstrip()
            for r in table
        )

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{escape(h.title())}</th>" for h in self.HEADERS)
        body = "".join(
            "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>"
            for cells in self.cells()
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _short(iso: str | None) -> str:
    if not iso:
        return "-"
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def list_checkpoints(project: Project, store: CheckpointStore) -> CheckpointList:
    """Every watched function (with no checkpoint yet if it never ran), and any other
    checkpoint the store holds (a function since removed from app.yaml)."""
    rows: dict[str, CheckpointRow] = {}
    lease_clock = getattr(store, "lease_clock", None)
    as_of = _when(lease_clock()) if callable(lease_clock) else None
    for name, (table, _) in watched(project).items():
        rows[f"{name}|{table}"] = CheckpointRow(name, table, None, None, None, None, as_of)
    for item in _details(store):
        function, _, table = str(item["key"]).partition("|")
        rows[item["key"]] = CheckpointRow(
            function,
            table,
            int(item["version"]),
            _when(item["updated_at"]),
            item["owner"],
            _when(item["expires_at"]),
            as_of,
        )
    return CheckpointList(sorted(rows.values(), key=lambda r: (r.function, r.table)))


@dataclass(frozen=True)
class CheckpointMoved:
    function: str
    table: str
    previous: int | None
    version: int
    #: the live holder whose lease was taken (--force), None when nobody was delivering
    displaced: str | None
    #: seconds until the displaced holder may resume (it then starts after `version`)
    resumes_in: float

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        text = (
            f"{self.function} ({self.table}): checkpoint {self.previous} -> {self.version}; "
            f"the next delivery starts at version {self.version + 1}"
        )
        if self.displaced:
            text += (
                f"\n  took the lease from {self.displaced}: it resumes from the new checkpoint "
                f"within {self.resumes_in:g} s"
            )
        return text


def tool_owner() -> str:
    # Not host:pid:…, so watchers never take it for a crashed server of theirs and take it
    # over at once: a forced move must outlast the holder's next renewal.
    return f"lakefn-checkpoints:{socket.gethostname()}:{os.getpid()}"


def set_checkpoint(
    project: Project,
    store: CheckpointStore,
    function: str,
    version: int,
    *,
    table: str | None = None,
    force: bool = False,
    force_hint: str = "use --force",
) -> CheckpointMoved:
    """Make `version` the last processed version of `function`'s table (-1: before version
    0), so delivery resumes at `version + 1`. `force_hint` says how the caller's user forces
    a move (a flag in a terminal, a checkbox in the console)."""
    from ..watching.lease import holder_is_dead

    tables = watched(project)
    if function not in tables:
        raise NotATableFunction(function, list(tables))
    own_table, interval = tables[function]
    if table is not None and table != own_table:
        raise WrongTable(function, own_table, table)
    if version < -1:
        raise BadCheckpointVersion(version)
    key = f"{function}|{own_table}"
    ttl = max(10.0, 3 * interval)  # the watcher's own lease period for this function
    owner = tool_owner()
    holder = next((r for r in list_checkpoints(project, store) if r.function == function), None)
    live = holder.lease_holder if holder is not None and holder.leased else None
    if not store.acquire(key, owner, ttl, take_over=holder_is_dead):
        if not force:
            until = holder.lease_expires.isoformat() if holder and holder.lease_expires else "?"
            raise LeaseHeld(function, live, until, force_hint)
        store.acquire(key, owner, ttl, take_over=lambda _: True)
        live = live or "another process"
    else:
        live = None
    previous = move(store, key, version)
    if live is None:
        store.release(key, owner)
    return CheckpointMoved(function, own_table, previous, version, live, ttl if live else 0.0)


def move(store: CheckpointStore, key: str, version: int) -> int | None:
    """Set the checkpoint at `key` to `version` by compare-and-set; the value it had."""
    for _ in range(5):
        previous = store.load(key)
        try:
            store.save(key, version, expected=previous)
        except CheckpointConflict:
            time.sleep(0.05)  # the holder saved meanwhile: move from its value
            continue
        return previous
    raise CheckpointBusy(key)
