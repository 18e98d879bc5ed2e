"""A job's part of the bundle: the Databricks Job running one `run_on: job` function with
`lakefn run`. What starts the job is its trigger kind's `job_trigger` (a timer's schedule as
Quartz, a table's table-update trigger); the rest (task, retries, environment) is the same for
every kind."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from .._exceptions import ConfigError, ConfigIssue
from ..triggers import KINDS
from ._app_resource import APP_DIR, DATABASE_VARIABLES, is_lakebase

if TYPE_CHECKING:
    from ..abc import Problem
    from ..config import FunctionConfig
    from ..project import Project

RUNNER = "jobs/lakefn_run.py"
ENVIRONMENT_KEY = "lakefn"
#: serverless environment version: Python 3.11
ENVIRONMENT_VERSION = "2"
#: seconds a job's task gets beyond its function's own time: start-up, the lease wait
TASK_TIME_MARGIN = 600
RUNNER_CODE = '''"""A Databricks Job's task: `lakefn run NAME` (written by `lakefn bundle`)."""

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


def job_resource(
    project: Project, fn: FunctionConfig, bundle_name: str, dependencies: list[str]
) -> dict[str, Any]:
    """The job that runs `fn` with `lakefn run`, started as its kind says (`job_trigger`):
    on its schedule, or when its table changes. ConfigError for what Jobs cannot express."""
    kind = KINDS[fn.kind]
    _refuse(project, fn, kind.job_problems(fn))
    settings = fn.job
    parameters = ["run", fn.name, "--app", f"${{workspace.file_path}}/{APP_DIR}"]
    job: dict[str, Any] = {
        "name": f"{bundle_name} {fn.name}",
        "description": fn.description or f"lakefn function {fn.name}",
        "max_concurrent_runs": 1,
        "queue": {"enabled": True},
        **kind.job_trigger(fn),
    }
    parameters += kind.job_parameters
    parameters += state_parameters(project.config.state)
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
    backoff: float = sum(fn.retry.backoff_seconds * 2**i for i in range(attempts - 1))
    return math.ceil((fn.timeout or 0) * attempts + backoff) + TASK_TIME_MARGIN


def _refuse(project: Project, fn: FunctionConfig, problems: list[Problem]) -> None:
    """ConfigError for `problems` in `fn`, each with its file, line and field."""
    if not problems:
        return
    index = project.config.functions.index(fn)
    issues = []
    for problem in problems:
        where = ("functions", index, *problem.where)
        field = f"functions[{index}]." + ".".join(str(part) for part in problem.where)
        issues.append(ConfigIssue(str(project.path), project.line(*where), field, problem.message))
    raise ConfigError(issues)


def state_parameters(state: str) -> list[str]:
    """`lakefn run`'s `--state` for a project on Lakebase: a job gets none of the App's PG*
    variables, so it names the instance and database of the App's database resource (the
    bundle's variables) and finds them itself. Other states reach the job as app.yaml says."""
    if not is_lakebase(state):
        return []
    _, _, query = state.partition("?")
    kept = [
        f"{key}={quote(value, safe='')}"
        for key, value in parse_qsl(query, keep_blank_values=True)
        if key not in ("instance", "database")
    ]
    instance, database = (f"${{var.{name}}}" for name in DATABASE_VARIABLES)
    return ["--state", "&".join([f"lakebase?instance={instance}", f"database={database}", *kept])]


def warn_state(project: Project, warnings: list[str]) -> None:
    state = project.config.state
    functions = project.config.functions
    table_jobs = any(f.run_on == "job" and KINDS[f.kind].uses_table for f in functions)
    if is_lakebase(state) and any(f.run_on == "job" for f in functions):
        instance, database = DATABASE_VARIABLES
        warnings.append(
            f"state: lakebase: each job logs in to the Lakebase instance (variable {instance}, "
            f"database {database}) as its run-as principal, which needs a Postgres role there "
            "that may use the state's schema. Simplest: run the jobs as the App's service "
            "principal (run_as: {service_principal_name: <its application id>} in "
            "databricks.yml), the role the App's database resource made; else create one "
            "(the instance's Permissions, or SELECT databricks_create_role('<user or "
            "application id>', 'USER' or 'SERVICE_PRINCIPAL')) and grant it the schema's tables"
        )
    if table_jobs and not (
        is_lakebase(state) or state.startswith(("postgresql://", "postgres://"))
    ):
        warnings.append(
            f"state {state!r} is a file: a job's compute is gone after each run, and its "
            "checkpoints with it. Table functions that run_on: job need a shared state "
            "(a postgresql:// URL or lakebase)"
        )
