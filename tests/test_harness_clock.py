"""The harness's `FakeClock` is the only time its project sees: table leases expire on it too, so
a test moves one clock to see a lease held by a crashed server run out."""

from __future__ import annotations

from pathlib import Path

from lakefn.testing import LakefnHarness

APP_YAML = """\
functions:
  - name: on_orders
    trigger: {type: unity_table, check_interval: 5, start: earliest}
    table_name: main.sales.orders
"""


def _project(root: Path) -> Path:
    (root / "functions").mkdir(parents=True)
    (root / "app.yaml").write_text(APP_YAML)
    (root / "functions" / "on_orders_function.py").write_text(
        "def main(event):\n    return [c.version for c in event.commits]\n"
    )
    return root / "app.yaml"


def test_a_lease_held_elsewhere_runs_out_when_the_test_moves_its_clock(tmp_path: Path) -> None:
    with LakefnHarness(_project(tmp_path / "project"), tmp_path / "work") as lakefn:
        lakefn.tables.create("main.sales.orders", [{"id": 1}])
        key = lakefn.runtime.watcher.states["on_orders"].key
        # Another server (alive, on another host) holds the table's lease for 60 s.
        assert lakefn.runtime.checkpoints.acquire(key, "elsewhere:1:abc", 60)
        assert lakefn.check("on_orders") is None  # not ours to deliver
        lakefn.clock.advance(seconds=59)
        assert lakefn.check("on_orders") is None
        lakefn.clock.advance(seconds=2)  # its lease ran out: this process takes over
        assert lakefn.check("on_orders") == [0]
