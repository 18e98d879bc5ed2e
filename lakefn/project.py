"""A project on disk: app.yaml, its functions folder, and the paths it resolves."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._defaults import LOCAL_ROOT_ENV
from ._exceptions import ConfigError, ConfigIssue
from ._yaml import Path_, line_of
from .config import AppConfig, config_warnings, read_config
from .functions import FunctionRegistry

logger = logging.getLogger("lakefn")


@dataclass(frozen=True)
class Project:
    """A loaded, validated project. Relative paths resolve against the folder of app.yaml."""

    path: Path
    config: AppConfig
    lines: dict[Path_, int] = field(default_factory=dict, repr=False, compare=False)
    #: valid but likely unintended settings, each with file and line (`lakefn validate` shows them)
    warnings: tuple[ConfigIssue, ...] = field(default=(), compare=False)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def functions_dir(self) -> Path:
        return self.root / "functions"

    @property
    def local_root(self) -> Path:
        return self._resolve(os.environ.get(LOCAL_ROOT_ENV) or self.config.tables.local_root)

    @property
    def state_path(self) -> Path:
        return self._resolve(os.environ.get("LAKEFN_STATE") or self.config.state)

    def _resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    def line(self, *path: str | int) -> int | None:
        return line_of(self.lines, tuple(path))

    def apply_env(self, setenv: Callable[[str, str], None] | None = None) -> list[str]:
        """Apply app.yaml's `env` to os.environ, as Databricks Apps would; an existing value
        wins. Returns the `valueFrom` names that nothing provides (each also logged).
        `setenv` sets one variable: the test harness passes one it undoes after the test."""
        missing = []
        for var in self.config.env:
            if var.name in os.environ:
                continue
            if var.value is not None:
                (setenv or os.environ.__setitem__)(var.name, var.value)
            else:
                missing.append(var.name)
                logger.warning(
                    "%s: env %s comes from the Databricks Apps resource %r, which only exists "
                    "when deployed; set %s in the environment to run locally",
                    self.path,
                    var.name,
                    var.value_from,
                    var.name,
                )
        return missing


def find_app_yaml(path: str | os.PathLike[str] | None = None) -> Path:
    """`path` itself, `path/app.yaml` for a folder, or app.yaml in the working directory."""
    candidate = Path(path) if path is not None else Path.cwd()
    if candidate.is_dir():
        candidate = candidate / "app.yaml"
    return candidate.resolve()


def load_project(path: str | os.PathLike[str] | None = None, *, apply_env: bool = True) -> Project:
    """Read and validate app.yaml (schema only: see `load_functions` for the modules)."""
    app_yaml = find_app_yaml(path)
    config, lines = read_config(app_yaml)
    warnings = tuple(config_warnings(config, lines, str(app_yaml)))
    project = Project(app_yaml, config, lines, warnings)
    if apply_env:
        project.apply_env()
    return project


def load_functions(project: Project) -> FunctionRegistry:
    """Import every function module; all failures are reported together as a ConfigError."""
    registry = FunctionRegistry(project.functions_dir, project.config.functions)
    errors = registry.load_all()
    if errors:
        index = {f.name: i for i, f in enumerate(project.config.functions)}
        issues = [
            ConfigIssue(
                str(project.path),
                project.line("functions", index[e.name], "name"),
                f"functions[{index[e.name]}]",
                str(e),
            )
            for e in errors
        ]
        raise ConfigError(issues)
    return registry
