"""`lakefn init DIR`: a project that serves at once and tests itself."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from ._exceptions import ProjectNotCreated


def create_project(target: Path) -> Path:
    target = target.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ProjectNotCreated(target)
    template = resources.files("lakefn") / "templates" / "project"
    try:
        with resources.as_file(template) as source:
            shutil.copytree(
                source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        (target / "gitignore").rename(target / ".gitignore")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ProjectNotCreated(target, reason) from None
    return target
