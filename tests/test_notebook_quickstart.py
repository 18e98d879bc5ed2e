"""notebooks/quickstart.ipynb, executed in a real kernel (nbclient), with and without
`nest_asyncio.apply()` run first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "notebooks" / "quickstart.ipynb"
KERNEL = "lakefn-test"


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec running this interpreter, found through a private JUPYTER_PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "lakefn test", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("LAKEFN_STATE", raising=False)
    monkeypatch.delenv("LAKEFN_LOCAL_ROOT", raising=False)
    return KERNEL


def execute(kernel: str, *, prelude: str | None = None) -> nbformat.NotebookNode:
    nb = nbformat.read(QUICKSTART, as_version=4)
    if prelude is not None:
        nb.cells.insert(0, nbformat.v4.new_code_cell(prelude))
    client = NotebookClient(
        nb,
        kernel_name=kernel,
        timeout=120,
        resources={"metadata": {"path": str(QUICKSTART.parent)}},
    )
    client.execute()
    return nb


def texts(cell: Any) -> str:
    """Everything a cell showed, as text and HTML."""
    out = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            out.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            out.extend(str(v) for v in output.data.values())
        elif output.output_type == "error":
            out.append("\n".join(output.traceback))
    return "\n".join(out)


def check(nb: nbformat.NotebookNode) -> None:
    code = [c for c in nb.cells if c.cell_type == "code"]
    shown = {c.source.strip().splitlines()[0]: texts(c) for c in code}
    assert "<b>lakefn</b> serving" in shown["%lakefn serve --port 0"]
    assert "<a href='http://127.0.0.1:" in shown["%lakefn serve --port 0"]
    assert "'hello': 'Grace'" in shown["import httpx"]
    assert '"hello": "Ada"' in shown["""%lakefn invoke example_http '{"name": "Ada"}'"""]
    assert "greeting Ada" in shown["""%lakefn invoke example_http '{"name": "Ada"}'"""]
    assert "scheduled_task [timer] ok" in shown["%lakefn invoke scheduled_task"]
    assert '"MERGE"' in shown["%lakefn simulate unity_monitor --operation MERGE"]
    assert "unity_table simulated] ok" in shown["from lakefn.sources.local import append"]
    assert "reloaded example_http" in shown["%%lakefn function example_http"]
    assert (
        "'hello': 'ADA', 'edited': True"
        in shown["""httpx.post(server.local_url + "run-example", json={"name": "Ada"}).json()"""]
    )
    assert "application/vnd.jupyter.widget-view+json" in json.dumps(
        [o for c in code if c.source == "%lakefn panel" for o in c.outputs]
    )
    assert "example_http [http] ok" in shown["%lakefn logs -n 5"]
    assert "not serving" in shown["%lakefn stop"]
    for cell in code:
        assert not any(o.output_type == "error" for o in cell.outputs), texts(cell)
        assert "Traceback" not in texts(cell), texts(cell)


def test_quickstart_runs(kernel: str) -> None:
    check(execute(kernel))
    assert not _repo_changed()


def test_quickstart_runs_after_nest_asyncio_apply(kernel: str) -> None:
    nb = execute(kernel, prelude="import nest_asyncio\nnest_asyncio.apply()")
    check(nb)


def _repo_changed() -> bool:
    """The notebook edits a copy of the project, never the repository's functions."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--", "functions", "app.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return bool(result.stdout.strip())
