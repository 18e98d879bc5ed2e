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
    _check_model(kind_class)
    previous = dict(KINDS)
    KINDS[name] = kind_class
    try:
        _rebuild()
    except BaseException:
        # A kind app.yaml cannot take leaves the registry as it was, usable.
        KINDS.clear()
        KINDS.update(previous)
        _rebuild()
        raise
    return kind_class


def unregister(type_name: str) -> None:
    """Forget a kind added with `register` (lakefn's own kinds stay)."""
    if type_name in _BUILT_IN:
        raise ValueError(f"{type_name!r} is one of lakefn's own trigger kinds")
    KINDS.pop(type_name, None)
    _rebuild()


def _check_model(kind_class: type[TriggerKind]) -> None:
    """A kind's `config_model` must be tagged by its `type:`: a pydantic model whose `type`
    field is `Literal[kind_class.type]`, so app.yaml's union can pick it."""
    from typing import Literal, get_args, get_origin

    from pydantic import BaseModel

    name = getattr(kind_class, "type", None)
    model = getattr(kind_class, "config_model", None)
    field = (
        model.model_fields.get("type")
        if isinstance(model, type) and issubclass(model, BaseModel)
        else None
    )
    tag = None if field is None else field.annotation
    if not isinstance(name, str) or get_origin(tag) is not Literal or get_args(tag) != (name,):
        raise TypeError(
            f"trigger kind {kind_class.__name__}: its config_model must be a pydantic model "
            f"with a field `type: Literal[{name!r}]` (the `type:` app.yaml names it by)"
        )


def _rebuild() -> None:
    from ..config import use_kinds

    use_kinds(KINDS)
