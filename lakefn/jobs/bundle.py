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
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .._exceptions import BundleResourceInvalid, ConfigError, ConfigIssue, NotConvertible
from ..config import FunctionConfig, TableTrigger, TimerTrigger
from .quartz import to_quartz
from .wheel import build_wheel, requires, version, wheel_name

if TYPE_CHECKING:
    from ..project import Project

RESOURCES = "resources/lakefn.yml"
RUNNER = "jobs/lakefn_run.py"
APP_DIR = "app"
ENVIRONMENT_KEY = "lakefn"
#: serverless environment version: Python 3.11
ENVIRONMENT_VERSION = "2"
#: seconds a job's task gets beyond its function's own time: start-up, the lease wait
TASK_TIME_MARGIN = 600
WAREHOUSE_VARIABLE = "warehouse_id"
DATABASE_VARIABLES = ("database_instance", "database_name")
_HEADER = (
    "# Written by `lakefn bundle` from app.yaml: edits here are overwritten.\n"
    "# Settings that are yours (variables, targets, permissions) go in databricks.yml.\n"
)
_RUNNER_CODE = '''"""A Databricks Job's task: `lakefn run NAME` (written by `lakefn bundle`)."""

import sys

try:  # a session for the job's table source; `lakefn run` finds the active one
    from pyspark.sql import SparkSession

    SparkSession.builder.getOrCreate()
except Exception:  # noqa: BLE001 - no Spark here: lakefn picks another source
    pass

from lakefn.cli import main

code = main(sys.argv[1:])
if code:
    sys.exit(code)  # a function that failed after its retries fails the run
'''
_APP_PY = "import lakefn\n\napp = lakefn.create_app()\n"


@dataclass
class BundleResult:
    out: Path
    check: bool
    written: list[str] = field(default_factory=list)
    existed: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def stale(self) -> list[str]:
        return self.written + self.removed

    def lines(self) -> list[str]:
        out = [f"warning: {w}" for w in self.warnings]
        if self.check:
            if not self.stale:
                return [*out, f"{self.out}: up to date"]
            out.append(f"{self.out}: out of date; run `lakefn bundle` to update:")
            out += [
                f"  {p} {'differs' if p in self.existed else 'is missing'}" for p in self.written
            ]
            out += [f"  {p} would be removed" for p in self.removed]
            return out
        out += [f"wrote {self.out / p}" for p in self.written]
        out += [f"removed {self.out / p}" for p in self.removed]
        if not self.stale:
            out.append(f"{self.out}: up to date")
        else:
            out.append(f"deploy it: cd {self.out} && databricks bundle deploy")
        return out


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
    bundle_name = _slug(name or project.root.name, "_")
    result = BundleResult(target, check)
    files = plan(project, bundle_name, wheel=wheel, warnings=result.warnings)
    databricks_yml = target / "databricks.yml"
    if databricks_yml.exists():
        _check_variables(databricks_yml, files[RESOURCES], result.warnings)
    else:
        files["databricks.yml"] = _databricks_yml(bundle_name, files[RESOURCES])
    _sync(target, files, result)
    return result


def plan(
    project: Project, bundle_name: str, *, wheel: bool, warnings: list[str]
) -> dict[str, bytes]:
    """Every file lakefn owns in the bundle, by path relative to it."""
    files: dict[str, bytes] = {}
    files[f"{APP_DIR}/app.yaml"] = project.path.read_bytes()
    app_py = project.root / "app.py"
    files[f"{APP_DIR}/app.py"] = app_py.read_bytes() if app_py.exists() else _APP_PY.encode()
    for path in sorted(project.functions_dir.rglob("*")):
        relative = path.relative_to(project.root)
        if path.is_file() and _ships(relative):
            files[f"{APP_DIR}/{relative.as_posix()}"] = path.read_bytes()
    lines, job_deps = _requirements(project, wheel, warnings)
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
        files[RUNNER] = _RUNNER_CODE.encode()
        _warn_state(project, warnings)
    resources: dict[str, Any] = {
        "apps": {"lakefn_app": app_resource(project, bundle_name, warnings)}
    }
    if jobs:
        resources["jobs"] = jobs
    validate_resources(resources)
    body = _dump({"resources": resources})
    files[RESOURCES] = (_HEADER + body).encode()
    return files


# -- the resources -----------------------------------------------------------------------------


def app_resource(project: Project, bundle_name: str, warnings: list[str]) -> dict[str, Any]:
    """The Databricks App, with the resources app.yaml's `valueFrom` entries name."""
    resources: list[dict[str, Any]] = []
    warehouse_names = {
        v.value_from for v in project.config.env if v.value_from and "WAREHOUSE" in v.name
    }
    needs_warehouse = any(
        isinstance(f.trigger, TableTrigger) and f.run_on == "app" for f in project.config.functions
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
    if project.config.state == "lakebase":
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
        "name": _slug(bundle_name, "-")[:30].strip("-") or "lakefn-app",
        "description": f"lakefn project {bundle_name}",
        "source_code_path": f"../{APP_DIR}",
    }
    if resources:
        app["resources"] = resources
    return app


def job_resource(
    project: Project, fn: FunctionConfig, bundle_name: str, dependencies: list[str]
) -> dict[str, Any]:
    """The job that runs `fn` with `lakefn run`: on its schedule, or when its table changes."""
    settings = fn.job
    paused = "PAUSED" if settings and settings.paused else "UNPAUSED"
    parameters = ["run", fn.name, "--app", f"${{workspace.file_path}}/{APP_DIR}"]
    job: dict[str, Any] = {
        "name": f"{bundle_name} {fn.name}",
        "description": fn.description or f"lakefn function {fn.name}",
        "max_concurrent_runs": 1,
        "queue": {"enabled": True},
    }
    if isinstance(fn.trigger, TimerTrigger):
        job["schedule"] = {
            "quartz_cron_expression": _quartz(project, fn),
            "timezone_id": fn.trigger.timezone,
            "pause_status": paused,
        }
        parameters += ["--scheduled-time", "{{job.trigger.time.iso_datetime}}"]
    else:
        table_update: dict[str, Any] = {
            "table_names": [str(fn.table)],
            "condition": "ANY_UPDATED",
        }
        if settings and settings.min_time_between_triggers:
            table_update["min_time_between_triggers_seconds"] = settings.min_time_between_triggers
        if settings and settings.wait_after_last_change:
            table_update["wait_after_last_change_seconds"] = settings.wait_after_last_change
        job["trigger"] = {"pause_status": paused, "table_update": table_update}
    job["tags"] = {"lakefn_function": fn.name, **(settings.tags if settings else {})}
    if settings and settings.email_on_failure:
        job["email_notifications"] = {"on_failure": list(settings.email_on_failure)}
    task: dict[str, Any] = {
        "task_key": "run",
        "spark_python_task": {"python_file": f"../{RUNNER}", "parameters": parameters},
        "environment_key": ENVIRONMENT_KEY,
    }
    if settings and settings.max_retries:
        task["max_retries"] = settings.max_retries
    if fn.timeout is not None:
        task["timeout_seconds"] = _task_timeout(fn)
    job["tasks"] = [task]
    job["environments"] = [
        {
            "environment_key": ENVIRONMENT_KEY,
            "spec": {"environment_version": ENVIRONMENT_VERSION, "dependencies": dependencies},
        }
    ]
    return job


def _task_timeout(fn: FunctionConfig) -> int:
    # Every attempt may use the whole timeout, with the retry backoff between attempts.
    attempts = fn.retry.max_attempts
    backoff = sum(fn.retry.backoff_seconds * 2**i for i in range(attempts - 1))
    return math.ceil((fn.timeout or 0) * attempts + backoff) + TASK_TIME_MARGIN


def _quartz(project: Project, fn: FunctionConfig) -> str:
    assert isinstance(fn.trigger, TimerTrigger)
    try:
        return to_quartz(fn.trigger.schedule)
    except NotConvertible as exc:
        index = project.config.functions.index(fn)
        where = ("functions", index, "trigger", "schedule")
        raise ConfigError(
            [
                ConfigIssue(
                    str(project.path),
                    project.line(*where),
                    f"functions[{index}].trigger.schedule",
                    f"{exc} (run_on: job)",
                )
            ]
        ) from None


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
            again = model.from_dict(value).as_dict()  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - any refusal is reported the same
            raise BundleResourceInvalid(key, value, error=exc) from None
        if again != value:
            raise BundleResourceInvalid(key, value, loaded=again)


# -- requirements ------------------------------------------------------------------------------


def _requirements(
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


# -- files -------------------------------------------------------------------------------------


def _databricks_yml(bundle_name: str, resources: bytes) -> bytes:
    used = set(re.findall(r"\$\{var\.([A-Za-z0-9_]+)\}", resources.decode()))
    # Only the variables the resources use: deploying asks a value for each declared one.
    known: dict[str, dict[str, Any]] = {
        WAREHOUSE_VARIABLE: {"description": "id of the SQL warehouse the App reads tables through"},
        DATABASE_VARIABLES[0]: {"description": "Lakebase instance of the App's state"},
        DATABASE_VARIABLES[1]: {
            "description": "database of the App's state",
            "default": "databricks_postgres",
        },
    }
    variables = {name: spec for name, spec in known.items() if name in used}
    doc: dict[str, Any] = {
        "bundle": {"name": bundle_name},
        "include": ["resources/*.yml"],
        **({"variables": variables} if variables else {}),
        "targets": {
            "dev": {"mode": "development", "default": True},
            "prod": {
                "mode": "production",
                "workspace": {
                    "root_path": "/Workspace/Users/${workspace.current_user.userName}"
                    "/.bundle/${bundle.name}/${bundle.target}"
                },
            },
        },
    }
    needed = " ".join(f"--var {n}=<value>" for n, v in variables.items() if "default" not in v)
    head = (
        "# Written once by `lakefn bundle`; yours to edit. Deploy: databricks bundle deploy"
        + (f" {needed}" if needed else "")
        + "\n"
    )
    return (head + _dump(doc)).encode()


def _check_variables(databricks_yml: Path, resources: bytes, warnings: list[str]) -> None:
    used = set(re.findall(r"\$\{var\.([A-Za-z0-9_]+)\}", resources.decode()))
    text = databricks_yml.read_text(encoding="utf-8")
    for name in sorted(used):
        if not re.search(rf"^\s+{name}:", text, re.MULTILINE):
            warnings.append(
                f"{databricks_yml} declares no variable {name!r}, which the bundle uses"
            )


def _warn_state(project: Project, warnings: list[str]) -> None:
    state = project.config.state
    table_jobs = any(
        f.run_on == "job" and isinstance(f.trigger, TableTrigger) for f in project.config.functions
    )
    if table_jobs and not (
        state == "lakebase" or state.startswith(("postgresql://", "postgres://"))
    ):
        warnings.append(
            f"state {state!r} is a file: a job's compute is gone after each run, and its "
            "checkpoints with it. Table functions that run_on: job need a shared state "
            "(a postgresql:// URL or lakebase)"
        )


def _sync(target: Path, files: dict[str, bytes], result: BundleResult) -> None:
    owned_dir = target / APP_DIR
    present = (
        {p.relative_to(target).as_posix() for p in owned_dir.rglob("*") if p.is_file()}
        if owned_dir.exists()
        else set()
    )
    for relative, data in sorted(files.items()):
        path = target / relative
        if path.exists() and path.read_bytes() == data:
            result.unchanged += 1
            continue
        result.written.append(relative)
        if path.exists():
            result.existed.add(relative)
        if not result.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    extra = sorted(present - set(files))
    runner = target / RUNNER
    if RUNNER not in files and runner.exists():
        extra.append(RUNNER)
    for relative in extra:
        result.removed.append(relative)
        if not result.check:
            (target / relative).unlink()
    if not result.check:
        for folder in sorted(owned_dir.rglob("*"), reverse=True) if owned_dir.exists() else []:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # every job spelled out in full, no &id001 anchors to follow


def _dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)


def _ships(relative: Path) -> bool:
    parts = relative.parts
    if any(p == "__pycache__" or p.startswith(".") for p in parts):
        return False
    return not relative.name.endswith((".pyc", ".pyo", "~"))


def _slug(text: str, sep: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", sep, text.lower()).strip(sep)
    return slug or "lakefn"
