"""A table source added from outside lakefn: one class, one `register_source` call.

Once registered, app.yaml's `tables: {source: <name>}` accepts it, a runtime builds it with its
`from_project` and table functions get the versions it reports, as with lakefn's own sources.
A name no source has is refused in app.yaml (file, line, the names it knows) and, for a
config built in code, when the source is chosen, naming the setting: never a silent default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from lakefn import ConfigError, SourceUnavailable, TableName, TableNotFound
from lakefn.abc import TableSource
from lakefn.config import parse_config
from lakefn.events import Commit
from lakefn.project import Project, load_project
from lakefn.sources.selection import (
    SOURCES,
    register_source,
    select_source,
    source_names,
    unregister_source,
)
from tests.conftest import ProjectDir


class DictSource(TableSource):
    """Tables as a dict of table name -> list of operations, version = index."""

    name = "mine"
    tables: dict[str, list[str]] = {}
    project_root: Path | None = None

    @classmethod
    def from_project(cls, project: Project) -> DictSource:
        source = cls()
        source.project_root = project.root
        return source

    def _ops(self, table: TableName) -> list[str]:
        try:
            return self.tables[str(table)]
        except KeyError:
            raise TableNotFound(str(table), "the dict") from None

    def latest_version(self, table: TableName) -> int:
        return len(self._ops(table)) - 1

    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
        commits = [
            Commit(version, stamp, operation)
            for version, operation in enumerate(self._ops(table))
            if version > after
        ]
        return commits[:limit] if limit is not None else commits

    def changes(self, table: TableName, start: int, end: int) -> pa.Table:
        return pa.table({"_change_type": [], "_commit_version": []})


@pytest.fixture
def mine() -> Iterator[type[DictSource]]:
    register_source("mine", DictSource)
    DictSource.tables = {"main.sales.orders": ["CREATE TABLE", "WRITE", "MERGE"]}
    yield DictSource
    unregister_source("mine")


APP = """\
tables: {source: mine}
functions:
  - name: feed
    trigger: {type: unity_table, start: earliest}
    table_name: main.sales.orders
"""


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "proj/app.yaml")
    return [str(issue) for issue in info.value.issues]


def test_a_registered_source_is_accepted_in_app_yaml(mine: type[DictSource]) -> None:
    assert parse_config(APP).tables.source == "mine"
    assert source_names() == ("auto", "local", "warehouse", "spark", "recorded", "mine")


def test_a_registered_source_delivers_versions_to_a_function(
    mine: type[DictSource], project: ProjectDir
) -> None:
    project.config(APP)
    project.function(
        "feed",
        "def main(event):\n    return [c.operation for c in event.commits]\n",
    )
    runtime = project.runtime()
    try:
        source = runtime.table_source
        assert isinstance(source, DictSource) and source.project_root == project.root
        invocation = asyncio.run(runtime.watcher.check("feed"))
        assert invocation is not None and invocation.ok
        assert invocation.result == ["CREATE TABLE", "WRITE", "MERGE"]
        assert runtime.checkpoints.load("feed|main.sales.orders") == 2
        (row,) = runtime.table_status()
        assert row["source"] == "mine"
    finally:
        runtime.close()


def test_an_unknown_source_is_refused_with_the_line_and_the_known_names() -> None:
    (issue,) = _issues(APP)
    assert issue.startswith("proj/app.yaml:1: tables.source:")
    assert "'auto', 'local', 'warehouse', 'spark' or 'recorded'" in issue


def test_an_unregistered_source_is_refused_again() -> None:
    register_source("mine", DictSource)
    unregister_source("mine")
    assert "mine" not in SOURCES
    assert len(_issues(APP)) == 1


def test_a_source_unknown_when_chosen_names_the_setting(
    mine: type[DictSource], project: ProjectDir
) -> None:
    """A config validated while a source was registered, used after it was taken out."""
    project.config(APP)
    loaded = load_project(project.app_yaml)
    unregister_source("mine")
    try:
        with pytest.raises(SourceUnavailable, match="app.yaml's tables.source must be one of"):
            select_source(loaded)
    finally:
        register_source("mine", DictSource)


def test_a_source_module_that_cannot_be_imported_names_the_setting(
    project: ProjectDir,
) -> None:
    register_source("missing", "lakefn_no_such_module:Source")
    try:
        project.config("tables: {source: missing}\n")
        loaded = load_project(project.app_yaml)
        with pytest.raises(SourceUnavailable) as info:
            select_source(loaded)
        assert "tables.source: missing needs lakefn_no_such_module" in str(info.value)
    finally:
        unregister_source("missing")


def test_lakefn_sources_cannot_be_replaced_or_taken_out() -> None:
    with pytest.raises(ValueError, match="'local' is already registered"):
        register_source("local", DictSource)
    with pytest.raises(ValueError, match="'auto' is already registered"):
        register_source("auto", DictSource)
    with pytest.raises(ValueError, match="one of lakefn's own"):
        unregister_source("recorded")


def test_a_source_that_cannot_start_names_the_setting(
    project: ProjectDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`spark` outside a notebook, with no Spark session to be had: a clear error naming
    app.yaml's setting, never another source."""
    import lakefn.sources.spark as spark

    monkeypatch.setattr(spark, "active_spark_session", lambda connect=True: None)
    project.config("tables: {source: spark}\n")
    with pytest.raises(SourceUnavailable) as info:
        select_source(load_project(project.app_yaml))
    message = str(info.value)
    assert message.startswith("table source 'spark' is unavailable: no Spark session")
    assert message.endswith("(app.yaml's tables.source: spark)")
