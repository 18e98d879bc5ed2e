"""The App's part of the bundle: its resource (with what app.yaml's `valueFrom` names), which
project files ship as its source, and its requirements (shared with the jobs' environments)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..triggers import KINDS
from .wheel import requires, version, wheel_name

if TYPE_CHECKING:
    from ..project import Project

APP_DIR = "app"
WAREHOUSE_VARIABLE = "warehouse_id"
DATABASE_VARIABLES = ("database_instance", "database_name")
APP_PY = "import lakefn\n\napp = lakefn.create_app()\n"


def app_resource(project: Project, bundle_name: str, warnings: list[str]) -> dict[str, Any]:
    """The Databricks App, with the resources app.yaml's `valueFrom` entries name."""
    resources: list[dict[str, Any]] = []
    warehouse_names = {
        v.value_from for v in project.config.env if v.value_from and "WAREHOUSE" in v.name
    }
    needs_warehouse = any(
        KINDS[f.kind].uses_table and f.run_on == "app" for f in project.config.functions
    ) and project.config.tables.source in ("auto", "warehouse")
    if needs_warehouse and not warehouse_names:
        warnings.append(
            "the App reads table history through a SQL warehouse: add to app.yaml `env:` "
            "`- {name: DATABRICKS_WAREHOUSE_ID, valueFrom: sql-warehouse}`"
        )
        warehouse_names = {"sql-warehouse"}
    for resource in sorted(n for n in warehouse_names if n):
        resources.append(
            {
                "name": resource,
                "sql_warehouse": {"id": f"${{var.{WAREHOUSE_VARIABLE}}}", "permission": "CAN_USE"},
            }
        )
    described = set(warehouse_names)
    if is_lakebase(project.config.state):
        resources.append(
            {
                "name": "database",
                "database": {
                    "instance_name": f"${{var.{DATABASE_VARIABLES[0]}}}",
                    "database_name": f"${{var.{DATABASE_VARIABLES[1]}}}",
                    "permission": "CAN_CONNECT_AND_CREATE",
                },
            }
        )
        described.add("database")
    for var in project.config.env:
        if var.value_from and var.value_from not in described:
            warnings.append(
                f"app.yaml env {var.name} comes from the App resource {var.value_from!r}, "
                "which lakefn cannot describe: add it to the App in the workspace"
            )
    app: dict[str, Any] = {
        "name": slug(bundle_name, "-")[:30].strip("-") or "lakefn-app",
        "description": f"lakefn project {bundle_name}",
        "source_code_path": f"../{APP_DIR}",
    }
    if resources:
        app["resources"] = resources
    return app


def is_lakebase(state: str) -> bool:
    """Whether `state` is `lakebase` (with or without options)."""
    from ..checkpoints.selection import state_kind

    return state_kind(state) == "lakebase"


def app_requirements(
    project: Project, wheel: bool, warnings: list[str]
) -> tuple[list[str], list[str]]:
    """The App's requirements.txt lines and the jobs' environment dependencies.

    lakefn comes first (its wheel, with the extras the project's requirements ask for, default
    `databricks`, spelled out: a job's dependency list takes no `path[extra]`), then the
    project's own requirements, minus its lakefn line."""
    own, extras = _own_requirements(project)
    extras = extras or {"databricks"}
    if wheel:
        name = wheel_name()
        lakefn_lines = [f"./{name}", *requires(extras)]
        job_lakefn = [f"../{APP_DIR}/{name}", *requires(extras)]
        head = [
            "# Written by `lakefn bundle`: lakefn from its wheel beside this file, its "
            f"[{','.join(sorted(extras))}] extra spelled out,",
            "# then the project's own requirements.",
        ]
    else:
        pinned = f"lakefn[{','.join(sorted(extras))}]=={version()}"
        lakefn_lines = job_lakefn = [pinned]
        head = [
            "# Written by `lakefn bundle`: lakefn from your package index, then the project's own."
        ]
    job_deps = list(job_lakefn)
    for line in own:
        if line.startswith("-"):
            warnings.append(
                f"requirements.txt option {line!r} is kept for the App; a job's environment "
                "takes packages only (set the index in the workspace)"
            )
        else:
            job_deps.append(line)
    return [*head, *lakefn_lines, *own], job_deps


def _own_requirements(project: Project) -> tuple[list[str], set[str]]:
    path = project.root / "requirements.txt"
    if not path.exists():
        return [], set()
    own: list[str] = []
    extras: set[str] = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?", line)
        if match and re.sub(r"[-_.]+", "-", match[1]).lower() == "lakefn":
            extras.update(e.strip() for e in (match[3] or "").split(",") if e.strip())
            continue
        own.append(line)
    return own, extras


def ships(relative: Path) -> bool:
    parts = relative.parts
    if any(p == "__pycache__" or p.startswith(".") for p in parts):
        return False
    return not relative.name.endswith((".pyc", ".pyo", "~"))


def slug(text: str, sep: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", sep, text.lower()).strip(sep)
    return slug or "lakefn"
