"""Acceptance for the self-contained bundle: a fresh virtualenv installs the App folder's
requirements.txt as Databricks Apps does (pip, from the App folder, lakefn from the wheel beside
it), then `lakefn validate` and `lakefn serve` work there; the jobs' dependency list is the same
list, and the job's runner script runs `lakefn run` in that environment. Slow: one pip install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from lakefn.jobs.wheel import wheel_name
from tests.conftest import free_port, run_cli, wait_http
from tests.test_bundle import sample_project


@pytest.mark.timeout(300)  # one pip install: about a minute, more on a loaded machine
def test_bundle_installs_and_serves_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    project = sample_project(tmp_path / "sample")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "LAKEFN_"))}
    built = run_cli("bundle", "--app", str(project), env=env)
    assert built.returncode == 0, built.stderr
    app = project / "bundle" / "app"

    # What the venv runs must be the wheel's lakefn, never this checkout's.
    clean = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-r", "requirements.txt"],
        cwd=app,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import lakefn; print(lakefn.__file__)"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(venv)), where

    lakefn = str(venv / "bin" / "lakefn")
    validate = subprocess.run(
        [lakefn, "validate"], cwd=app, env=clean, capture_output=True, text=True
    )
    assert validate.returncode == 0, validate.stderr
    assert "ok (5 functions: 1 http, 2 timer, 2 unity_table)" in validate.stdout

    # lakefn installed from the wheel makes the same bundle again, the wheel byte for byte.
    again = subprocess.run(
        [lakefn, "bundle", "--app", str(project), "--out", str(tmp_path / "again")],
        env=clean,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    for name in (wheel_name(), "requirements.txt"):
        assert (tmp_path / "again" / "app" / name).read_bytes() == (app / name).read_bytes()

    port = free_port()
    server = subprocess.Popen(
        [lakefn, "serve", "--port", str(port)],
        cwd=app,
        env=clean,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        assert health.status_code == 200
        listed = httpx.get(f"http://127.0.0.1:{port}/lakefn/functions", timeout=10).json()
        assert {f["name"]: f["run_on"] for f in listed}["orders_etl"] == "job"
    finally:
        server.terminate()
        server.communicate(timeout=30)

    # The jobs' environment: the same requirements (wheel path seen from resources/), so the
    # venv above is a job's environment too; its task script runs there.
    requirements = [
        line
        for line in (app / "requirements.txt").read_text().splitlines()
        if line and line[0] != "#"
    ]
    doc = yaml.safe_load((project / "bundle" / "resources" / "lakefn.yml").read_text())
    for job in doc["resources"]["jobs"].values():
        deps = job["environments"][0]["spec"]["dependencies"]
        assert deps == [f"../app/{wheel_name()}", *requirements[1:]]
        assert requirements[0] == f"./{wheel_name()}"
    task = doc["resources"]["jobs"]["lakefn_nightly_rollup"]["tasks"][0]["spark_python_task"]
    args = [
        a.replace("${workspace.file_path}", str(project / "bundle")) for a in task["parameters"]
    ]
    args = [
        a.replace("{{job.trigger.time.iso_datetime}}", "2026-03-02T01:30:00.000Z") for a in args
    ]
    script = (project / "bundle" / "resources" / task["python_file"]).resolve()
    ran = subprocess.run(
        [str(venv / "bin" / "python"), str(script), *args, "--json"],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["function"] == "nightly_rollup" and report["outcome"] == "ok"
    assert report["scheduled_time"] == "2026-03-02T01:30:00+00:00"
