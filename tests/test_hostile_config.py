"""app.yaml as a careless author or an attacker writes it: every bad file is a config error
with file and line, never a traceback, a hang or unbounded memory; the real CLI says so too."""

from __future__ import annotations

import asyncio
import textwrap
import tracemalloc
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakefn import ConfigError
from lakefn._yaml import MAX_FILE_BYTES
from lakefn.config import MAX_RETRY_WAIT, RetryPolicy, parse_config
from lakefn.events import TimerEvent
from lakefn.invoker import Invoker
from lakefn.journal import Journal
from lakefn.project import load_functions, load_project
from tests._serving import clean_env
from tests.conftest import run_cli

# 616 bytes: nine levels of nine aliases each, 9**9 (387 million) strings once expanded.
ALIAS_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
    "functions:\n"
    "  - name: boom\n"
    "    trigger: {type: http, endpoint: /boom}\n"
    "    description: *i\n"
    "# padding to the size of the file found in the field: 616 bytes in all, this line included\n"
    "#" + "-" * 92 + "\n"
)


def _issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "proj/app.yaml")
    issues = info.value.issues
    assert all(issue.file == "proj/app.yaml" and issue.line for issue in issues), issues
    return [str(issue) for issue in issues]


def _validate(project, text: str, functions: tuple[str, ...] = ()):
    project.config(text)
    for name in functions:
        project.function(name, "def main(event):\n    return 1\n")
    result = run_cli("validate", str(project.app_yaml), env=clean_env())
    assert "Traceback" not in result.stderr, result.stderr
    return result


# --- YAML itself ---------------------------------------------------------------------------


def test_an_alias_bomb_is_refused_at_once_in_bounded_memory(project) -> None:
    assert len(ALIAS_BOMB.encode()) == 616
    tracemalloc.start()
    try:
        problems = _issues(ALIAS_BOMB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 1024 * 1024, f"peak {peak} bytes"  # the unbounded version reached 8 GB
    assert problems == [
        "proj/app.yaml:6: refused: this value stands for more than 100,000 values once its "
        "aliases (*name) are expanded"
    ]
    result = _validate(project, ALIAS_BOMB, ("boom",))
    assert result.returncode == 1 and "stands for more than 100,000 values" in result.stderr


def test_a_file_past_the_size_limit_is_refused_unread(project) -> None:
    big = "functions: []\n" + "#" * MAX_FILE_BYTES + "\n"
    assert _issues(big) == [
        f"proj/app.yaml:1: refused: the file is {len(big):,} bytes; lakefn reads app.yaml up to "
        f"{MAX_FILE_BYTES:,} bytes (256 KiB)"
    ]
    result = _validate(project, big)
    assert result.returncode == 1
    assert f"{project.app_yaml}:1: larger than {MAX_FILE_BYTES:,} bytes" in result.stderr


def test_a_self_referencing_alias_is_a_config_error(project) -> None:
    assert _issues("x: &a [*a]\nfunctions: []\n") == [
        "proj/app.yaml:1: refused: an alias refers to the list or mapping that contains it "
        "(a value cannot include itself)"
    ]
    assert _validate(project, "x: &a [*a]\n").returncode == 1


def test_a_complex_key_is_a_config_error(project) -> None:
    problems = _issues("functions: []\n? [a, b]\n: 1\n")
    assert problems == [
        "proj/app.yaml:2: YAML: found a complex key (a list or mapping used as a key); "
        "keys must be names"
    ]
    assert _validate(project, "? [a, b]\n: 1\n").returncode == 1


@pytest.mark.parametrize(
    "text",
    [
        "functions: " + "[" * 5000 + "]" * 5000 + "\n",
        "functions:\n" + "- " * 5000 + "x\n",
        "functions: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
        "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 5000)),
    ],
    ids=["flow-list", "block-list", "flow-mapping", "alias-chain"],
)
def test_nesting_5000_deep_is_a_config_error(text: str) -> None:
    (problem,) = _issues(text)
    assert "refused:" in problem and "more than 50 levels deep" in problem


def test_a_character_yaml_forbids_is_a_config_error_on_its_line() -> None:
    assert _issues("functions: []\nx: a\x7fb\n") == [
        "proj/app.yaml:2: YAML: character '\\x7f' is not allowed in a YAML file"
    ]


def test_a_value_yaml_cannot_read_is_a_config_error() -> None:
    # PyYAML raises plain ValueError for dates that match its pattern but do not exist.
    assert _issues("functions:\n  - name: 2024-13-45\n") == [
        "proj/app.yaml:2: YAML: cannot read this value: month must be in 1..12"
    ]


def test_a_file_of_thousands_of_problems_lists_the_first_50_and_counts_the_rest() -> None:
    problems = _issues("".join(f"k{i}: {i}\n" for i in range(3000)))
    assert len(problems) == 51
    assert problems[0] == "proj/app.yaml:1: k0: unknown field"
    assert problems[-1] == (
        "proj/app.yaml:51: ... and 2950 more problems from here on; fix the ones above first"
    )


def test_a_300_character_function_name_is_refused(project) -> None:
    name = "f" * 300
    (problem,) = _issues(
        f"functions:\n  - name: {name}\n    trigger: {{type: http, endpoint: /f}}\n"
    )
    assert problem.startswith("proj/app.yaml:2: functions[0].name: function name is 300 characters")
    assert "the limit is 100" in problem
    result = _validate(
        project, f"functions:\n  - name: {name}\n    trigger: {{type: http, endpoint: /f}}\n"
    )
    assert result.returncode == 1 and "the limit is 100" in result.stderr


def test_merge_keys_work_and_keep_line_numbers() -> None:
    text = """\
        functions:
          - name: a
            retry: &retry {max_attempts: 3, backoff_seconds: 2}
            trigger: &get
              type: http
              method: GET
              endpoint: /a
          - name: b
            retry: *retry
            trigger:
              <<: *get
              endpoint: /b
          - name: c
            trigger:
              <<: *get
              method: FETCH
              endpoint: /c
        """
    assert _issues(text) == [
        "proj/app.yaml:16: functions[2].trigger.method: unknown HTTP method 'FETCH'; "
        "use one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
    ]
    config = parse_config(textwrap.dedent(text).replace("FETCH", "PUT"))
    a, b, c = config.functions
    assert b.retry == a.retry == RetryPolicy(max_attempts=3, backoff_seconds=2)
    assert (b.trigger.method, b.trigger.endpoint) == ("GET", "/b")  # type: ignore[union-attr]
    assert (c.trigger.method, c.trigger.endpoint) == ("PUT", "/c")  # type: ignore[union-attr]
    # A merged value that is wrong is reported where it is written, under the function using it.
    broken = textwrap.dedent(text).replace("method: GET", "method: NOPE")
    lines = _issues_of(broken)
    assert "proj/app.yaml:6: functions[0].trigger.method: unknown HTTP method 'NOPE'" in lines[0]


def _issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "proj/app.yaml")
    return [str(issue) for issue in info.value.issues]


def test_validate_points_at_the_line_of_an_unknown_trigger_type(project) -> None:
    result = _validate(project, "functions:\n  - name: x\n    trigger:\n      type: cron\n", ("x",))
    assert result.returncode == 1
    assert f"{project.app_yaml}:4: functions[0].trigger: unknown trigger type 'cron'" in (
        result.stderr
    )


# --- values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        (
            'name: "A=B"\n    value: x',
            "2: env[0].name",
            "'A=B' is not an environment variable name",
        ),
        ('name: ""\n    value: x', "2: env[0].name", "'' is not an environment variable name"),
        ('name: "A\\0B"\n    value: x', "2: env[0].name", "is not an environment variable name"),
        ('name: A\n    value: "x\\0y"', "3: env[0].value", "contains a NUL character"),
        ("name: A\n    value: .inf", "3: env[0].value", "is not a number an environment value"),
    ],
    ids=["equals-sign", "empty", "nul-in-name", "nul-in-value", "infinite-value"],
)
def test_env_entries_the_environment_cannot_hold_are_refused(
    project, entry, where, message
) -> None:
    text = f"env:\n  - {entry}\nfunctions: []\n"
    (problem,) = _issues(text)
    assert problem.startswith(f"proj/app.yaml:{where}:") and message in problem, problem
    result = _validate(project, text)
    assert result.returncode == 1 and message in result.stderr


def test_a_misspelt_operation_is_refused_naming_the_nearest(project) -> None:
    text = (
        "functions:\n  - name: w\n    table_name: c.s.t\n"
        "    trigger: {type: unity_table, operations: [MERGE, WRTIE]}\n"
    )
    (problem,) = _issues(text)
    assert problem.startswith("proj/app.yaml:4: functions[0].trigger.operations")
    assert "'WRTIE' is not a Delta operation name; did you mean 'WRITE'?" in problem
    assert "custom:WRTIE" in problem
    result = _validate(project, text, ("w",))
    assert result.returncode == 1 and "did you mean 'WRITE'?" in result.stderr


def test_known_and_custom_operations_are_accepted() -> None:
    config = parse_config(
        "functions:\n  - name: w\n    table_name: c.s.t\n    trigger:\n      type: unity_table\n"
        "      operations: [write, streaming  update, 'CREATE OR REPLACE TABLE AS SELECT',"
        " VACUUM END, 'custom:Liquid Reshuffle']\n"
    )
    assert config.functions[0].trigger.operations == (  # type: ignore[union-attr]
        "WRITE",
        "STREAMING UPDATE",
        "CREATE OR REPLACE TABLE AS SELECT",
        "VACUUM END",
        "LIQUID RESHUFFLE",  # compared upper-case, as every commit's operation is
    )


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("trigger: {type: unity_table, check_interval: .inf}", "trigger.check_interval"),
        ("trigger: {type: unity_table, check_interval: .nan}", "trigger.check_interval"),
        ("timeout: .inf", "timeout"),
        ("retry: {backoff_seconds: .inf}", "retry.backoff_seconds"),
        ("retry: {backoff_seconds: -.inf}", "retry.backoff_seconds"),
    ],
)
def test_non_finite_numbers_are_refused(setting: str, field: str) -> None:
    text = f"functions:\n  - name: w\n    table_name: c.s.t\n    {setting}\n"
    if "unity_table" not in setting:
        text += "    trigger: {type: unity_table}\n"
    problems = _issues(text)
    assert any(
        p.startswith(f"proj/app.yaml:4: functions[0].{field}:") and "finite number" in p
        for p in problems
    ), problems


def test_backoff_is_bounded_and_retry_waits_are_capped(project) -> None:
    (problem,) = _issues(
        "functions:\n  - name: w\n    retry: {backoff_seconds: 86400}\n"
        "    trigger: {type: http, endpoint: /w}\n"
    )
    assert problem.startswith("proj/app.yaml:3: functions[0].retry.backoff_seconds:")
    assert "less than or equal to 3600" in problem
    project.config(
        "functions:\n  - name: w\n    retry: {max_attempts: 8, backoff_seconds: 100}\n"
        "    trigger: {type: timer, schedule: '0 0 * * *'}\n"
    )
    project.function("w", "def main(event):\n    raise RuntimeError('down')\n")
    registry = load_functions(load_project(project.app_yaml))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    invoker = Invoker(registry, Journal(), sleep=sleep)
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    try:
        asyncio.run(invoker.invoke("w", lambda: TimerEvent("w", scheduled_time=at, past_due=False)))
    finally:
        invoker.close()
    assert MAX_RETRY_WAIT == 300
    assert waits == [100, 200, 300, 300, 300, 300, 300]  # doubling, then capped
    assert RetryPolicy(max_attempts=100, backoff_seconds=3600).delay(99) == 3600


@pytest.mark.parametrize(
    "endpoint",
    ["/search?q=1", "/page#top", "/a/../admin", "/a/./b", "/a//b", "/a b"],
)
def test_endpoints_no_request_can_reach_are_refused(endpoint: str) -> None:
    (problem,) = _issues(
        f"functions:\n  - name: w\n    trigger: {{type: http, endpoint: '{endpoint}'}}\n"
    )
    assert problem.startswith("proj/app.yaml:3: functions[0].trigger.endpoint:")
    assert repr(endpoint) in problem


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("c.s.`..`", "cannot contain a period"),
        ("c.s.`a/b`", "cannot contain a slash"),
        ("`..`.s.t", "cannot contain a period"),
        ("c.`a.b`.t", "cannot contain a period"),
        ("c.s.`a b`", "cannot contain a space"),
        ("c.s.`a\\x7fb`", "control character"),  # a YAML escape: DEL itself is not YAML
    ],
)
def test_table_name_parts_unity_catalog_forbids_are_refused(project, name, reason) -> None:
    text = (
        f'functions:\n  - name: w\n    table_name: "{name}"\n    trigger: {{type: unity_table}}\n'
    )
    (problem,) = _issues(text)
    assert problem.startswith("proj/app.yaml:3: functions[0].table_name:") and reason in problem
    result = _validate(project, text, ("w",))
    assert result.returncode == 1 and reason in result.stderr


@pytest.mark.parametrize(
    ("method", "endpoint", "shadowed"),
    [
        ("GET", "/{x}", "/healthz, /docs, /redoc, /openapi.json"),
        ("GET", "/{p:path}", "/, /healthz, /lakefn/functions"),
        ("POST", "/lakefn-like/{a}/{b:path}", None),
        ("POST", "/{p:path}", "/lakefn/functions/{name}/invoke"),
    ],
)
def test_catch_all_routes_over_lakefn_routes_make_validate_warn(
    project, method, endpoint, shadowed
) -> None:
    result = _validate(
        project,
        f"functions:\n  - name: w\n    trigger: {{type: http, method: {method}, "
        f"endpoint: '{endpoint}'}}\n",
        ("w",),
    )
    assert result.returncode == 0, result.stderr
    if shadowed is None:
        assert "WARNING" not in result.stderr
        return
    assert f"WARNING {project.app_yaml}:3: functions[0].trigger.endpoint: {method} {endpoint} " in (
        result.stderr
    )
    assert shadowed in result.stderr and "this function is not called for them" in result.stderr
    assert load_project(project.app_yaml).warnings


# --- fuzz ----------------------------------------------------------------------------------

VALID = """\
env:
  - name: A_SETTING
    value: "1"
tables:
  source: local
state: .lakefn/state.db
functions:
  - name: hello
    retry: &retry {max_attempts: 3, backoff_seconds: 0.5}
    trigger: &http
      type: http
      method: POST
      endpoint: /hello/{name}
  - name: tick
    retry: *retry
    timeout: 2.5
    trigger: {type: timer, schedule: "*/5 9-17 * * MON-FRI", timezone: Europe/Paris}
  - name: watch
    table_name: main.sales.`orders-2024`
    trigger:
      type: unity_table
      check_interval: 30
      operations: [WRITE, MERGE]
      start: earliest
"""

SPECIAL = st.sampled_from(
    [
        "&a ",
        "*a",
        "<<: *a",
        "? ",
        ": ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        "!!binary ",
        "!!python/object:os.system ",
        "|",
        ">",
        "'",
        '"',
        "#",
        "%YAML 1.1",
        "---",
        "...",
        "\t",
        "\x00",
        "\ufeff",
        ".inf",
        "-.inf",
        ".nan",
        "1e400",
        "9" * 400,
        "0x" + "f" * 40,
        "2024-13-45",
        "~",
        "null",
        "yes",
        "é",
    ]
)


@st.composite
def edited(draw: st.DrawFn) -> str:
    lines = VALID.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(
            st.sampled_from(["delete", "duplicate", "insert", "replace", "indent", "value"])
        )
        if action == "delete" and len(lines) > 1:
            del lines[index]
        elif action == "value" and ": " in lines[index]:  # a whole new value for a key
            key = lines[index].split(": ", 1)[0]
            lines[index] = f"{key}: {draw(st.one_of(SPECIAL, st.text(max_size=8)))}"
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "indent":
            lines[index] = " " * draw(st.integers(0, 6)) + lines[index].lstrip()
        else:
            line = lines[index]
            at = draw(st.integers(0, len(line)))
            piece = draw(st.one_of(SPECIAL, st.text(max_size=5)))
            end = at if action == "insert" else min(len(line), at + draw(st.integers(0, 6)))
            lines[index] = line[:at] + piece + line[end:]
    return "\n".join(lines) + "\n"


@settings(
    max_examples=250,
    # Not a speed check (examples take ~20 ms): a bound so that a hang fails the example that
    # caused it, with the text, instead of the whole run at pytest's timeout.
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(edited())
def test_random_edits_are_accepted_or_refused_with_file_and_line(text: str) -> None:
    tracemalloc.start()
    try:
        try:
            parse_config(text, "fuzz/app.yaml")
        except ConfigError as exc:
            assert exc.issues
            for issue in exc.issues:
                assert issue.file == "fuzz/app.yaml" and isinstance(issue.line, int), issue
                assert issue.line >= 1 and issue.message, issue
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, peak
