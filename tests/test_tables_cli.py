"""`lakefn tables ...` and `lakefn simulate` in real subprocesses, on real local Delta tables."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lakefn.checkpoints.sqlite import SQLiteCheckpointStore
from lakefn.sources.local import append, create_table, path_for
from tests._serving import clean_env
from tests.conftest import ProjectDir, run_cli

TABLE = "main.sales.orders"

APP = f"""\
tables: {{local_root: catalog, source: local}}
state: state.db
functions:
  - name: watch
    trigger: {{type: unity_table, check_interval: 5}}
    table_name: {TABLE}
  - name: hello
    trigger: {{type: http, method: GET, endpoint: /hello}}
"""

#: what a user checks in a simulated event, returned so the CLI prints it
SHOW = """\
def main(event):
    return {
        "simulated": event.simulated,
        "previous": event.previous_version,
        "commits": [[c.version, c.operation] for c in event.commits],
        "rows": [{k: r[k] for k in ("id", "_change_type", "_commit_version")}
                 for r in event.changes().to_pylist()],
    }
"""


@pytest.fixture
def proj(project: ProjectDir) -> ProjectDir:
    project.config(APP)
    project.function("watch", SHOW)
    project.function("hello", "def main(event):\n    return 'hi'\n")
    return project


def cli(proj: ProjectDir, *args: str) -> tuple[int, str, str]:
    done = run_cli(*args, cwd=proj.root, env=clean_env())
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def read(proj: ProjectDir, name: str = TABLE) -> list[dict[str, object]]:
    table = DeltaTable(str(path_for(proj.root / "catalog", name))).to_pyarrow_table()
    return sorted(table.to_pylist(), key=lambda row: sorted(row.items()))


def test_create_append_overwrite_history_and_list(proj: ProjectDir) -> None:
    code, out, _ = cli(proj, "tables", "create", TABLE, "--rows", '[{"id": 1, "item": "tea"}]')
    assert code == 0 and out.strip().endswith("(version 0)")
    assert f"{proj.root / 'catalog' / 'main' / 'sales' / 'orders'}" in out
    rows = proj.file("more.json", '[{"id": 2, "item": "rice"}, {"id": 3, "item": "salt"}]')
    assert (
        cli(proj, "tables", "append", TABLE, "--rows", f"@{rows}")[1].strip()
        == f"{TABLE}: version 1"
    )
    assert len(read(proj)) == 3
    code, out, _ = cli(
        proj, "tables", "append", TABLE, "--overwrite", "--rows", '[{"id": 9, "item": "x"}]'
    )
    assert code == 0 and out.strip() == f"{TABLE}: version 2"
    assert read(proj) == [{"id": 9, "item": "x"}]
    # The change data feed is on, so table functions can read the rows that changed.
    cdf = DeltaTable(str(path_for(proj.root / "catalog", TABLE))).load_cdf(starting_version=1)
    assert "_change_type" in pa.table(cdf).column_names

    code, out, _ = cli(proj, "tables", "history", TABLE, "-n", "2")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].split()[0] == "2" and lines[1].split()[0] == "1"  # newest first
    assert all(" WRITE " in line for line in lines) and '"num_added_rows": 2' in lines[1]

    cli(proj, "tables", "create", "main.`odd.schema`.t", "--sample")
    code, out, _ = cli(proj, "tables", "list")
    assert out.splitlines() == ["main.`odd.schema`.t", TABLE]  # names a user can paste back


def test_create_from_a_sample_and_from_csv_json_and_parquet_files(
    proj: ProjectDir, tmp_path: Path
) -> None:
    code, out, _ = cli(proj, "tables", "create", "_data.tpch.dim_customer", "--sample")
    sample = read(proj, "_data.tpch.dim_customer")
    assert code == 0 and len(sample) == 5 and {"c_custkey", "c_name"} <= set(sample[0])
    # --if-not-exists makes the command safe to put in a start script.
    code, out, _ = cli(
        proj, "tables", "create", "_data.tpch.dim_customer", "--sample", "--if-not-exists"
    )
    assert code == 0 and "exists" in out and len(read(proj, "_data.tpch.dim_customer")) == 5

    csv = proj.file("rows.csv", "id,item\n1,tea\n2,rice\n")
    json_rows = proj.file("rows.json", '[{"id": 1, "item": "tea"}]')
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": [7], "item": ["salt"]}), parquet)
    for name, path in (
        ("main.f.csv_t", csv),
        ("main.f.json_t", json_rows),
        ("main.f.pq_t", parquet),
    ):
        code, _, err = cli(proj, "tables", "create", name, "--file", str(path))
        assert code == 0, err
    assert read(proj, "main.f.csv_t") == [{"id": 1, "item": "tea"}, {"id": 2, "item": "rice"}]
    assert read(proj, "main.f.pq_t") == [{"id": 7, "item": "salt"}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tables", "append", TABLE, "--rows", "{oops"], "--rows is not valid JSON"),
        (
            ["tables", "append", TABLE, "--rows", '{"id": 1}'],
            "--rows must be a non-empty JSON list",
        ),
        (
            ["tables", "append", "main.sales.nope", "--rows", '[{"id": 1}]'],
            "table main.sales.nope not found",
        ),
        (["tables", "create", TABLE, "--sample"], f"table {TABLE} already exists"),
        (["tables", "create", "main.sales.new"], "give the table's first rows with --rows"),
        (
            ["tables", "create", "main.sales.new", "--file", "nope.csv"],
            "--file nope.csv: no such file",
        ),
        (["tables", "history", "main.sales"], "is not a Unity table name (2 parts)"),
        (
            ["tables", "create", "main.sales.t; DROP TABLE x", "--sample"],
            "is not a Unity table name",
        ),
        (["tables", "create", "main.sales.`t", "--sample"], "unterminated backtick"),
        (["tables", "append", "main.sales.t`x", "--rows", "[]"], "is not a Unity table name"),
        (["tables", "create", "main.`..`.t", "--sample"], "cannot be a folder name"),
        (["simulate", "nope"], "no function named 'nope'"),
        (["simulate", "watch", "--rows", '{"id": 1}'], "--rows must be a JSON list of objects"),
    ],
)
def test_mistakes_get_a_clear_error_and_touch_nothing(
    proj: ProjectDir, args: list[str], message: str
) -> None:
    create_table(proj.root / "catalog", TABLE, [{"id": 1}])
    code, _, err = cli(proj, *args)
    assert code != 0 and message in err
    assert read(proj) == [{"id": 1}]
    found = sorted(p.parent.name for p in (proj.root / "catalog").glob("*/*/*/_delta_log"))
    assert found == ["orders"]


def test_without_an_app_yaml_tables_live_under_lakefn_local_root(tmp_path: Path) -> None:
    root = tmp_path / "elsewhere"
    done = run_cli(
        "tables",
        "create",
        "a.b.c",
        "--sample",
        cwd=tmp_path,
        env=clean_env(LAKEFN_LOCAL_ROOT=str(root)),
    )
    assert done.returncode == 0, done.stderr
    assert (root / "a" / "b" / "c" / "_delta_log").is_dir()


def test_simulate_a_merge_with_rows_and_replay_real_history(proj: ProjectDir) -> None:
    catalog = proj.root / "catalog"
    create_table(catalog, TABLE, [{"id": 1}])
    append(catalog, TABLE, [{"id": 2}])
    append(catalog, TABLE, [{"id": 3}])

    code, out, err = cli(
        proj, "simulate", "watch", "--operation", "MERGE", "--rows", '[{"id": 42}]'
    )
    assert code == 0, err
    assert json.loads(out) == {
        "simulated": True,
        "previous": 2,
        "commits": [[3, "MERGE"]],
        "rows": [{"id": 42, "_change_type": "insert", "_commit_version": 3}],
    }

    code, out, err = cli(proj, "simulate", "watch", "--replay-from", "1")
    assert code == 0, err
    assert json.loads(out) == {
        "simulated": True,
        "previous": 0,
        "commits": [[1, "WRITE"], [2, "WRITE"]],
        "rows": [
            {"id": 2, "_change_type": "insert", "_commit_version": 1},
            {"id": 3, "_change_type": "insert", "_commit_version": 2},
        ],
    }
    # Neither moved a checkpoint: the watcher will still start from where it would have.
    state = proj.root / "state.db"
    if state.exists():
        store = SQLiteCheckpointStore(state)
        try:
            assert store.items() == {}
        finally:
            store.close()

    code, _, err = cli(proj, "simulate", "watch", "--replay-from", "7")
    assert code == 1 and "has no versions from 7 on to replay" in err
