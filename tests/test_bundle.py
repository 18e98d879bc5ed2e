"""`lakefn bundle`: the Databricks Asset Bundle it writes (golden files for the sample project),
checked through databricks-bundles' typed models; reruns, --check, --no-wheel, the wheel."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from lakefn.jobs.wheel import build_wheel, wheel_name
from tests._serving import clean_env
from tests.conftest import REPO, run_cli

GOLDEN = Path(__file__).parent / "golden" / "sample_bundle"
WHEEL = wheel_name()

JOB_FUNCTIONS = """\
  - name: orders_etl
    description: Merge new orders into the rollup
    trigger: {type: unity_table, check_interval: 60, operations: [WRITE, MERGE]}
    table_name: main.sales.orders
    timeout: 600
    retry: {max_attempts: 2, backoff_seconds: 5}
    run_on: job
    job:
      min_time_between_triggers: 60
      wait_after_last_change: 120
      max_retries: 2
      tags: {team: sales}
      email_on_failure: [ops@example.com]
  - name: nightly_rollup
    trigger: {type: timer, schedule: "30 2 * * 1-5", timezone: Europe/Amsterdam}
    run_on: job
    job: {paused: true}
"""


def sample_project(root: Path) -> Path:
    """The repo's sample project (its app.yaml, app.py, functions, requirements) plus two
    functions that run_on: job."""
    root.mkdir(parents=True)
    for name in ("app.yaml", "app.py", "requirements.txt"):
        shutil.copy(REPO / name, root / name)
    shutil.copytree(REPO / "functions", root / "functions")
    with (root / "app.yaml").open("a") as app:
        app.write(JOB_FUNCTIONS)
    for name in ("orders_etl", "nightly_rollup"):
        (root / "functions" / f"{name}_function.py").write_text(
            "def main(event):\n    return None\n"
        )
    return root


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return sample_project(tmp_path / "sample")


def _bundle(project: Path, *args: str):
    return run_cli("bundle", "--app", str(project), "--name", "sample", *args, env=clean_env())


GOLDEN_FILES = [
    "databricks.yml",
    "resources/lakefn.yml",
    "app/requirements.txt",
    "jobs/lakefn_run.py",
]


def test_sample_bundle_matches_the_golden_files(sample: Path) -> None:
    result = _bundle(sample)
    assert result.returncode == 0, result.stderr
    out = sample / "bundle"
    if os.environ.get("LAKEFN_UPDATE_GOLDEN"):
        for name in GOLDEN_FILES:
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(out / name, GOLDEN / name)
    for name in GOLDEN_FILES:
        assert (out / name).read_text() == (GOLDEN / name).read_text(), name
    shipped = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert shipped == sorted(
        [
            *GOLDEN_FILES,
            "app/app.yaml",
            "app/app.py",
            f"app/{WHEEL}",
            *(f"app/functions/{p.name}" for p in (sample / "functions").iterdir()),
        ]
    )
    assert (out / "app" / "app.yaml").read_bytes() == (sample / "app.yaml").read_bytes()
    assert "deploy it: cd" in result.stdout
    assert "need a shared state" in result.stdout  # the sample's SQLite state, said plainly


def test_every_job_and_the_app_load_through_the_typed_models_unchanged(sample: Path) -> None:
    from databricks.bundles.apps import App
    from databricks.bundles.jobs import Job

    assert _bundle(sample).returncode == 0
    doc = yaml.safe_load((sample / "bundle" / "resources" / "lakefn.yml").read_text())
    resources = doc["resources"]
    assert set(resources["jobs"]) == {"lakefn_orders_etl", "lakefn_nightly_rollup"}
    for value in resources["jobs"].values():
        job = Job.from_dict(value)
        assert job.as_dict() == value
        assert job.max_concurrent_runs == 1 and job.queue.enabled  # type: ignore[union-attr]
    (app,) = resources["apps"].values()
    assert App.from_dict(app).as_dict() == app

    etl = Job.from_dict(resources["jobs"]["lakefn_orders_etl"])
    table = etl.trigger.table_update  # type: ignore[union-attr]
    assert table.table_names == ["main.sales.orders"]  # type: ignore[union-attr]
    assert table.condition.value == "ANY_UPDATED"  # type: ignore[union-attr]
    assert table.min_time_between_triggers_seconds == 60  # type: ignore[union-attr]
    assert table.wait_after_last_change_seconds == 120  # type: ignore[union-attr]
    (task,) = etl.tasks
    assert task.max_retries == 2
    assert task.timeout_seconds == 600 * 2 + 5 + 600  # two attempts, their backoff, margin
    assert task.spark_python_task.parameters == [  # type: ignore[union-attr]
        "run",
        "orders_etl",
        "--app",
        "${workspace.file_path}/app",
    ]
    nightly = Job.from_dict(resources["jobs"]["lakefn_nightly_rollup"])
    schedule = nightly.schedule
    assert schedule.quartz_cron_expression == "0 30 2 ? * MON-FRI"  # type: ignore[union-attr]
    assert schedule.timezone_id == "Europe/Amsterdam"  # type: ignore[union-attr]
    assert schedule.pause_status.value == "PAUSED"  # type: ignore[union-attr]
    assert nightly.tasks[0].spark_python_task.parameters[-2:] == [  # type: ignore[union-attr]
        "--scheduled-time",
        "{{job.trigger.time.iso_datetime}}",
    ]
    (env,) = etl.environments
    assert env.spec.dependencies[0] == f"../app/{WHEEL}"  # type: ignore[union-attr]


def test_rebuild_is_byte_identical_and_check_sees_changes(sample: Path) -> None:
    assert _bundle(sample).returncode == 0
    out = sample / "bundle"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    mtimes = {p: p.stat().st_mtime_ns for p in before}
    again = _bundle(sample)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert {p: p.stat().st_mtime_ns for p in before} == mtimes  # nothing rewritten
    assert _bundle(sample, "--check").returncode == 0

    app_yaml = sample / "app.yaml"
    app_yaml.write_text(app_yaml.read_text().replace('"30 2 * * 1-5"', '"45 3 * * 1-5"'))
    stale = _bundle(sample, "--check")
    assert stale.returncode == 1
    assert "resources/lakefn.yml differs" in stale.stderr and "app/app.yaml differs" in stale.stderr
    assert (out / "resources" / "lakefn.yml").read_bytes() == before[
        out / "resources" / "lakefn.yml"
    ]

    (sample / "functions" / "nightly_rollup_function.py").unlink()
    app_yaml.write_text(app_yaml.read_text().split("  - name: nightly_rollup")[0])
    (out / "databricks.yml").write_text("# mine now\n" + (out / "databricks.yml").read_text())
    rebuilt = _bundle(sample)
    assert rebuilt.returncode == 0
    assert "removed" in rebuilt.stdout and "nightly_rollup_function.py" in rebuilt.stdout
    assert not (out / "app" / "functions" / "nightly_rollup_function.py").exists()
    assert "lakefn_nightly_rollup" not in (out / "resources" / "lakefn.yml").read_text()
    assert (out / "databricks.yml").read_text().startswith("# mine now\n")  # never rewritten
    assert _bundle(sample, "--check").returncode == 0


def test_local_state_catalog_and_caches_never_ship(sample: Path) -> None:
    (sample / ".lakefn" / "catalog" / "main").mkdir(parents=True)
    (sample / ".lakefn" / "state.db").write_bytes(b"sqlite")
    (sample / "functions" / "__pycache__").mkdir()
    (sample / "functions" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (sample / "functions" / ".hidden").write_text("x")
    (sample / "functions" / "helpers").mkdir()
    (sample / "functions" / "helpers" / "util.py").write_text("X = 1\n")
    assert _bundle(sample).returncode == 0
    shipped = [p.relative_to(sample / "bundle").as_posix() for p in (sample / "bundle").rglob("*")]
    assert not [p for p in shipped if ".lakefn" in p or "__pycache__" in p or ".hidden" in p]
    assert "app/functions/helpers/util.py" in shipped  # the functions' own modules do ship
    with zipfile.ZipFile(sample / "bundle" / "app" / WHEEL) as wheel:
        assert not [n for n in wheel.namelist() if "__pycache__" in n or n.endswith(".pyc")]


def test_no_wheel_references_the_running_version_and_drops_a_shipped_wheel(sample: Path) -> None:
    assert _bundle(sample).returncode == 0
    result = _bundle(sample, "--no-wheel")
    assert result.returncode == 0
    out = sample / "bundle"
    assert not list(out.rglob("*.whl"))
    from lakefn.jobs.wheel import version

    requirements = (out / "app" / "requirements.txt").read_text().splitlines()
    assert f"lakefn[databricks]=={version()}" in requirements
    doc = yaml.safe_load((out / "resources" / "lakefn.yml").read_text())
    for job in doc["resources"]["jobs"].values():
        assert job["environments"][0]["spec"]["dependencies"] == [
            f"lakefn[databricks]=={version()}"
        ]


def test_the_projects_own_requirements_and_extras_are_kept(sample: Path) -> None:
    (sample / "requirements.txt").write_text(
        "# mine\nlakefn[databricks,notebook]>=0.1\npandas>=2  # for the rollup\n"
        "--extra-index-url https://example.com/simple\n"
    )
    result = _bundle(sample)
    assert result.returncode == 0
    lines = (sample / "bundle" / "app" / "requirements.txt").read_text().splitlines()
    body = [line for line in lines if not line.startswith("#")]
    assert body[0] == f"./{WHEEL}"
    assert {"ipython>=8", "ipywidgets>=7.7", "databricks-sdk>=0.57", "psycopg[binary]>=3.1"} <= set(
        body
    )
    assert body[-2:] == ["pandas>=2", "--extra-index-url https://example.com/simple"]
    assert not [line for line in body if line.startswith("lakefn")]
    doc = yaml.safe_load((sample / "bundle" / "resources" / "lakefn.yml").read_text())
    deps = doc["resources"]["jobs"]["lakefn_orders_etl"]["environments"][0]["spec"]["dependencies"]
    assert deps == [f"../app/{WHEEL}", *body[1:-1]]
    assert "a job's environment takes packages only" in result.stdout


def test_app_resources_follow_app_yaml(tmp_path: Path) -> None:
    project = tmp_path / "lake"
    (project / "functions").mkdir(parents=True)
    (project / "app.yaml").write_text(
        "env:\n"
        "  - {name: DATABRICKS_WAREHOUSE_ID, valueFrom: my-warehouse}\n"
        "  - {name: API_KEY, valueFrom: api-secret}\n"
        "state: lakebase\n"
        "functions:\n"
        "  - name: watch\n"
        "    trigger: {type: unity_table}\n"
        "    table_name: main.s.t\n"
        "    run_on: job\n"
    )
    (project / "functions" / "watch_function.py").write_text("def main(event):\n    pass\n")
    result = run_cli("bundle", "--app", str(project), env=clean_env())
    assert result.returncode == 0, result.stderr
    doc = yaml.safe_load((project / "bundle" / "resources" / "lakefn.yml").read_text())
    app = doc["resources"]["apps"]["lakefn_app"]
    assert app["name"] == "lake"
    assert app["resources"] == [
        {
            "name": "my-warehouse",
            "sql_warehouse": {"id": "${var.warehouse_id}", "permission": "CAN_USE"},
        },
        {
            "name": "database",
            "database": {
                "instance_name": "${var.database_instance}",
                "database_name": "${var.database_name}",
                "permission": "CAN_CONNECT_AND_CREATE",
            },
        },
    ]
    assert "'api-secret', which lakefn cannot describe" in result.stdout
    assert "need a shared state" not in result.stdout  # lakebase is shared
    # A job gets none of the App's PG* variables: it is told the instance the App uses.
    parameters = doc["resources"]["jobs"]["lakefn_watch"]["tasks"][0]["spark_python_task"]
    assert parameters["parameters"][-2:] == [
        "--state",
        "lakebase?instance=${var.database_instance}&database=${var.database_name}",
    ]
    assert "needs a Postgres role" in result.stdout
    databricks = yaml.safe_load((project / "bundle" / "databricks.yml").read_text())
    assert databricks["bundle"] == {"name": "lake"}
    assert databricks["include"] == ["resources/*.yml"]
    assert set(databricks["variables"]) == {"warehouse_id", "database_instance", "database_name"}
    assert set(databricks["targets"]) == {"dev", "prod"}


def test_a_schedule_quartz_cannot_say_is_refused_with_its_line(sample: Path) -> None:
    app_yaml = sample / "app.yaml"
    app_yaml.write_text(app_yaml.read_text().replace('"30 2 * * 1-5"', '"0 0 1 * MON"'))
    line = (
        app_yaml.read_text()
        .splitlines()
        .index('    trigger: {type: timer, schedule: "0 0 1 * MON", timezone: Europe/Amsterdam}')
    )
    result = _bundle(sample)
    assert result.returncode == 1
    assert f"{app_yaml}:{line + 1}: functions[4].trigger.schedule:" in result.stderr
    assert "matching EITHER" in result.stderr and "Traceback" not in result.stderr
    assert not (sample / "bundle").exists()


def test_the_wheel_is_lakefn_itself_and_reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    import lakefn

    name, data = build_wheel()
    assert name == WHEEL and build_wheel()[1] == data
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    package = Path(lakefn.__file__).parent
    assert "lakefn/jobs/bundle.py" in names and "lakefn/templates/project/app.yaml" in names
    assert archive.read("lakefn/cli.py") == (package / "cli.py").read_bytes()
    info = name.split("-py3")[0] + ".dist-info"
    assert "Requires-Dist: fastapi" in archive.read(f"{info}/METADATA").decode()
    assert "lakefn = lakefn.cli:main" in archive.read(f"{info}/entry_points.txt").decode()
    assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    for row in archive.read(f"{info}/RECORD").decode().splitlines():
        path, digest, size = row.split(",")
        if digest:
            content = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode() and int(size) == len(content)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    dated = zipfile.ZipFile(io.BytesIO(build_wheel()[1]))
    assert {i.date_time for i in dated.infolist()} == {(2023, 11, 14, 22, 13, 20)}


def test_check_on_a_bundle_never_built_writes_nothing_and_fails(sample: Path) -> None:
    result = _bundle(sample, "--check")
    assert result.returncode == 1
    assert "databricks.yml is missing" in result.stderr
    assert "resources/lakefn.yml is missing" in result.stderr
    assert not (sample / "bundle").exists()


def test_databricks_yml_declares_only_the_variables_used(tmp_path: Path) -> None:
    project = tmp_path / "ticks"
    (project / "functions").mkdir(parents=True)
    (project / "app.yaml").write_text(
        "functions:\n  - name: tick\n    trigger: {type: timer, schedule: '0 6 * * *'}\n    run_on: job\n"
    )
    (project / "functions" / "tick_function.py").write_text("def main(event):\n    pass\n")
    result = run_cli("bundle", "--app", str(project), env=clean_env())
    assert result.returncode == 0, result.stderr
    text = (project / "bundle" / "databricks.yml").read_text()
    assert "variables" not in yaml.safe_load(text) and "--var" not in text
    doc = yaml.safe_load((project / "bundle" / "resources" / "lakefn.yml").read_text())
    assert "resources" not in doc["resources"]["apps"]["lakefn_app"]
    assert "warning" not in result.stdout  # a timer job needs no shared state
