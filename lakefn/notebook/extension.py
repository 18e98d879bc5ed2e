"""`%load_ext lakefn` / `%unload_ext lakefn` / `%reload_ext lakefn`."""

from __future__ import annotations

from typing import Any

from .magics import LakefnMagics

#: the magics registered on each shell, so unloading removes exactly them
_registered: dict[int, LakefnMagics] = {}


def load(ip: Any) -> None:
    """Register `%lakefn` on `ip`, sharing the session that `lakefn.notebook`'s calls use."""
    from . import session_for

    unload(ip)  # loading twice must not leave two sessions or two magics objects behind
    magics = LakefnMagics(shell=ip, session=session_for(ip.user_ns))
    ip.register_magics(magics)
    _registered[id(ip)] = magics


def unload(ip: Any) -> None:
    """Stop the server, close the project and unregister the magics."""
    from . import close

    magics = _registered.pop(id(ip), None)
    close()
    if magics is None:
        return
    manager = ip.magics_manager
    for kind in ("line", "cell"):
        registered = manager.magics[kind].get("lakefn")
        if getattr(registered, "__self__", None) is magics:  # ours, not a newer one
            del manager.magics[kind]["lakefn"]
    manager.registry.pop(type(magics).__name__, None)
    if magics in ip.configurables:
        ip.configurables.remove(magics)
