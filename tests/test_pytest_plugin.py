"""The `lakefn` pytest fixture, tested the way users meet it: pytest runs over small projects
(through `pytester`), with the plugin loaded from the installed entry point as it is for them.

Most runs are in-process, for speed. pytester forgets the modules a run imported once it ends;
native extensions (deltalake, pyarrow) cannot be imported twice into one process, so what the
harness uses is imported here first and kept. One run (`lakefn init`) is a real subprocess.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import deltalake  # noqa: F401 - see the module docstring
import httpx  # noqa: F401
import pyarrow  # noqa: F401
import pytest
import uvicorn  # noqa: F401

import lakefn.cli
import lakefn.server  # noqa: F401
import lakefn.sources.local  # noqa: F401
import lakefn.testing  # noqa: F401
import lakefn.triggers.timer  # noqa: F401
import lakefn.watching  # noqa: F401

pytest_plugins = ["pytester"]

# In-process runs re-read the installed plugins; pytest warns that the already imported
# `lakefn` package cannot get its asserts rewritten, which is true and harmless here.
STRICT_INI = """
[pytest]
filterwarnings =
    error
    ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning
asyncio_default_fixture_loop_scope = function
"""

APP_YAML = """
functions:
  - name: hello
    trigger: {type: http, method: POST, endpoint: /hello}
  - name: broken
    trigger: {type: http, method: POST, endpoint: /broken}
  - name: tick
    trigger: {type: timer, schedule: "*/5 * * * *"}
  - name: on_orders
    trigger: {type: unity_table, check_interval: 0.05}
    table_name: main.sales.orders
"""

FUNCTIONS = {
    "hello": """
        import lakefn

        def main(event):
            name = event.json().get("name", "world")
            if name == "nobody":
                raise lakefn.HttpError(404, "no such person")
            return {"message": f"hello, {name}"}
    """,
    "broken": """
        def main(event):
            raise ValueError("boom: the warehouse said no")
    """,
    "tick": """
        def main(event):
            return {"at": event.scheduled_time.isoformat(), "past_due": event.past_due}
    """,
    "on_orders": """
        import os

        def main(event):
            if os.environ.get("ORDERS_FAIL"):
                raise RuntimeError("orders are failing on purpose")
            changes = event.changes().to_pylist()
            return {
                "versions": [c.version for c in event.commits],
                "operations": [c.operation for c in event.commits],
                "ids": sorted(row["id"] for row in changes if row["_change_type"] == "insert"),
            }
    """,
}


def write_project(
    root: Path, app_yaml: str = APP_YAML, functions: dict[str, str] | None = None
) -> Path:
    """A lakefn project at `root`; returns its app.yaml."""
    (root / "functions").mkdir(parents=True, exist_ok=True)
    for name, code in (FUNCTIONS if functions is None else functions).items():
        (root / "functions" / f"{name}_function.py").write_text(textwrap.dedent(code))
    app = root / "app.yaml"
    app.write_text(textwrap.dedent(app_yaml))
    return app


def write_test(path: Path, code: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))
    return path


@pytest.fixture
def strict(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester folder whose runs turn warnings into errors, as this repo's own run does."""
    pytester.makeini(STRICT_INI)
    return pytester


# -- a project whose tests pass ------------------------------------------------------------


def test_a_passing_project(strict: pytest.Pytester) -> None:
    write_project(strict.path)
    write_test(
        strict.path / "tests" / "test_functions.py",
        """
        from datetime import datetime, timezone

        import pytest
        from lakefn import HttpError


        def test_invoke(lakefn):
            assert lakefn.invoke("hello", {"name": "Ada"}) == {"message": "hello, Ada"}
            record = lakefn.last_invocation
            assert (record.function, record.status, record.trigger) == ("hello", "ok", "http")
            assert record.duration is not None

        def test_invoke_record_of_a_failure(lakefn):
            record = lakefn.invoke_record("broken")
            assert record.status == "error" and "boom" in record.error

        def test_http_error_is_an_answer(lakefn):
            with pytest.raises(HttpError) as answered:
                lakefn.invoke("hello", {"name": "nobody"})
            assert answered.value.status == 404

        def test_client(lakefn):
            answer = lakefn.client.post("/hello", json={"name": "Bo"})
            assert answer.json() == {"message": "hello, Bo"}
            assert lakefn.client.post("/hello", json={"name": "nobody"}).status_code == 404
            failed = lakefn.client.post("/broken")
            assert failed.status_code == 500
            assert lakefn.journal[-1].id in failed.text
            assert [f["name"] for f in lakefn.client.get("/lakefn/functions").json()] == [
                "hello", "broken", "tick", "on_orders"
            ]

        def test_timer_with_the_fake_clock(lakefn):
            at = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
            lakefn.clock.set(at)
            assert lakefn.fire_timer("tick", at=at) == {"at": at.isoformat(), "past_due": False}
            lakefn.clock.advance(minutes=2)
            assert lakefn.fire_timer("tick", at=at)["past_due"] is True
            assert lakefn.fire_timer("tick")["at"] == lakefn.clock.now().isoformat()

        def test_simulated_table_change(lakefn):
            result = lakefn.simulate_table_change(
                "on_orders", operation="MERGE", rows=[{"id": 3}, {"id": 1}], version=12
            )
            assert result == {"versions": [12], "operations": ["MERGE"], "ids": [1, 3]}
            assert lakefn.last_invocation.simulated

        def test_state_is_private_to_the_test(lakefn, tmp_path):
            assert lakefn.runtime.project.state_path.is_relative_to(tmp_path)
            assert lakefn.runtime.project.local_root.is_relative_to(tmp_path)
        """,
    )
    result = strict.runpytest()
    result.assert_outcomes(passed=7)
    assert not (strict.path / ".lakefn").exists()


def test_tests_without_the_fixture_are_left_alone(strict: pytest.Pytester) -> None:
    # No app.yaml anywhere: the plugin is loaded but nothing asks for it.
    strict.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    strict.runpytest().assert_outcomes(passed=1)


def test_the_plugin_is_light_to_import() -> None:
    code = (
        "import sys, lakefn.pytest_plugin\n"
        "heavy = {'fastapi', 'uvicorn', 'deltalake', 'pyarrow', 'httpx', 'lakefn.runtime'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_option_is_in_the_help(strict: pytest.Pytester) -> None:
    result = strict.runpytest("--help")
    result.stdout.fnmatch_lines(["*--lakefn-app=PATH*", "*lakefn_app (string)*"])


# -- failures read well ----------------------------------------------------------------------


def test_a_failing_function_fails_the_test_with_its_name_id_and_error(
    strict: pytest.Pytester,
) -> None:
    write_project(strict.path)
    write_test(
        strict.path / "test_broken.py",
        """
        def test_broken(lakefn):
            lakefn.invoke("broken", {"x": 1})
        """,
    )
    result = strict.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines(
        [
            r".*FunctionFailed: function 'broken' failed \(invocation [0-9a-f]{16}, http trigger, "
            r"attempt 1, status error\): ValueError: boom: the warehouse said no",
        ]
    )
    # The function's own traceback is chained, down to its line.
    result.stdout.fnmatch_lines(
        ['*raise ValueError("boom: the warehouse said no")*', "*direct cause*"]
    )


def test_a_missing_function_lists_the_known_ones(strict: pytest.Pytester) -> None:
    write_project(strict.path)
    write_test(
        strict.path / "test_missing.py",
        """
        def test_missing(lakefn):
            lakefn.invoke("helo")

        def test_missing_timer(lakefn):
            lakefn.fire_timer("tock")

        def test_missing_table_function(lakefn):
            lakefn.check("on_order")
        """,
    )
    result = strict.runpytest()
    result.assert_outcomes(failed=3)
    known = "the project has: broken, hello, on_orders, tick"
    result.stdout.fnmatch_lines([f"*FunctionNotFound: no function named 'helo'; {known}*"])
    result.stdout.fnmatch_lines([f"*FunctionNotFound: no function named 'tock'; {known}*"])
    result.stdout.fnmatch_lines([f"*FunctionNotFound: no function named 'on_order'; {known}*"])


def test_the_wrong_kind_of_function_says_so(strict: pytest.Pytester) -> None:
    write_project(strict.path)
    write_test(
        strict.path / "test_kind.py",
        """
        def test_check_http(lakefn):
            lakefn.check("hello")
        """,
    )
    result = strict.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*WrongTrigger: function 'hello' has a http trigger, not unity_table*"]
    )


def test_a_bad_app_yaml_is_a_setup_error_with_file_and_line(strict: pytest.Pytester) -> None:
    write_project(
        strict.path,
        app_yaml="""
        functions:
          - name: hello
            trigger: {type: http, method: POST, endpoint: /hello}
          - name: on_orders
            trigger: {type: unity_table}
            table_name: not-a-table
        """,
        functions={"hello": FUNCTIONS["hello"], "on_orders": FUNCTIONS["on_orders"]},
    )
    write_test(strict.path / "test_x.py", "def test_x(lakefn):\n    pass\n")
    result = strict.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*lakefn fixture: 1 problem in app.yaml:*", "*app.yaml:7*"])


# -- which app.yaml --------------------------------------------------------------------------


def test_the_project_is_found_from_a_nested_test_folder(strict: pytest.Pytester) -> None:
    # Two projects under one rootdir: each test gets the nearest app.yaml above it.
    write_project(strict.path / "services" / "orders")
    write_project(
        strict.path / "services" / "billing",
        app_yaml="""
        functions:
          - name: invoice
            trigger: {type: http, method: POST, endpoint: /invoice}
        """,
        functions={"invoice": "def main(event):\n    return {'invoiced': True}\n"},
    )
    write_test(
        strict.path / "services" / "orders" / "tests" / "unit" / "deep" / "test_orders.py",
        """
        def test_orders(lakefn):
            assert lakefn.invoke("hello", {"name": "Ada"}) == {"message": "hello, Ada"}
        """,
    )
    write_test(
        strict.path / "services" / "billing" / "tests" / "test_billing.py",
        """
        def test_billing(lakefn):
            assert lakefn.invoke("invoice") == {"invoiced": True}
        """,
    )
    strict.runpytest().assert_outcomes(passed=2)


def test_no_app_yaml_is_a_clear_setup_error(strict: pytest.Pytester) -> None:
    write_test(strict.path / "tests" / "test_x.py", "def test_x(lakefn):\n    pass\n")
    result = strict.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*lakefn fixture: no app.yaml in *tests or any folder above it up to the rootdir*"]
    )
    result.stdout.fnmatch_lines(["*--lakefn-app PATH*lakefn_app = PATH*"])


def test_the_ini_setting_points_elsewhere(pytester: pytest.Pytester) -> None:
    write_project(pytester.path / "deploy" / "functions-app")
    pytester.makeini(STRICT_INI + "lakefn_app = deploy/functions-app\n")
    write_test(pytester.path / "tests" / "test_x.py", _HELLO_TEST)
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_option_points_elsewhere_and_wins_over_the_ini(strict: pytest.Pytester) -> None:
    write_project(strict.path / "elsewhere")
    write_project(
        strict.path / "decoy",
        functions={"decoy": "def main(event):\n    return 'wrong project'\n"},
        app_yaml="""
        functions:
          - name: decoy
            trigger: {type: http, method: GET, endpoint: /decoy}
        """,
    )
    strict.makeini(STRICT_INI + "lakefn_app = decoy\n")
    write_test(strict.path / "tests" / "test_x.py", _HELLO_TEST)
    strict.runpytest("--lakefn-app", "elsewhere/app.yaml").assert_outcomes(passed=1)
    result = strict.runpytest("--lakefn-app", "nowhere")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*lakefn fixture: *nowhere (from --lakefn-app) does not exist*"])
    result = strict.runpytest("--lakefn-app", "tests")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*lakefn fixture: *tests (from --lakefn-app) has no app.yaml*"])


def test_the_marker_picks_a_project_for_one_test(strict: pytest.Pytester) -> None:
    write_project(strict.path / "projects" / "main")
    write_test(
        strict.path / "tests" / "test_x.py",
        """
        import pytest

        @pytest.mark.lakefn_app("../projects/main")
        def test_x(lakefn):
            assert lakefn.invoke("hello") == {"message": "hello, world"}
        """,
    )
    strict.runpytest("--strict-markers").assert_outcomes(passed=1)


_HELLO_TEST = """
def test_hello(lakefn):
    assert lakefn.invoke("hello", {"name": "Ada"}) == {"message": "hello, Ada"}
"""


# -- table changes end to end ----------------------------------------------------------------


def test_table_changes_through_the_real_watcher_on_real_delta_tables(
    strict: pytest.Pytester,
) -> None:
    write_project(strict.path)
    write_test(
        strict.path / "tests" / "test_orders.py",
        """
        import time

        import pytest
        from lakefn.testing import FunctionFailed

        TABLE = "main.sales.orders"

        def test_new_versions_are_delivered_once(lakefn):
            assert lakefn.tables.create(TABLE, [{"id": 1}]) == 0
            assert lakefn.check("on_orders") is None  # start: latest records version 0
            assert lakefn.tables.append(TABLE, [{"id": 2}, {"id": 3}]) == 1
            assert lakefn.tables.overwrite(TABLE, [{"id": 9}]) == 2
            assert lakefn.check("on_orders") == {
                "versions": [1, 2], "operations": ["WRITE", "WRITE"], "ids": [2, 3, 9]
            }
            assert lakefn.check("on_orders") is None
            assert lakefn.tables.rows(TABLE) == [{"id": 9}]
            assert [c.version for c in lakefn.tables.history(TABLE)] == [0, 1, 2]

        def test_a_failed_delivery_comes_again(lakefn, monkeypatch):
            lakefn.tables.create(TABLE, [{"id": 1}])
            lakefn.check("on_orders")
            lakefn.tables.append(TABLE, [{"id": 2}])
            monkeypatch.setenv("ORDERS_FAIL", "1")
            with pytest.raises(FunctionFailed, match="orders are failing on purpose"):
                lakefn.check("on_orders")
            monkeypatch.delenv("ORDERS_FAIL")
            assert lakefn.check("on_orders")["versions"] == [1]
            assert [i.status for i in lakefn.journal] == ["error", "ok"]

        def test_the_background_watcher(lakefn):
            lakefn.tables.create(TABLE, [{"id": 1}])
            lakefn.start()
            deadline = time.monotonic() + 60
            while lakefn.runtime.watcher.states["on_orders"].last_processed is None:
                assert time.monotonic() < deadline, "the watcher never checked"
                time.sleep(0.02)
            lakefn.tables.append(TABLE, [{"id": 5}])
            invocation = lakefn.wait_for("on_orders")
            assert invocation.ok and invocation.result["ids"] == [5]

        def test_tables_are_private_to_the_test(lakefn):
            with pytest.raises(Exception, match="not found"):
                lakefn.tables.version(TABLE)

        def test_a_table_the_watcher_cannot_read_is_an_error(lakefn):
            with pytest.raises(Exception, match="on_orders: table main.sales.orders not found"):
                lakefn.check("on_orders")
        """,
    )
    strict.runpytest().assert_outcomes(passed=5)


def test_a_history_exported_from_databricks(strict: pytest.Pytester) -> None:
    write_project(strict.path)
    history = Path(__file__).parent / "data" / "dim_customer_history.csv"
    write_test(
        strict.path / "test_history.py",
        f"""
        def test_replay(lakefn):
            commits = lakefn.load_history("main.sales.orders", {str(history)!r})
            assert [c.version for c in commits] == [0, 1, 2, 3]
            assert lakefn.check("on_orders") is None  # starts at the latest recorded version
            lakefn.recorded.append_commit("main.sales.orders", "MERGE", rows=[{{"id": 7}}])
            assert lakefn.check("on_orders") == {{
                "versions": [4], "operations": ["MERGE"], "ids": [7]
            }}
        """,
    )
    strict.runpytest().assert_outcomes(passed=1)


# -- lakefn init -----------------------------------------------------------------------------


def test_an_initialized_project_passes_its_own_tests(pytester: pytest.Pytester) -> None:
    assert lakefn.cli.main(["init", str(pytester.path / "my-project")]) == 0
    # A fresh process, as the user's `pytest` would be: the fixture arrives by entry point only.
    # pytest-asyncio (a dev dependency here, not the user's) would warn about its settings.
    result = pytester.runpytest_subprocess("my-project", "-p", "no:asyncio", "-W", "error", "-v")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 3 and set(outcomes) <= {"passed"}, result.stdout.str()


# -- clean up ----------------------------------------------------------------------------------


def test_nothing_outlives_the_test(strict: pytest.Pytester) -> None:
    write_project(strict.path)
    write_test(
        strict.path / "test_x.py",
        """
        def test_everything(lakefn):
            lakefn.client.post("/hello", json={})
            lakefn.invoke("hello")
            lakefn.simulate_table_change("on_orders")
            lakefn.tables.create("main.sales.orders", [{"id": 1}])
            lakefn.check("on_orders")
            lakefn.start()
        """,
    )
    before = set(threading.enumerate())
    strict.runpytest().assert_outcomes(passed=1)
    deadline = time.monotonic() + 30  # threads end a moment after they are told to
    while left := [t.name for t in set(threading.enumerate()) - before if t.is_alive()]:
        assert time.monotonic() < deadline, f"threads left running: {left}"
        time.sleep(0.02)


def test_a_harness_whose_functions_do_not_load_leaves_nothing_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from lakefn import ConfigError
    from lakefn.checkpoints.sqlite import SQLiteCheckpointStore
    from lakefn.testing import LakefnHarness

    app = write_project(tmp_path / "proj", functions={**FUNCTIONS, "hello": "def main(event)\n"})
    opened: list[object] = []
    closed: list[object] = []
    real_init, real_close = SQLiteCheckpointStore.__init__, SQLiteCheckpointStore.close

    def init(self: SQLiteCheckpointStore, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(self)

    def close(self: SQLiteCheckpointStore) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(SQLiteCheckpointStore, "__init__", init)
    monkeypatch.setattr(SQLiteCheckpointStore, "close", close)
    monkeypatch.delenv("LAKEFN_STATE", raising=False)
    with pytest.raises(ConfigError, match="function 'hello'"):
        LakefnHarness(app, tmp_path / "work")
    # Whatever state file was opened before the functions failed to load is closed again
    # (Python 3.13 warns about a SQLite connection left to the garbage collector).
    assert closed == opened
    assert "LAKEFN_STATE" not in os.environ
