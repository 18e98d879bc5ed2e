"""A trigger kind added from outside lakefn that runs as a Databricks Job: its hooks alone
decide the job's trigger (`job_trigger`, `job_parameters`), what Jobs cannot express
(`job_problems`, refused with app.yaml's line) and what `lakefn run` does (`run_as_job`).
A kind without them cannot `run_on: job`: app.yaml refuses it, `lakefn run` says so. The
console shows the kind by the summary it gives of itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pytest
import yaml

from lakefn import triggers
from lakefn._exceptions import ConfigError, NotRunnable
from lakefn._model import ConfigModel
from lakefn.abc import Problem, TriggerKind
from lakefn.config import FunctionConfig, parse_config
from lakefn.events import Event
from lakefn.jobs.bundle import RESOURCES, plan
from lakefn.jobs.run import RunReport, run_function
from lakefn.journal import Invocation
from lakefn.project import load_project

from .conftest import ProjectDir


class FileArrivalTrigger(ConfigModel):
    type: Literal["file_arrival"]
    url: str


@dataclass
class FileArrivalEvent(Event):
    url: str = ""

    trigger = "file_arrival"


class FileArrivalKind(TriggerKind):
    """Runs when files land under a volume path: in the app never, as a job on arrival."""

    type: ClassVar[str] = "file_arrival"
    config_model = FileArrivalTrigger
    runs_as_job = True
    job_parameters = ("--scheduled-time", "{{job.trigger.time.iso_datetime}}")

    @classmethod
    def summary(cls, function: FunctionConfig) -> str:
        return f"files in {function.trigger.url}"  # type: ignore[union-attr]

    async def run_by_hand(self, name: str, payload: Any = None) -> Invocation:
        return await self._call(name)

    async def _call(self, name: str) -> Invocation:
        url = self.config_of(name).trigger.url  # type: ignore[union-attr]
        return await self.context.invoker.invoke(
            name, lambda: FileArrivalEvent(function_name=name, url=url), detail={"url": url}
        )

    @classmethod
    def job_problems(cls, function: FunctionConfig) -> list[Problem]:
        url: str = function.trigger.url  # type: ignore[union-attr]
        if url.startswith("/Volumes/"):
            return []
        return [Problem(("trigger", "url"), f"{url!r} is not a /Volumes/ path")]

    @classmethod
    def job_trigger(cls, function: FunctionConfig) -> dict[str, Any]:
        url = function.trigger.url  # type: ignore[union-attr]
        return {"trigger": {"pause_status": "UNPAUSED", "file_arrival": {"url": url}}}

    async def run_as_job(self, name: str, *, scheduled_time: Any, lease_wait: float) -> RunReport:
        invocation = await self._call(name)
        return RunReport(name, self.type, outcome="ok", invocations=[invocation])


class InAppOnlyTrigger(ConfigModel):
    type: Literal["in_app_only"]
    url: str


class InAppOnlyKind(TriggerKind):
    """A kind with no job hooks: what a kind is by default."""

    type: ClassVar[str] = "in_app_only"
    config_model = InAppOnlyTrigger

    @classmethod
    def summary(cls, function: FunctionConfig) -> str:
        return "in the app"

    async def run_by_hand(self, name: str, payload: Any = None) -> Invocation:
        raise AssertionError("not run by hand here")


@pytest.fixture
def file_arrival() -> Iterator[None]:
    triggers.register(FileArrivalKind)
    yield
    triggers.unregister("file_arrival")


APP = """\
functions:
  - name: landed
    trigger: {{type: file_arrival, url: "{url}"}}
    run_on: job
"""


@pytest.fixture
def arrival_project(project: ProjectDir, file_arrival: None) -> ProjectDir:
    project.config(APP.format(url="/Volumes/main/raw/landing/"))
    project.function("landed", "def main(event):\n    return event.url\n")
    return project


def test_the_bundle_writes_the_job_trigger_the_kind_gives(arrival_project: ProjectDir) -> None:
    project = load_project(arrival_project.app_yaml)
    files = plan(project, "demo", wheel=False, warnings=[])  # also loads it through Job
    job = yaml.safe_load(files[RESOURCES])["resources"]["jobs"]["lakefn_landed"]
    assert job["trigger"] == {
        "pause_status": "UNPAUSED",
        "file_arrival": {"url": "/Volumes/main/raw/landing/"},
    }
    parameters = job["tasks"][0]["spark_python_task"]["parameters"]
    assert parameters[:2] == ["run", "landed"]
    assert parameters[-2:] == ["--scheduled-time", "{{job.trigger.time.iso_datetime}}"]


def test_what_jobs_cannot_express_is_refused_with_its_line(
    project: ProjectDir, file_arrival: None
) -> None:
    project.config(APP.format(url="s3://bucket/landing"))
    project.function("landed", "def main(event):\n    return event.url\n")
    with pytest.raises(ConfigError) as info:
        plan(load_project(project.app_yaml), "demo", wheel=False, warnings=[])
    (issue,) = info.value.issues
    assert (issue.line, issue.field) == (3, "functions[0].trigger.url")
    assert "'s3://bucket/landing' is not a /Volumes/ path" in issue.message


def test_lakefn_run_runs_the_function_through_the_kind(arrival_project: ProjectDir) -> None:
    runtime = arrival_project.runtime()
    try:
        report = asyncio.run(run_function(runtime, "landed"))
    finally:
        runtime.close()
    assert (report.trigger, report.outcome, report.ok) == ("file_arrival", "ok", True)
    assert report.invocations[0].result == "/Volumes/main/raw/landing/"


def test_a_kind_without_job_hooks_cannot_run_on_job() -> None:
    triggers.register(InAppOnlyKind)
    try:
        with pytest.raises(ConfigError) as info:
            parse_config(APP.format(url="/Volumes/x").replace("file_arrival", "in_app_only"))
        assert "an in_app_only function cannot run_on: job" in str(info.value)
        assert "run_on: job is for timer and unity_table functions" in str(info.value)
    finally:
        triggers.unregister("in_app_only")


def test_lakefn_run_on_a_kind_without_job_hooks_says_it_cannot(project: ProjectDir) -> None:
    triggers.register(InAppOnlyKind)
    try:
        project.config(
            "functions:\n  - name: landed\n    trigger: {type: in_app_only, url: /Volumes/x}\n"
        )
        project.function("landed", "def main(event):\n    return event.url\n")
        runtime = project.runtime()
        try:
            # The kinds that do run as jobs are named; the http hint is only for http.
            with pytest.raises(
                NotRunnable,
                match=r"^landed is an in_app_only function: `lakefn run` runs timer and "
                r"unity_table functions$",
            ):
                asyncio.run(run_function(runtime, "landed"))
        finally:
            runtime.close()
    finally:
        triggers.unregister("in_app_only")


async def test_the_console_shows_a_registered_kind_by_its_summary(
    arrival_project: ProjectDir,
) -> None:
    import httpx

    from lakefn import create_app

    runtime = arrival_project.runtime()
    app = create_app(runtime=runtime)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            page = (await client.get("/lakefn/console/live")).text
    finally:
        runtime.close()
    row = page[page.index('data-function="landed"') :].split("</tr>")[0]
    assert '<span class="kind">file_arrival</span>' in row
    assert "<code>files in /Volumes/main/raw/landing/</code>" in row
