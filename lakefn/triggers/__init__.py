"""Trigger kinds: the one mapping of app.yaml's `type:` to the kind that runs it.

app.yaml's trigger union, the runtime, the server, the CLI, the notebook and the console all go
through `KINDS`. A kind is a `lakefn.abc.TriggerKind` subclass in its own module; adding one
to lakefn is that module and one line here. A kind defined elsewhere (a plug-in, a test) is
added with `register(kind)` before the project is loaded, and taken out with `unregister`.

Import-light: the kind modules hold config models and runners, never FastAPI or table
readers (those load when a runner first needs them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .http import HttpKind
from .timer import TimerKind
from .unity_table import TableKind

if TYPE_CHECKING:
    from ..abc import TriggerKind

KINDS: dict[str, type[TriggerKind]] = {
    "http": HttpKind,
    "timer": TimerKind,
    "unity_table": TableKind,
}
_BUILT_IN = frozenset(KINDS)


def kind(type_name: str) -> type[TriggerKind]:
    """The kind of `type: <type_name>` (KeyError for an unknown one: app.yaml refused it)."""
    return KINDS[type_name]


def register(kind_class: type[TriggerKind]) -> type[TriggerKind]:
    """Add a trigger kind (usable as a class decorator): app.yaml accepts its `type:` from now
    on, in projects loaded after this call."""
    name = kind_class.type
    if name in KINDS and KINDS[name] is not kind_class:
        raise ValueError(f"a trigger kind {name!r} is already registered: {KINDS[name]!r}")
    KINDS[name] = kind_class
    _rebuild()
    return kind_class


def unregister(type_name: str) -> None:
    """Forget a kind added with `register` (lakefn's own kinds stay)."""
    if type_name in _BUILT_IN:
        raise ValueError(f"{type_name!r} is one of lakefn's own trigger kinds")
    KINDS.pop(type_name, None)
    _rebuild()


def _rebuild() -> None:
    from ..config import use_kinds

    use_kinds(KINDS)
