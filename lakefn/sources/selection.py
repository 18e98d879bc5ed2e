"""Which table source a project reads history from: app.yaml's `tables.source`.

`SOURCES` maps each name app.yaml accepts to the source that reads it, as "module:Class" so a
source's module (and its deltalake or databricks imports) loads only when chosen. The source
builds itself for a project with `from_project(project)`; a plain callable taking the project
does as well. Adding a source to lakefn is one module and one line in `SOURCES`; one defined
elsewhere (a plug-in, a test) is added with `register_source(name, factory)` before the
project is loaded. `auto` is no source of its own: `choose` picks one of these.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Union

from .._exceptions import SourceUnavailable

if TYPE_CHECKING:
    from ..abc import TableSource
    from ..project import Project

    SourceFactory = Callable[[Project], TableSource]

#: `tables.source` name -> "module:Class" (or a factory taking the project)
SOURCES: dict[str, Union[str, SourceFactory]] = {  # noqa: UP007 - evaluated at runtime
    "local": "lakefn.sources.local:LocalDeltaSource",
    "warehouse": "lakefn.sources.warehouse:WarehouseSource",
    "spark": "lakefn.sources.spark:SparkSource",
    "recorded": "lakefn.sources.recorded:RecordedSource",
}
_BUILT_IN = frozenset(SOURCES)
#: the name that lets lakefn choose (see `choose`)
AUTO = "auto"


def source_names() -> tuple[str, ...]:
    """What `tables.source` accepts, in order: auto, then every source."""
    return (AUTO, *SOURCES)


def register_source(name: str, factory: str | SourceFactory) -> None:
    """Add a table source: app.yaml accepts `tables: {source: <name>}` in projects loaded
    after this call. `factory` is a class with `from_project(project)`, any callable taking
    the project, or "module:Class" naming either."""
    if name == AUTO or (name in SOURCES and SOURCES[name] is not factory):
        raise ValueError(f"a table source {name!r} is already registered")
    SOURCES[name] = factory
    _rebuild()


def unregister_source(name: str) -> None:
    """Forget a source added with `register_source` (lakefn's own stay)."""
    if name in _BUILT_IN:
        raise ValueError(f"{name!r} is one of lakefn's own table sources")
    SOURCES.pop(name, None)
    _rebuild()


def _rebuild() -> None:
    from ..config import use_sources

    use_sources(source_names())


def warehouse_configured() -> bool:
    has_path = bool(
        os.environ.get("DATABRICKS_WAREHOUSE_PATH") or os.environ.get("DATABRICKS_WAREHOUSE_ID")
    )
    return has_path and bool(
        os.environ.get("DATABRICKS_HOST") or os.environ.get("DATABRICKS_CONFIG_PROFILE")
    )


def in_databricks_notebook() -> bool:
    return bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))


def choose(source: str) -> str:
    """`auto`: Spark inside a Databricks notebook, a warehouse when one is configured, else
    the local Delta tables under `tables.local_root`."""
    if source != AUTO:
        return source
    if in_databricks_notebook():
        from .spark import active_spark_session

        if active_spark_session() is not None:
            return "spark"
    return "warehouse" if warehouse_configured() else "local"


def select_source(project: Project) -> TableSource:
    """The source `tables.source` names, built for `project`. SourceUnavailable, naming the
    setting, when no source has that name or its module cannot be imported."""
    setting = project.config.tables.source
    name = choose(setting)
    factory = _factory(name)
    build = getattr(factory, "from_project", factory)
    try:
        return build(project)  # type: ignore[no-any-return]
    except SourceUnavailable as exc:  # said with the setting that chose it, to change it
        chosen = setting if setting == name else f"{setting}, which chose {name}"
        raise SourceUnavailable(
            exc.source, f"{exc.reason} (app.yaml's tables.source: {chosen})"
        ) from None


def _factory(name: str) -> Any:
    entry = SOURCES.get(name)
    if entry is None:  # app.yaml checks the name; this is a config built in code
        known = ", ".join(source_names())
        raise SourceUnavailable(name, f"app.yaml's tables.source must be one of {known}")
    if not isinstance(entry, str):
        return entry
    module_name, _, attribute = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SourceUnavailable(
            name, f"app.yaml's tables.source: {name} needs {exc.name or module_name}, not installed"
        ) from None
    return getattr(module, attribute)
