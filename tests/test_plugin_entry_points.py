"""A trigger kind an installed package offers (a `lakefn.plugins` entry point) is known to every
lakefn process, not only to the one that called `register`: the CLI validates, lists and runs
it by hand in a subprocess that never imported the package itself."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests._serving import clean_env
from tests.conftest import run_cli

PLUGIN = """
from typing import Any, ClassVar, Literal

from lakefn import triggers
from lakefn._model import ConfigModel
from lakefn.abc import TriggerKind
from lakefn.events import Event


class EveryTrigger(ConfigModel):
    type: Literal["every"]
    seconds: int


class EveryKind(TriggerKind):
    type: ClassVar[str] = "every"
    config_model = EveryTrigger

    @classmethod
    def summary(cls, function: Any) -> str:
        return f"every {function.trigger.seconds} s"

    async def run_by_hand(self, name: str, payload: Any = None) -> Any:
        self.config_of(name)
        return await self.context.invoker.invoke(name, lambda: Event(function_name=name))


def register() -> None:
    triggers.register(EveryKind)
"""


def _install(site: Path, entry: str, module: str) -> None:
    """An installed distribution, as pip leaves one: its module and its dist-info."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "lakefn_every.py").write_text(module)
    info = site / "lakefn_every-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lakefn-every\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[lakefn.plugins]\nevery = {entry}\n")


@pytest.fixture
def every_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "functions").mkdir(parents=True)
    (root / "app.yaml").write_text(
        "functions:\n  - name: beat\n    trigger: {type: every, seconds: 5}\n"
    )
    (root / "functions" / "beat_function.py").write_text(
        textwrap.dedent("""
        def main(event):
            return {"beat": event.function_name}
        """)
    )
    return root


def test_an_installed_kind_is_validated_listed_and_run_by_the_cli(
    tmp_path: Path, every_project: Path
) -> None:
    _install(tmp_path / "site", "lakefn_every:register", PLUGIN)
    env = clean_env(PYTHONPATH=str(tmp_path / "site"))

    validated = run_cli("validate", str(every_project), env=env)
    assert validated.returncode == 0, validated.stderr
    listed = run_cli("functions", "--json", "--app", str(every_project), env=env)
    assert listed.returncode == 0, listed.stderr
    [beat] = json.loads(listed.stdout)
    assert beat["name"] == "beat" and "every 5 s" in json.dumps(beat)
    invoked = run_cli("invoke", "beat", "--app", str(every_project), env=env)
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == {"beat": "beat"}

    # Without the package, the same app.yaml is refused by its line, naming the known types.
    refused = run_cli("validate", str(every_project), env=clean_env())
    assert refused.returncode != 0
    assert "app.yaml:3" in refused.stderr and "'every'" in refused.stderr


def test_a_broken_plugin_is_named_and_a_project_that_needs_none_never_loads_it(
    tmp_path: Path, every_project: Path, project_without_plugins: Path
) -> None:
    _install(tmp_path / "site", "lakefn_every:register", "raise ImportError('no numpy here')\n")
    env = clean_env(PYTHONPATH=str(tmp_path / "site"))

    broken = run_cli("validate", str(every_project), env=env)
    assert broken.returncode != 0
    assert "lakefn plug-in 'every' (lakefn_every:register) failed to load: " in broken.stderr
    assert "ImportError: no numpy here" in broken.stderr
    assert "Traceback" not in broken.stderr

    fine = run_cli("validate", str(project_without_plugins), env=env)
    assert fine.returncode == 0, fine.stderr


@pytest.fixture
def project_without_plugins(tmp_path: Path) -> Path:
    root = tmp_path / "plain"
    (root / "functions").mkdir(parents=True)
    (root / "app.yaml").write_text(
        "functions:\n  - name: hello\n    trigger: {type: http, endpoint: /hello}\n"
    )
    (root / "functions" / "hello_function.py").write_text("def main(event):\n    return 'hi'\n")
    return root
