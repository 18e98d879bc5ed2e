"""The `lakefn` pytest fixture tells a table dropped and created again by its identity, as a
served project does: a user's test of that case sees what production would do.

Run through `pytester` over a small project, like tests/test_pytest_plugin.py (whose note on
in-process runs and native extensions applies here: importing it imports them first).
"""

from __future__ import annotations

import pytest

from tests.test_pytest_plugin import strict, write_project, write_test  # noqa: F401

pytest_plugins = ["pytester"]

APP_YAML = """
functions:
  - name: on_orders
    trigger: {type: unity_table, check_interval: 0.05, start: earliest}
    table_name: main.sales.orders
"""

ON_ORDERS = """
    def main(event):
        return [c.version for c in event.commits]
"""


def test_a_table_created_again_past_the_checkpoint_is_delivered_from_version_0(
    strict: pytest.Pytester,  # noqa: F811
) -> None:
    write_project(strict.path, APP_YAML, {"on_orders": ON_ORDERS})
    write_test(
        strict.path / "tests" / "test_orders.py",
        """
        import shutil

        TABLE = "main.sales.orders"

        def test_recreated(lakefn):
            lakefn.tables.create(TABLE, [{"id": 1}])
            lakefn.tables.append(TABLE, [{"id": 2}])
            assert lakefn.check("on_orders") == [0, 1]
            shutil.rmtree(lakefn.tables.path(TABLE))  # DROP TABLE
            lakefn.tables.create(TABLE, [{"id": 10}])  # CREATE TABLE, then three writes
            for i in range(11, 14):
                lakefn.tables.append(TABLE, [{"id": i}])
            # Versions went on past the checkpoint (1): only the table's new id tells.
            assert lakefn.check("on_orders") == [0, 1, 2, 3]
            [status] = lakefn.runtime.watcher.status()
            [recreated] = status["recreated"]
            assert recreated["versions"] == {"was": 1, "now": 3}
            assert recreated["table_ids"]["was"] != recreated["table_ids"]["now"]
        """,
    )
    strict.runpytest().assert_outcomes(passed=1)
