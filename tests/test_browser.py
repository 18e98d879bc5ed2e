"""The panel in a real browser: JupyterLab on 127.0.0.1, driven by Playwright with Debian's
Chromium. Runs every cell, clicks the panel's Run button, and sees the invocation in the log."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import nbformat
import pytest

from .test_notebook_magics import copy_sample

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
logger = logging.getLogger(__name__)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def panel_notebook(root: Path) -> Path:
    """A notebook in `root` (a copy of the sample project) that serves it and shows the panel."""
    cells = [
        nbformat.v4.new_code_cell(
            "import os\n"
            f"os.environ['LAKEFN_STATE'] = {str(root / 'state.db')!r}\n"
            f"os.environ['LAKEFN_LOCAL_ROOT'] = {str(root / 'catalog')!r}\n"
            "from lakefn import TableError\n"
            "from lakefn.sources.local import create_table\n"
            "try:  # safe to run again\n"
            "    create_table(os.environ['LAKEFN_LOCAL_ROOT'], '_data.tpch.dim_customer',\n"
            "                 [{'c_custkey': 1, 'c_name': 'Customer#1'}])\n"
            "except TableError:\n"
            "    pass"
        ),
        nbformat.v4.new_code_cell("%load_ext lakefn\n%lakefn load app.yaml"),
        nbformat.v4.new_code_cell("%lakefn serve --port 0"),
        nbformat.v4.new_code_cell("%lakefn panel"),
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = root / "panel.ipynb"
    nbformat.write(nb, path)
    return path


def lab_settings(directory: Path) -> None:
    """Start the notebook's kernel without asking (JupyterLab's "Select Kernel" dialog can
    otherwise come up late and swallow the Run All), and never ask about news."""
    settings = {
        "notebook-extension/tracker": {"autoStartDefaultKernel": True},
        "apputils-extension/notification": {"fetchNews": "false"},
    }
    for name, values in settings.items():
        path = directory / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def jupyterlab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab serving a copy of the sample project; yields the notebook's URL."""
    root = tmp_path / "root"
    copy_sample(root)
    panel_notebook(root)
    port, token = free_port(), secrets.token_hex(16)
    home = tmp_path / "jupyter"
    env = {
        **os.environ,
        # Settings, workspaces and runtime files stay in the test's folder.
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    lab_settings(home / "settings")
    env.pop("LAKEFN_STATE", None)
    env.pop("LAKEFN_LOCAL_ROOT", None)
    log = (tmp_path / "jupyterlab.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            "--ServerApp.open_browser=False",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.allow_root=True",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base, token, process, tmp_path / "jupyterlab.log")
        _start_kernel(base, token, home / "runtime")
        yield f"{base}/lab/tree/panel.ipynb?token={token}"
    finally:
        # The REST shutdown stops the kernels too (and with them lakefn's server).
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{base}/api/shutdown", headers={"Authorization": f"token {token}"})
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait(10)
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "jupyterlab.log", ARTIFACTS / "jupyterlab.log")


def _wait_for(base: str, token: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited:\n{log.read_text()}")
        try:
            reply = httpx.get(f"{base}/api/status", headers={"Authorization": f"token {token}"})
            if reply.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"JupyterLab did not start:\n{log.read_text()}")


def wait_until_ready(page: Page) -> None:
    """The notebook shows its cells and its kernel is idle."""
    from playwright.sync_api import expect

    expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible(timeout=60_000)
    indicator = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")
    expect(indicator).to_have_count(1, timeout=60_000)


def open_notebook(page: Page, url: str, attempts: int = 3) -> None:
    """Load the notebook until JupyterLab shows it with its kernel idle. Only this, the
    harness's own part (a browser connecting to a local JupyterLab), is retried, and every
    retry is logged; what lakefn does once the cells run is never retried."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(1, attempts + 1):
        try:
            if attempt == 1:
                page.goto(url)
            else:
                page.reload()
            wait_until_ready(page)
            return
        except (AssertionError, PlaywrightError) as exc:
            if attempt == attempts:
                raise
            _log_retry(f"the notebook page did not come up (attempt {attempt}): {exc}")


def _log_retry(message: str) -> None:
    """A retry is a fact about this machine worth keeping: in the test's log and in a file."""
    logger.warning("browser harness retry: %s", message)
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "browser_retries.log").open("a") as out:
        out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")


def run_all_cells(page: Page, attempts: int = 3) -> None:
    """Run > Run All Cells until every cell has run (its prompt shows a count) or one failed.

    JupyterLab can drop a click before any cell starts, or drop the cells queued behind the
    first while it settles its kernel connection (the first shows [1], the rest stay [ ], the
    kernel idle, no output anywhere): lakefn ran none of those cells, so that is the harness's
    flakiness, retried and logged (the cells are safe to run again). A cell that ran and
    failed shows its error, and that is never retried: the test then fails on what it shows."""
    from playwright.sync_api import expect

    cells = page.locator(".jp-Notebook .jp-CodeCell")
    prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    errors = page.locator(".jp-Notebook .jp-OutputArea-output[data-mime-type*='error']")
    idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")

    def shown() -> list[str]:
        return [prompts.nth(i).inner_text() for i in range(cells.count())]

    def finished(texts: list[str]) -> bool:
        # every cell ran, or one failed: the test judges what they show
        return all(re.search(r"\[\d+\]", t) for t in texts) or errors.count() > 0

    def stalled(texts: list[str]) -> bool:
        return idle.count() > 0 and not any("*" in t for t in texts)

    for attempt in range(1, attempts + 1):
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            expect(prompts.first).to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=20_000)
        except AssertionError:
            if attempt == attempts:
                raise
            _log_retry(f"Run All Cells started no cell (attempt {attempt})")
            continue
        deadline = time.monotonic() + 60
        texts = shown()
        while time.monotonic() < deadline and not finished(texts):
            if stalled(texts):
                page.wait_for_timeout(1_000)  # a queued cell may be just about to start
                texts = shown()
                if not finished(texts) and stalled(texts):
                    break  # idle, no error, cells never run: JupyterLab dropped them
            page.wait_for_timeout(200)
            texts = shown()
        if finished(texts):
            return
        if attempt == attempts:
            return  # the test's own assertions say what is missing
        _log_retry(f"Run All Cells ran only some cells (attempt {attempt}): {texts}")


def _start_kernel(base: str, token: str, runtime_dir: Path) -> None:
    """Start the notebook's kernel, and wait until it answers, before the browser opens it. A
    browser that connects while the kernel is still starting can hit a jupyter_server race (a
    500 on the channels websocket, then a reconnect) after which widgets fail with "model not
    found"."""
    from jupyter_client import BlockingKernelClient

    headers = {"Authorization": f"token {token}"}
    reply = httpx.post(
        f"{base}/api/sessions",
        headers=headers,
        json={"path": "panel.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
        timeout=60,
    )
    reply.raise_for_status()
    # Without a browser the server reports "starting" until one connects, so ask the kernel
    # itself: a kernel_info reply on its own connection file means its sockets are up.
    connection = runtime_dir / f"kernel-{reply.json()['kernel']['id']}.json"
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
    finally:
        client.stop_channels()


def test_panel_run_button_shows_the_invocation_in_the_log(jupyterlab: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_notebook(page, jupyterlab)
            run_all_cells(page)
            run = page.locator(".lakefn-function-example_http .lakefn-run")
            expect(run).to_be_visible(timeout=60_000)
            status = page.locator(".lakefn-panel .lakefn-status")
            expect(status).to_contain_text("serving", timeout=30_000)
            log = page.locator(".lakefn-panel .lakefn-log")
            expect(log).to_contain_text("no invocations yet")

            run.click()
            expect(log).to_contain_text("example_http [http] ok", timeout=30_000)
            expect(log).to_contain_text("greeting world")
            outcome = page.locator(".lakefn-function-example_http .lakefn-outcome")
            expect(outcome).to_contain_text('"hello": "world"')

            operation = page.locator(".lakefn-function-unity_monitor select")
            operation.select_option("MERGE")
            page.locator(".lakefn-function-unity_monitor .lakefn-simulate").click()
            expect(log).to_contain_text("unity_monitor [unity_table simulated] ok", timeout=30_000)
            expect(log).to_contain_text("v1: MERGE")

            news = page.get_by_role("button", name="No", exact=True)
            if news.count():  # JupyterLab's "official Jupyter news?" toast hides the panel
                news.first.click()
            page.locator(".lakefn-panel").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser_panel.png"), full_page=True)
            page.locator(".lakefn-panel").screenshot(path=str(ARTIFACTS / "browser_panel_only.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
