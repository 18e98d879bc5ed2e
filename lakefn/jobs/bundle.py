"""`lakefn bundle`: a Databricks Asset Bundle for the project, deployable as it stands.

    <out>/
    ├── databricks.yml          written once, when absent: the user's from then on
    ├── resources/lakefn.yml    the App and one job per `run_on: job` function (rewritten)
    ├── jobs/lakefn_run.py      what each job's task runs: `lakefn run NAME`
    └── app/                    the App's source: app.yaml, app.py, functions/, requirements.txt
                                and lakefn's own wheel (unless --no-wheel)

Everything but databricks.yml is lakefn's, regenerated from app.yaml each time and written only
when its bytes change; `check` writes nothing and lists what is out of date. The same project
and lakefn give byte-identical files. Nothing from `.lakefn/` (local state and catalog) or
`__pycache__` is ever copied: only app.yaml, app.py and functions/ are.

The App's resource and requirements are `_app_resource.py`, a job's `_job_resource.py`, the
writing (only changed bytes, databricks.yml once) `_bundle_files.py`; this module composes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import BundleResourceInvalid
from ._app_resource import (
    APP_DIR,
    APP_PY,
    DATABASE_VARIABLES,
    WAREHOUSE_VARIABLE,
    app_requirements,
    app_resource,
    ships,
    slug,
)
from ._bundle_files import BundleResult, check_variables, databricks_yml, dump_yaml, sync_files
from ._job_resource import (
    ENVIRONMENT_KEY,
    ENVIRONMENT_VERSION,
    RUNNER,
    RUNNER_CODE,
    TASK_TIME_MARGIN,
    job_resource,
    warn_state,
)
from .wheel import build_wheel

if TYPE_CHECKING:
    from ..project import Project

__all__ = [
    "APP_DIR",
    "DATABASE_VARIABLES",
    "ENVIRONMENT_KEY",
    "ENVIRONMENT_VERSION",
    "RESOURCES",
    "RUNNER",
    "TASK_TIME_MARGIN",
    "WAREHOUSE_VARIABLE",
    "BundleResult",
    "app_resource",
    "job_resource",
    "plan",
    "validate_resources",
    "write_bundle",
]

RESOURCES = "resources/lakefn.yml"
_HEADER = (
    "# Written by `lakefn bundle` from app.yaml: edits here are overwritten.\n"
    "# Settings that are yours (variables, targets, permissions) go in databricks.yml.\n"
)


def write_bundle(
    app: str | Path | None = None,
    *,
    out: str | Path | None = None,
    name: str | None = None,
    check: bool = False,
    wheel: bool = True,
) -> BundleResult:
    """Write (or with `check`, compare) the bundle for the project at `app`."""
    from ..project import load_functions, load_project

    project = load_project(app, apply_env=False)
    load_functions(project)  # a project whose functions do not import is not deployed
    target = Path(out).resolve() if out else project.root / "bundle"
    bundle_name = slug(name or project.root.name, "_")
    result = BundleResult(target, check)
    files = plan(project, bundle_name, wheel=wheel, warnings=result.warnings)
    users_yml = target / "databricks.yml"
    if users_yml.exists():
        check_variables(users_yml, files[RESOURCES], result.warnings)
    else:
        files["databricks.yml"] = databricks_yml(bundle_name, files[RESOURCES])
    sync_files(target, files, result)
    return result


def plan(
    project: Project, bundle_name: str, *, wheel: bool, warnings: list[str]
) -> dict[str, bytes]:
    """Every file lakefn owns in the bundle, by path relative to it."""
    files: dict[str, bytes] = {}
    files[f"{APP_DIR}/app.yaml"] = project.path.read_bytes()
    app_py = project.root / "app.py"
    files[f"{APP_DIR}/app.py"] = app_py.read_bytes() if app_py.exists() else APP_PY.encode()
    for path in sorted(project.functions_dir.rglob("*")):
        relative = path.relative_to(project.root)
        if path.is_file() and ships(relative):
            files[f"{APP_DIR}/{relative.as_posix()}"] = path.read_bytes()
    lines, job_deps = app_requirements(project, wheel, warnings)
    files[f"{APP_DIR}/requirements.txt"] = "".join(f"{line}\n" for line in lines).encode()
    if wheel:
        wheel_file, data = build_wheel()
        files[f"{APP_DIR}/{wheel_file}"] = data
    jobs = {
        f"lakefn_{fn.name}": job_resource(project, fn, bundle_name, job_deps)
        for fn in project.config.functions
        if fn.run_on == "job"
    }
    if jobs:
        files[RUNNER] = RUNNER_CODE.encode()
        warn_state(project, warnings)
    resources: dict[str, Any] = {
        "apps": {"lakefn_app": app_resource(project, bundle_name, warnings)}
    }
    if jobs:
        resources["jobs"] = jobs
    validate_resources(resources)
    body = dump_yaml({"resources": resources})
    files[RESOURCES] = (_HEADER + body).encode()
    return files


def validate_resources(resources: dict[str, Any]) -> None:
    """Load every job and the App through databricks-bundles' typed models: each must load and
    give back exactly what was written, or the bundle would say something else than meant."""
    try:
        from databricks.bundles.apps import App
        from databricks.bundles.jobs import Job
    except ImportError:  # the `bundles` extra is for checking; deploying does not need it
        return
    checks: list[tuple[Any, str, Any]] = [
        (App, key, value) for key, value in resources.get("apps", {}).items()
    ]
    checks += [(Job, key, value) for key, value in resources.get("jobs", {}).items()]
    for model, key, value in checks:
        try:
            again = model.from_dict(value).as_dict()
        except Exception as exc:  # noqa: BLE001 - any refusal is reported the same
            raise BundleResourceInvalid(key, value, error=exc) from None
        if again != value:
            raise BundleResourceInvalid(key, value, loaded=again)
