"""Which table source a project reads history from (`tables.source` in app.yaml)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._exceptions import SourceUnavailable

if TYPE_CHECKING:
    from ..abc import TableSource
    from ..project import Project


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
    if source != "auto":
        return source
    if in_databricks_notebook():
        from .spark import active_spark_session

        if active_spark_session() is not None:
            return "spark"
    return "warehouse" if warehouse_configured() else "local"


def select_source(project: Project) -> TableSource:
    kind = choose(project.config.tables.source)
    if kind == "local":
        from .local import LocalDeltaSource

        return LocalDeltaSource(project.local_root)
    if kind == "warehouse":
        from .warehouse import WarehouseSource

        return WarehouseSource(use_cloud_fetch=project.config.tables.use_cloud_fetch)
    if kind == "spark":
        from .spark import SparkSource, active_spark_session

        spark = active_spark_session()
        if spark is None:
            raise SourceUnavailable(
                "spark",
                "no Spark session: run inside a Databricks notebook, or install "
                "lakefn[connect] and configure databricks-connect",
            )
        return SparkSource(spark)
    from .recorded import RecordedSource

    return RecordedSource()
