"""app.yaml: the seed's format loads unchanged; every bad file is refused with file, line, field."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import pytest

from lakefn import ConfigError
from lakefn.config import HttpTrigger, TableTrigger, TimerTrigger, parse_config
from lakefn.project import load_functions, load_project

SEED = """\
command: ["uvicorn", "app:app"]
env:
  - name: DATABRICKS_WAREHOUSE_PATH
    value: /sql/1.0/warehouses/abc
  - name: DATABRICKS_WAREHOUSE_ID
    valueFrom: sql-warehouse
tables:
  source: auto
  local_root: .lakefn/catalog
state: .lakefn/state.db
functions:
  - name: example_http
    trigger:
      type: http
      method: POST
      endpoint: /run-example
  - name: scheduled_task
    trigger:
      type: timer
      schedule: "*/5 * * * *"
  - name: unity_monitor
    trigger:
      type: unity_table
      check_interval: 30
    table_name: _data.tpch.dim_customer
"""


def test_the_seed_format_loads_unchanged() -> None:
    config = parse_config(SEED)
    http, timer, table = config.functions
    assert isinstance(http.trigger, HttpTrigger)
    assert (http.trigger.method, http.trigger.endpoint) == ("POST", "/run-example")
    assert isinstance(timer.trigger, TimerTrigger) and timer.trigger.timezone == "UTC"
    assert isinstance(table.trigger, TableTrigger) and table.trigger.check_interval == 30
    assert str(table.table) == "_data.tpch.dim_customer"
    assert table.trigger.start == "latest" and table.trigger.operations is None
    assert config.command == ["uvicorn", "app:app"]


def test_the_repo_sample_is_valid() -> None:
    project = load_project(Path(__file__).parent.parent / "app.yaml", apply_env=False)
    assert [f.name for f in project.config.functions] == [
        "example_http",
        "scheduled_task",
        "unity_monitor",
    ]
    assert sorted(load_functions(project).names) == [
        "example_http",
        "scheduled_task",
        "unity_monitor",
    ]


def test_optional_settings_are_read() -> None:
    config = parse_config(
        """
        functions:
          - name: watch
            retry: {max_attempts: 3, backoff_seconds: 0.5}
            timeout: 2.5
            trigger:
              type: unity_table
              check_interval: 0.25
              table_name: "`my-cat`.sales.`order-items`"
              operations: [write, MERGE]
              start: 7
        """.replace("\n        ", "\n")
    )
    fn = config.functions[0]
    assert fn.retry.max_attempts == 3 and fn.retry.backoff_seconds == 0.5 and fn.timeout == 2.5
    assert fn.trigger.operations == ("WRITE", "MERGE")  # type: ignore[union-attr]
    assert fn.trigger.start == 7 and fn.trigger.check_interval == 0.25  # type: ignore[union-attr]
    assert fn.table is not None and fn.table.parts == ("my-cat", "sales", "order-items")
    assert fn.table.sql == "`my-cat`.`sales`.`order-items`"


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "proj/app.yaml")
    return [str(issue) for issue in info.value.issues]


BAD = {
    "yaml syntax": ("functions: [\n  {name: a,\n", "proj/app.yaml:3", "YAML syntax"),
    "unknown trigger type": (
        "functions:\n  - name: a\n    trigger:\n      type: webhook\n",
        "proj/app.yaml:4: functions[0].trigger:",
        "unknown trigger type 'webhook'",
    ),
    "missing field": (
        "functions:\n  - name: a\n    trigger:\n      type: http\n",
        "proj/app.yaml:3: functions[0].trigger.endpoint:",
        "required field is missing",
    ),
    "unknown field": (
        "functions:\n  - name: a\n    trigger: {type: http, endpoint: /a}\n    retries: 3\n",
        "proj/app.yaml:4: functions[0].retries:",
        "unknown field",
    ),
    "bad cron": (
        "functions:\n  - name: a\n    trigger:\n      type: timer\n      schedule: '*/5 * * *'\n",
        "proj/app.yaml:5: functions[0].trigger.schedule:",
        "not a 5-field cron",
    ),
    "cron value out of range": (
        "functions:\n  - name: a\n    trigger:\n      type: timer\n      schedule: '0 25 * * *'\n",
        "proj/app.yaml:5: functions[0].trigger.schedule:",
        "higher than the maximum",
    ),
    "bad timezone": (
        "functions:\n  - name: a\n    trigger: {type: timer, schedule: '* * * * *', timezone: Mars/Base}\n",
        "proj/app.yaml:3: functions[0].trigger.timezone:",
        "unknown timezone",
    ),
    "duplicate names": (
        "functions:\n  - name: a\n    trigger: {type: http, endpoint: /a}\n"
        "  - name: a\n    trigger: {type: http, endpoint: /b}\n",
        "proj/app.yaml:4: functions[1].name:",
        "duplicate function name 'a' (first declared on line 2)",
    ),
    "one method and route twice": (
        "functions:\n  - name: a\n    trigger: {type: http, endpoint: '/x/{id}'}\n"
        "  - name: b\n    trigger: {type: http, method: post, endpoint: '/x/{key}'}\n",
        "proj/app.yaml:5: functions[1].trigger.endpoint:",
        "already served by function 'a'",
    ),
    "endpoint without slash": (
        "functions:\n  - name: a\n    trigger:\n      type: http\n      endpoint: run\n",
        "proj/app.yaml:5: functions[0].trigger.endpoint:",
        "must start with '/'",
    ),
    "two-part table name": (
        "functions:\n  - name: a\n    trigger: {type: unity_table}\n    table_name: tpch.customer\n",
        "proj/app.yaml:4: functions[0].table_name:",
        "not a Unity table name (2 parts)",
    ),
    "table name injection": (
        "functions:\n  - name: a\n    trigger: {type: unity_table}\n"
        '    table_name: "a.b.c; DROP TABLE x"\n',
        "proj/app.yaml:4: functions[0].table_name:",
        "not a Unity table name",
    ),
    "table name missing": (
        "functions:\n  - name: a\n    trigger: {type: unity_table}\n",
        "proj/app.yaml:2: functions[0]:",
        "needs table_name",
    ),
    "bad method": (
        "functions:\n  - name: a\n    trigger: {type: http, endpoint: /a, method: FETCH}\n",
        "proj/app.yaml:3: functions[0].trigger.method:",
        "unknown HTTP method",
    ),
    "env without value": (
        "env:\n  - name: X\nfunctions: []\n",
        "proj/app.yaml:2: env[0]:",
        "exactly one of `value` or `valueFrom`",
    ),
    "reserved endpoint": (
        "functions:\n  - name: a\n    trigger: {type: http, method: GET, endpoint: /docs}\n",
        "proj/app.yaml:3: functions[0].trigger.endpoint:",
        "served by lakefn itself",
    ),
    "unclosed path parameter": (
        "functions:\n  - name: a\n    trigger: {type: http, endpoint: '/x/{id'}\n",
        "proj/app.yaml:3: functions[0].trigger.endpoint:",
        "unclosed path parameter",
    ),
    "start is not a version": (
        "functions:\n  - name: a\n    trigger: {type: unity_table, start: yes, table_name: a.b.c}\n",
        "proj/app.yaml:3: functions[0].trigger.start:",
        "latest, earliest or a version number",
    ),
    "functions not a list": ("functions: 5\n", "proj/app.yaml:1: functions:", "should be a list"),
    "negative interval": (
        "functions:\n  - name: a\n    trigger: {type: unity_table, check_interval: 0}\n    table_name: a.b.c\n",
        "proj/app.yaml:3: functions[0].trigger.check_interval:",
        "greater than 0",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_file_is_refused_with_file_line_and_field(case: str) -> None:
    text, where, what = BAD[case]
    problems = _problems(text)
    assert any(p.startswith(where) and what in p for p in problems), problems


def test_all_problems_of_a_file_are_reported_together() -> None:
    problems = _problems(
        """\
        functions:
          - name: a
            trigger: {type: htp}
          - name: b
            trigger: {type: http, endpoint: nope}
          - name: a
            trigger: {type: timer, schedule: "61 * * * *"}
          - name: d
            trigger: {type: unity_table}
            table_name: only.two
        """
    )
    assert len(problems) == 5, problems
    assert [p.split(":")[1] for p in problems] == ["3", "5", "6", "7", "10"]


def test_module_and_main_problems_name_file_line_and_function(project) -> None:
    project.config(
        """\
        functions:
          - name: present
            trigger: {type: http, endpoint: /p}
          - name: absent
            trigger: {type: http, endpoint: /a}
          - name: no_main
            trigger: {type: timer, schedule: "* * * * *"}
          - name: no_event
            trigger: {type: timer, schedule: "* * * * *"}
        """
    )
    project.function("present", "def main(event):\n    return 1\n")
    project.function("no_main", "def handler(event):\n    return 1\n")
    project.function("no_event", "def main():\n    return 1\n")
    with pytest.raises(ConfigError) as info:
        load_functions(load_project(project.app_yaml))
    text = str(info.value)
    assert (
        f"{project.app_yaml}:4: functions[1]:" in text
        and "absent_function.py does not exist" in text
    )
    assert f"{project.app_yaml}:6: functions[2]:" in text and "has no `main`" in text
    assert f"{project.app_yaml}:8: functions[3]:" in text and "must take one argument" in text
    assert "present" not in text


def test_trigger_table_name_is_accepted_too() -> None:
    config = parse_config(
        "functions:\n  - name: a\n    trigger: {type: unity_table, table_name: c.s.t}\n"
    )
    assert str(config.functions[0].table) == "c.s.t"


def test_env_is_applied_and_an_existing_value_wins(project, monkeypatch, caplog) -> None:
    monkeypatch.delenv("LAKEFN_T_NEW", raising=False)
    monkeypatch.setenv("LAKEFN_T_SET", "from-shell")
    monkeypatch.delenv("LAKEFN_T_FROM", raising=False)
    project.config(
        """\
        env:
          - name: LAKEFN_T_NEW
            value: 8000
          - name: LAKEFN_T_SET
            value: from-yaml
          - name: LAKEFN_T_FROM
            valueFrom: sql-warehouse
        functions: []
        """
    )
    with caplog.at_level(logging.WARNING, logger="lakefn"):
        load_project(project.app_yaml)
    try:
        assert os.environ["LAKEFN_T_NEW"] == "8000"
        assert os.environ["LAKEFN_T_SET"] == "from-shell"
        assert "LAKEFN_T_FROM" not in os.environ
        assert any(
            "LAKEFN_T_FROM" in r.getMessage() and "sql-warehouse" in r.getMessage()
            for r in caplog.records
        )
    finally:
        os.environ.pop("LAKEFN_T_NEW", None)


def test_relative_paths_resolve_against_app_yaml_and_env_overrides(
    project, monkeypatch, tmp_path
) -> None:
    project.config("tables: {local_root: data/catalog}\nstate: st/state.db\nfunctions: []\n")
    loaded = load_project(project.app_yaml)
    assert loaded.local_root == project.root / "data/catalog"
    assert loaded.state_path == project.root / "st/state.db"
    monkeypatch.setenv("LAKEFN_STATE", str(tmp_path / "elsewhere.db"))
    monkeypatch.setenv("LAKEFN_LOCAL_ROOT", str(tmp_path / "cat"))
    assert loaded.state_path == tmp_path / "elsewhere.db"
    assert loaded.local_root == tmp_path / "cat"


def test_a_missing_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_project(tmp_path / "app.yaml")


@pytest.mark.parametrize(
    ("written", "read"), [("latest", "latest"), ("earliest", "earliest"), ("0", 0), ("12", 12)]
)
def test_start_takes_latest_earliest_or_a_version(written: str, read: object) -> None:
    config = parse_config(
        f"functions:\n  - name: a\n    trigger: {{type: unity_table, start: {written}, table_name: a.b.c}}\n"
    )
    assert config.functions[0].trigger.start == read  # type: ignore[union-attr]
