"""A job's part of the bundle: the Databricks Job running one `run_on: job` function with
`lakefn run`, on its schedule (as Quartz) or when its table changes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigError, ConfigIssue
from ..config import FunctionConfig, TableTrigger, TimerTrigger
from ._app_resource import APP_DIR
from .quartz import NotConvertible, to_quartz

if TYPE_CHECKING:
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
    backoff: float = sum(fn.retry.backoff_seconds * 2**i for i in range(attempts - 1))
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


def warn_state(project: Project, warnings: list[str]) -> None:
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
