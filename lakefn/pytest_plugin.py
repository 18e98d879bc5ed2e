"""The `lakefn` pytest fixture (registered through the `pytest11` entry point).

Installing lakefn is enough: a test that asks for `lakefn` gets a `lakefn.testing.LakefnHarness`
on the project's app.yaml, with a private state file and local catalog under `tmp_path`, closed
when the test ends. Which app.yaml, first match wins:

1. `@pytest.mark.lakefn_app("path")` on the test (relative to the test file's folder);
2. `--lakefn-app PATH` on the command line (relative to where pytest was started);
3. `lakefn_app = PATH` in the pytest ini (relative to the ini file's folder);
4. the nearest app.yaml in the test file's folder or above it, up to the rootdir;
5. app.yaml in the rootdir.

This module is imported by every pytest run where lakefn is installed, so it imports nothing
heavy: the harness (FastAPI, uvicorn, deltalake) loads only when a test uses the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from lakefn.testing import LakefnHarness

APP_YAML = "app.yaml"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lakefn", "lakefn functions")
    group.addoption(
        "--lakefn-app",
        dest="lakefn_app",
        metavar="PATH",
        default=None,
        help="app.yaml (or its folder) that the `lakefn` fixture loads "
        "(default: the nearest app.yaml above the test file)",
    )
    parser.addini(
        "lakefn_app",
        "app.yaml (or its folder) that the `lakefn` fixture loads, relative to the ini file",
        default=None,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "lakefn_app(path): the app.yaml (or its folder) the `lakefn` fixture loads for this "
        "test, relative to the test file",
    )


@pytest.fixture(name="lakefn")
def lakefn_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LakefnHarness]:
    """The project's functions, app and tables, with temporary state: see `lakefn.testing`."""
    from lakefn._exceptions import ConfigError
    from lakefn.testing import LakefnHarness

    app_yaml = find_app_yaml(request)
    try:
        harness = LakefnHarness(app_yaml, tmp_path / "lakefn")
    except ConfigError as exc:
        pytest.fail(f"lakefn fixture: {exc}", pytrace=False)
    try:
        yield harness
    finally:
        harness.close()


def find_app_yaml(request: pytest.FixtureRequest) -> Path:
    """The app.yaml this test's fixture loads (see the module docstring for the order)."""
    config = request.config
    test_dir = Path(request.path).parent
    marker = request.node.get_closest_marker("lakefn_app")
    if marker is not None and marker.args:
        return _existing(test_dir / str(marker.args[0]), "the lakefn_app marker")
    option = config.getoption("lakefn_app")
    if option:
        return _existing(config.invocation_params.dir / option, "--lakefn-app")
    ini = config.getini("lakefn_app")
    if ini:
        base = config.inipath.parent if config.inipath is not None else config.rootpath
        return _existing(base / str(ini), "the lakefn_app ini setting")
    found = _search_upward(test_dir, config.rootpath)
    if found is None:
        pytest.fail(
            f"lakefn fixture: no {APP_YAML} in {test_dir} or any folder above it up to the "
            f"rootdir {config.rootpath}; point to one with --lakefn-app PATH, "
            "`lakefn_app = PATH` in the pytest ini, or @pytest.mark.lakefn_app(PATH)",
            pytrace=False,
        )
    return found


def _search_upward(start: Path, rootdir: Path) -> Path | None:
    start, rootdir = start.resolve(), rootdir.resolve()
    # Above the rootdir lies someone else's project: stop there (a test file outside the
    # rootdir is searched up to the filesystem's root, then the rootdir itself).
    for folder in (start, *start.parents):
        if (folder / APP_YAML).is_file():
            return folder / APP_YAML
        if folder == rootdir:
            return None
    candidate = rootdir / APP_YAML
    return candidate if candidate.is_file() else None


def _existing(path: Path, given_by: str) -> Path:
    resolved = path.resolve()
    if not resolved.exists():
        pytest.fail(f"lakefn fixture: {resolved} (from {given_by}) does not exist", pytrace=False)
    app_yaml = resolved / APP_YAML if resolved.is_dir() else resolved
    if not app_yaml.is_file():
        pytest.fail(
            f"lakefn fixture: {resolved} (from {given_by}) has no {APP_YAML}", pytrace=False
        )
    return app_yaml
