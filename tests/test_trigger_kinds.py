"""A trigger kind added from outside lakefn: one class, one `register` call.

`file_drop` (defined here, nowhere in lakefn) runs its function for each new file in a folder.
Once registered it is validated in app.yaml like the built-in kinds, started and stopped with
a real server, listed by `lakefn functions`, /lakefn/functions and the notebook, and run by
hand through the admin route and the test harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import pydantic
import pytest
from pydantic import Field

from lakefn import triggers
from lakefn._exceptions import ConfigError, LakefnError, WrongTrigger
from lakefn._model import ConfigModel
from lakefn.abc import TriggerKind
from lakefn.cli import main as cli
from lakefn.config import FunctionConfig, parse_config
from lakefn.events import Event
from lakefn.journal import Invocation
from lakefn.notebook.views import FunctionsView
from lakefn.testing import LakefnHarness

from .conftest import ProjectDir


class FileDropTrigger(ConfigModel):
    type: Literal["file_drop"]
    folder: str
    pattern: str = "*"
    poll_seconds: float = Field(default=1.0, gt=0)


@dataclass
class FileDropEvent(Event):
    path: str = ""

    trigger = "file_drop"


class FileDropKind(TriggerKind):
    """Runs a function once for every file that appears in its folder."""

    type: ClassVar[str] = "file_drop"
    config_model = FileDropTrigger

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.task: asyncio.Task[None] | None = None
        self.seen: set[Path] = set()

    @classmethod
    def summary(cls, function: FunctionConfig) -> str:
        trigger: Any = function.trigger
        return f"{trigger.pattern} in {trigger.folder}"

    async def start(self) -> None:
        if self.context.functions:
            self.task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _poll(self) -> None:
        while True:
            for fn in self.context.functions:
                trigger: Any = fn.trigger
                for path in sorted(Path(trigger.folder).glob(trigger.pattern)):
                    if path not in self.seen:
                        self.seen.add(path)
                        await self._deliver(fn.name, path)
            await asyncio.sleep(min(f.trigger.poll_seconds for f in self.context.functions))  # type: ignore[union-attr]

    async def _deliver(self, name: str, path: Path) -> Invocation:
        def make_event() -> FileDropEvent:
            return FileDropEvent(function_name=name, path=str(path))

        return await self.context.invoker.invoke(name, make_event, detail={"path": str(path)})

    async def run_by_hand(self, name: str, payload: Any = None) -> Invocation:
        trigger: Any = self.config_of(name).trigger
        if not (isinstance(payload, dict) and isinstance(payload.get("file"), str)):
            raise LakefnError(f"a file_drop function is run with {{'file': name}}, not {payload!r}")
        return await self._deliver(name, Path(trigger.folder) / payload["file"])

    def problems(self) -> list[str]:
        folders = {Path(f.trigger.folder) for f in self.context.functions}  # type: ignore[union-attr]
        return [
            f"file_drop: no folder {folder}" for folder in sorted(folders) if not folder.is_dir()
        ]


@pytest.fixture
def file_drop() -> Iterator[type[FileDropKind]]:
    triggers.register(FileDropKind)
    yield FileDropKind
    triggers.unregister("file_drop")


APP = """\
functions:
  - name: on_drop
    trigger:
      type: file_drop
      folder: {folder}
      pattern: "*.csv"
      poll_seconds: 0.02
  - name: hello
    trigger: {{type: http, endpoint: /hello}}
"""


@pytest.fixture
def drop_project(project: ProjectDir, tmp_path: Path) -> ProjectDir:
    (tmp_path / "inbox").mkdir()
    project.config(APP.format(folder=tmp_path / "inbox"))
    project.function(
        "on_drop",
        """
        from pathlib import Path

        def main(event):
            return {"name": Path(event.path).name, "trigger": event.trigger}
        """,
    )
    project.function("hello", "def main(event):\n    return 'hi'\n")
    return project


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "proj/app.yaml")
    return [str(issue) for issue in info.value.issues]


def test_a_registered_kind_is_validated_in_app_yaml(file_drop: type[FileDropKind]) -> None:
    config = parse_config(APP.format(folder="/data/in"))
    trigger = config.functions[0].trigger
    assert isinstance(trigger, FileDropTrigger)
    assert (trigger.folder, trigger.pattern, trigger.poll_seconds) == ("/data/in", "*.csv", 0.02)
    # Its own model's errors come with file, line and field, as the built-in kinds' do.
    missing = "functions:\n  - name: a\n    trigger:\n      type: file_drop\n"
    assert _issues(missing) == [
        "proj/app.yaml:3: functions[0].trigger.folder: required field is missing"
    ]
    bad = "functions:\n  - name: a\n    trigger:\n      type: file_drop\n      folder: x\n      poll_seconds: 0\n      colour: red\n"
    assert _issues(bad) == [
        "proj/app.yaml:6: functions[0].trigger.poll_seconds: Input should be greater than 0",
        "proj/app.yaml:7: functions[0].trigger.colour: unknown field",
    ]
    unknown = "functions:\n  - name: a\n    trigger:\n      type: webhook\n"
    assert _issues(unknown) == [
        "proj/app.yaml:4: functions[0].trigger: unknown trigger type 'webhook'; "
        "expected one of 'http', 'timer', 'unity_table', 'file_drop'"
    ]


def test_an_unregistered_kind_is_refused_again() -> None:
    triggers.register(FileDropKind)
    try:
        parse_config(APP.format(folder="/data/in"))
    finally:
        triggers.unregister("file_drop")
    assert _issues(APP.format(folder="/data/in")) == [
        "proj/app.yaml:4: functions[0].trigger: unknown trigger type 'file_drop'; "
        "expected one of 'http', 'timer', 'unity_table'"
    ]


def test_a_second_kind_of_the_same_name_is_refused(file_drop: type[FileDropKind]) -> None:
    other = type("OtherDrop", (FileDropKind,), {})
    with pytest.raises(ValueError, match="'file_drop' is already registered"):
        triggers.register(other)
    with pytest.raises(ValueError, match="'http' is one of lakefn's own trigger kinds"):
        triggers.unregister("http")


@pytest.mark.parametrize("tag", [None, "other"])
def test_a_kind_whose_model_app_yaml_cannot_pick_is_refused_and_the_rest_still_work(
    tag: str | None,
) -> None:
    fields: dict[str, Any] = {"folder": (str, ...)}
    if tag is not None:
        fields["type"] = (Literal[tag], ...)  # tagged with a name that is not the kind's
    model = pydantic.create_model("Untagged", **fields)

    class Untagged(FileDropKind):
        type: ClassVar[str] = "untagged"
        config_model = model

    with pytest.raises(
        TypeError,
        match=r"config_model must be a pydantic model with a field `type: Literal\['untagged'\]`",
    ):
        triggers.register(Untagged)
    assert "untagged" not in triggers.KINDS
    # The kinds there were still parse, and an unknown type is still refused by name.
    assert (
        parse_config("functions:\n  - name: a\n    trigger: {type: http, endpoint: /a}\n")
        .functions[0]
        .kind
        == "http"
    )
    # ... and a good kind registers after it.
    triggers.register(FileDropKind)
    try:
        assert triggers.KINDS["file_drop"] is FileDropKind
    finally:
        triggers.unregister("file_drop")


def test_it_starts_and_stops_with_the_server(
    file_drop: type[FileDropKind], drop_project: ProjectDir, serve: Any, tmp_path: Path
) -> None:
    server = serve(drop_project)
    kind = server.runtime.kinds["file_drop"]
    assert isinstance(kind, FileDropKind) and kind.task is not None and not kind.task.done()
    assert server.client.get("/healthz").json()["status"] == "ok"
    (tmp_path / "inbox" / "orders.csv").write_text("id\n1\n")
    (tmp_path / "inbox" / "notes.txt").write_text("not a csv")
    invocation = _wait_for_invocation(server, "on_drop")
    assert invocation["status"] == "ok" and invocation["trigger"] == "file_drop"
    assert invocation["detail"]["path"].endswith("orders.csv")
    task = kind.task
    server.background.stop()  # the server's lifespan stops the runtime, and with it the kind
    assert kind.task is None and task.cancelled()


def test_its_problems_make_healthz_degraded(
    file_drop: type[FileDropKind], project: ProjectDir, serve: Any, tmp_path: Path
) -> None:
    project.config(APP.format(folder=tmp_path / "nowhere"))
    project.function("on_drop", "def main(event):\n    return None\n")
    project.function("hello", "def main(event):\n    return 'hi'\n")
    server = serve(project)
    response = server.client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["problems"] == [f"file_drop: no folder {tmp_path / 'nowhere'}"]


def test_it_is_listed_everywhere(
    file_drop: type[FileDropKind],
    drop_project: ProjectDir,
    serve: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = f"*.csv in {tmp_path / 'inbox'}"
    assert cli(["functions", "--app", str(drop_project.app_yaml), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {"name": "on_drop", "trigger": "file_drop", "on": summary, "run_on": "app"}
    server = serve(drop_project)
    listed = {f["name"]: f for f in server.client.get("/lakefn/functions").json()}
    assert listed["on_drop"]["summary"] == summary
    assert listed["on_drop"]["trigger"]["type"] == "file_drop"
    assert listed["hello"]["summary"] == "POST /hello"
    rows = FunctionsView(server.runtime).rows()
    assert rows == [("on_drop", f"file_drop {summary}"), ("hello", "http POST /hello")]


def test_it_runs_by_hand_from_the_admin_route(
    file_drop: type[FileDropKind], drop_project: ProjectDir, serve: Any
) -> None:
    server = serve(drop_project)
    response = server.client.post("/lakefn/functions/on_drop/invoke", json={"file": "a.csv"})
    assert response.status_code == 200
    assert response.json()["result"] == {"name": "a.csv", "trigger": "file_drop"}
    refused = server.client.post("/lakefn/functions/on_drop/invoke", json=[1])
    assert refused.status_code == 400
    assert refused.json()["detail"] == "a file_drop function is run with {'file': name}, not [1]"


def test_it_runs_by_hand_from_the_harness(
    file_drop: type[FileDropKind], drop_project: ProjectDir, tmp_path: Path
) -> None:
    with LakefnHarness(drop_project.app_yaml, tmp_path / "work") as lakefn:
        assert lakefn.invoke("on_drop", {"file": "b.csv"}) == {
            "name": "b.csv",
            "trigger": "file_drop",
        }
        assert lakefn.last_invocation.detail["path"].endswith("b.csv")
        # Started in the background as the server would: a dropped file is picked up.
        lakefn.start()
        (tmp_path / "inbox" / "c.csv").write_text("id\n")
        invocation = lakefn.wait_for("on_drop", count=2)
        assert invocation.result == {"name": "c.csv", "trigger": "file_drop"}
        lakefn.stop()
        assert lakefn.runtime.kinds["file_drop"].task is None  # type: ignore[attr-defined]


def _wait_for_invocation(server: Any, name: str) -> dict[str, Any]:
    # Woken by the journal when `name` is recorded (the 30 s bound is only a hung run's).
    arrived = threading.Event()
    unsubscribe = server.runtime.journal.subscribe(
        lambda invocation: arrived.set() if invocation.function == name else None
    )
    try:
        if not server.runtime.journal.entries(function=name):
            assert arrived.wait(30), f"{name} was never invoked"
    finally:
        unsubscribe()
    [entry] = server.client.get("/lakefn/invocations", params={"function": name}).json()
    return dict(entry)


EVERY_KIND = """\
functions:
  - name: hello
    trigger: {type: http, method: get, endpoint: /hello}
  - name: hourly
    trigger: {type: timer, schedule: "0 * * * *"}
  - name: orders
    trigger: {type: unity_table, table_name: main.sales.orders}
  - name: on_drop
    trigger: {type: file_drop, folder: /data/in}
"""


def test_each_kind_summarises_and_runs_only_its_own_functions(
    file_drop: type[FileDropKind], project: ProjectDir
) -> None:
    project.config(EVERY_KIND)
    for name in ("hello", "hourly", "orders", "on_drop"):
        project.function(name, "def main(event):\n    return None\n")
    runtime = project.runtime()
    try:
        summaries = {fn.name: triggers.kind(fn.kind).summary(fn) for fn in runtime.config.functions}
        assert summaries == {
            "hello": "GET /hello",
            "hourly": "0 * * * * (UTC)",
            "orders": "main.sales.orders every 30 s",
            "on_drop": "* in /data/in",
        }
        for kind in runtime.kinds.values():
            other = next(fn for fn in runtime.config.functions if fn.kind != kind.type)
            with pytest.raises(WrongTrigger) as info:
                runtime.run_sync(kind.run_by_hand(other.name, None))
            assert str(info.value) == (
                f"function {other.name!r} has a {other.kind} trigger, not {kind.type}"
            )
    finally:
        runtime.close()


def _with_a_timer(drop_project: ProjectDir) -> ProjectDir:
    app = drop_project.root / "app.yaml"
    app.write_text(
        app.read_text() + "  - name: tick\n    trigger: {type: timer, schedule: '0 0 1 1 *'}\n"
    )
    drop_project.function("tick", "def main(event):\n    return 'tick'\n")
    return drop_project


def test_a_kind_that_cannot_start_leaves_no_other_kind_running(
    file_drop: type[FileDropKind], drop_project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakefn.runtime import Runtime

    async def refuses(self: FileDropKind) -> None:
        raise RuntimeError("the inbox is on a disk that is gone")

    monkeypatch.setattr(FileDropKind, "start", refuses)
    runtime = Runtime.from_path(_with_a_timer(drop_project).root)
    try:

        async def start_then_look() -> Any:
            with pytest.raises(RuntimeError, match="disk that is gone"):
                await runtime.start()
            return runtime.timers.scheduler

        # The timer kind started before file_drop failed: its scheduler is stopped again.
        assert asyncio.run(start_then_look()) is None
        assert not runtime.started
    finally:
        runtime.close()


def test_a_kind_that_fails_to_stop_does_not_keep_the_others_running(
    file_drop: type[FileDropKind], drop_project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lakefn.runtime import Runtime
    from lakefn.triggers.http import HttpKind

    async def fails(self: Any) -> None:
        raise RuntimeError("stop failed")

    monkeypatch.setattr(HttpKind, "stop", fails)
    runtime = Runtime.from_path(_with_a_timer(drop_project).root)
    try:

        async def start_and_stop() -> tuple[Any, Any]:
            await runtime.start()
            drop_kind: Any = runtime.kinds["file_drop"]
            await runtime.stop()
            return runtime.timers.scheduler, drop_kind.task

        assert asyncio.run(start_and_stop()) == (None, None)
        assert not runtime.started
    finally:
        runtime.close()
