"""Plug-ins from installed packages: trigger kinds, table sources and state stores every lakefn
process knows.

`lakefn.triggers.register`, `register_source` and `register_store` work in the process that
calls them. A package that offers one to every process (`lakefn validate`, `lakefn serve`,
`lakefn run` inside a Databricks Job) declares an entry point in the `lakefn.plugins` group,
naming a module that registers when imported, or a function that registers when called:

    [project.entry-points."lakefn.plugins"]
    file_drop = "my_package.lakefn_plugin:register"

They are loaded once per process, and only when an app.yaml names a `type:`, a
`tables.source` or a `state:` scheme lakefn does not know, so a project without plug-ins pays
nothing for them.
"""

from __future__ import annotations

import threading
from typing import Any

from ._exceptions import PluginFailed

GROUP = "lakefn.plugins"

_lock = threading.Lock()
_loaded = False


def load_for(data: Any) -> None:
    """Load the installed plug-ins if app.yaml's `data` names a kind or source not known yet."""
    if not _loaded and _names_unknown(data):
        load_plugins()


def load_plugins() -> None:
    """Import (and call) every `lakefn.plugins` entry point, once per process."""
    global _loaded
    with _lock:
        if _loaded:
            return
        _loaded = True
        from importlib.metadata import entry_points

        for point in entry_points(group=GROUP):
            try:
                plugin = point.load()
                if callable(plugin):
                    plugin()
            except Exception as exc:  # noqa: BLE001 - any failure is the plug-in's, said so
                raise PluginFailed(point.name, point.value, exc) from exc


def _names_unknown(data: Any) -> bool:
    from .sources.selection import SOURCES
    from .triggers import KINDS

    if not isinstance(data, dict):
        return False
    functions = data.get("functions")
    for function in functions if isinstance(functions, list) else []:
        trigger = function.get("trigger") if isinstance(function, dict) else None
        kind = trigger.get("type") if isinstance(trigger, dict) else None
        if isinstance(kind, str) and kind not in KINDS:
            return True
    tables = data.get("tables")
    source = tables.get("source") if isinstance(tables, dict) else None
    return isinstance(source, str) and source != "auto" and source not in SOURCES
