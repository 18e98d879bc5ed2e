"""`run_on: job` in app.yaml: what is accepted and refused (with lines), and that the server
lists such functions but leaves scheduling and watching them to their jobs."""

from __future__ import annotations

import json

import pytest

from lakefn import ConfigError
from lakefn.config import parse_config
from tests._serving import clean_env
from tests.conftest import run_cli

GOOD = """\
functions:
  - name: orders_etl
    trigger: {type: unity_table, check_interval: 60, operations: [WRITE, MERGE]}
    table_name: main.sales.orders
    run_on: job
    job:
      min_time_between_triggers: 60
      wait_after_last_change: 120
      max_retries: 2
      paused: true
      tags: {team: sales}
      email_on_failure: [ops@example.com]
  - name: nightly_rollup
    trigger: {type: timer, schedule: "30 2 * * 1-5", timezone: Europe/Amsterdam}
    run_on: job
  - name: hello
    trigger: {type: http, endpoint: /hello}
"""


def test_run_on_and_job_settings_load() -> None:
    config = parse_config(GOOD)
    etl, nightly, hello = config.functions
    assert (etl.run_on, nightly.run_on, hello.run_on) == ("job", "job", "app")
    assert etl.job is not None and etl.job.min_time_between_triggers == 60
    assert etl.job.wait_after_last_change == 120 and etl.job.max_retries == 2
    assert etl.job.paused and etl.job.tags == {"team": "sales"}
    assert nightly.job is None and hello.job is None


@pytest.mark.parametrize(
    ("snippet", "line", "field", "message"),
    [
        (
            "  - name: f\n    trigger: {type: http, endpoint: /f}\n    run_on: job\n",
            4,
            "functions[0].run_on",
            "an http function cannot run_on: job (a job has no endpoint to call); run_on: job is "
            "for timer and unity_table functions",
        ),
        (
            "  - name: f\n    trigger: {type: timer, schedule: '* * * * *'}\n    job: {max_retries: 1}\n",
            4,
            "functions[0].job",
            "`job:` settings apply only to a function with run_on: job",
        ),
        (
            "  - name: f\n    trigger: {type: unity_table}\n    table_name: a.b.c\n    run_on: job\n"
            "    job:\n      min_time_between_triggers: 30\n",
            7,
            "functions[0].job.min_time_between_triggers",
            "min_time_between_triggers is 30 s; Databricks Jobs needs at least 60 seconds",
        ),
        (
            "  - name: f\n    trigger: {type: unity_table}\n    table_name: a.b.c\n    run_on: job\n"
            "    job: {wait_after_last_change: 59}\n",
            6,
            "functions[0].job.wait_after_last_change",
            "needs at least 60 seconds",
        ),
        (
            "  - name: f\n    trigger: {type: timer, schedule: '* * * * *'}\n    run_on: job\n"
            "    job: {wait_after_last_change: 120}\n",
            5,
            "functions[0].job",
            "are for unity_table functions",
        ),
        (
            "  - name: f\n    trigger: {type: timer, schedule: '* * * * *'}\n    run_on: cluster\n",
            4,
            "functions[0].run_on",
            "'app' or 'job'",
        ),
        (
            "  - name: f\n    trigger: {type: timer, schedule: '* * * * *'}\n    run_on: job\n"
            "    job: {max_retries: -1}\n",
            5,
            "functions[0].job.max_retries",
            "greater than or equal to 0",
        ),
        (
            "  - name: f\n    trigger: {type: timer, schedule: '* * * * *'}\n    run_on: job\n"
            "    job: {cluster: big}\n",
            5,
            "functions[0].job.cluster",
            "unknown field",
        ),
    ],
)
def test_bad_run_on_settings_are_refused_with_their_line(
    snippet: str, line: int, field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("functions:\n" + snippet)
    (issue,) = caught.value.issues
    assert (issue.line, issue.field) == (line, field)
    assert message in issue.message


APP = """\
functions:
  - name: job_tick
    trigger: {type: timer, schedule: "* * * * *"}
    run_on: job
  - name: app_tick
    trigger: {type: timer, schedule: "* * * * *"}
  - name: job_table
    trigger: {type: unity_table, check_interval: 60}
    table_name: main.sales.orders
    run_on: job
  - name: app_table
    trigger: {type: unity_table, check_interval: 60}
    table_name: main.sales.orders
"""


@pytest.fixture
def proj(project):
    project.config(APP)
    for name in ("job_tick", "app_tick", "job_table", "app_table"):
        project.function(name, f"def main(event):\n    return {name!r}\n")
    return project


def test_the_server_lists_job_functions_but_neither_schedules_nor_watches_them(proj, serve) -> None:
    server = serve(proj)
    runtime = server.runtime
    assert set(runtime.timers.next_run_times()) == {"app_tick"}
    watched = {task.get_name() for task in runtime.watcher._tasks}
    assert watched == {"lakefn-watch-app_table"}
    listed = {f["name"]: f["run_on"] for f in server.client.get("/lakefn/functions").json()}
    assert listed == {"job_tick": "job", "app_tick": "app", "job_table": "job", "app_table": "app"}
    # By hand they still run: invoke a job timer, simulate a job table function.
    fired = server.client.post("/lakefn/functions/job_tick/invoke", json=None)
    assert fired.status_code == 200 and fired.json()["result"] == "job_tick"
    simulated = runtime.invoke_sync("job_table", {"operation": "MERGE"})
    assert simulated.ok and simulated.result == "job_table"


def test_lakefn_functions_shows_run_on(proj) -> None:
    env = clean_env()
    text = run_cli("functions", "--app", str(proj.root), env=env)
    assert text.returncode == 0
    rows = {line.split()[0]: line for line in text.stdout.splitlines()}
    assert rows["job_tick"].endswith("* * * * * (UTC)  (run_on: job)")
    assert rows["job_table"].endswith("main.sales.orders every 60 s  (run_on: job)")
    assert "run_on" not in rows["app_tick"] + rows["app_table"]
    listed = json.loads(run_cli("functions", "--json", "--app", str(proj.root), env=env).stdout)
    assert {r["name"]: r["run_on"] for r in listed}["job_table"] == "job"
