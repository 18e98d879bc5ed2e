"""Loading function modules: `functions/{name}_function.py`, each exporting `main(event)`.

Modules are imported as members of a package made for the project's functions folder, so
helpers beside them import with `from . import helpers` (or plain `import helpers`: the folder
is on sys.path, as a script's folder is), and two projects in one process never share modules.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import threading
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._exceptions import FunctionLoadError, FunctionNotFound
from .config import FunctionConfig


@dataclass(frozen=True)
class LoadedFunction:
    config: FunctionConfig
    main: Callable[..., Any]
    is_async: bool
    path: Path
    module: types.ModuleType

    @property
    def name(self) -> str:
        return self.config.name


def module_path(functions_dir: Path, name: str) -> Path:
    return functions_dir / f"{name}_function.py"


class FunctionRegistry:
    """The project's functions, loaded from files and reloadable one at a time."""

    def __init__(self, functions_dir: Path, configs: tuple[FunctionConfig, ...]) -> None:
        self.functions_dir = Path(functions_dir).resolve()
        self._configs = {c.name: c for c in configs}
        self._loaded: dict[str, LoadedFunction] = {}
        self._lock = threading.Lock()
        digest = hashlib.sha1(str(self.functions_dir).encode()).hexdigest()[:10]
        self._package = f"_lakefn_functions_{digest}"

    @property
    def names(self) -> list[str]:
        return list(self._configs)

    def config(self, name: str) -> FunctionConfig:
        try:
            return self._configs[name]
        except KeyError:
            raise FunctionNotFound(name, list(self._configs)) from None

    def get(self, name: str) -> LoadedFunction:
        loaded = self._loaded.get(name)
        if loaded is None:
            with self._lock:
                loaded = self._loaded.get(name) or self._load(self.config(name))
                self._loaded[name] = loaded
        return loaded

    def load_all(self) -> list[FunctionLoadError]:
        """Import every function; return the failures instead of stopping at the first."""
        errors = []
        for name in self._configs:
            try:
                self.get(name)
            except FunctionLoadError as exc:
                errors.append(exc)
        return errors

    def reload(self, name: str) -> LoadedFunction:
        """Import the function's file again; on failure the previous version stays in place."""
        loaded = self._load(self.config(name))
        with self._lock:
            self._loaded[name] = loaded
        return loaded

    def _load(self, config: FunctionConfig) -> LoadedFunction:
        path = module_path(self.functions_dir, config.name)
        shown = _relative(path)
        if not path.is_file():
            raise FunctionLoadError(config.name, shown, f"{shown} does not exist")
        self._ensure_package()
        module_name = f"{self._package}.{config.name}_function"
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        previous = sys.modules.get(module_name)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:
            if previous is not None:
                sys.modules[module_name] = previous
            else:
                sys.modules.pop(module_name, None)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise FunctionLoadError(config.name, shown, _user_traceback(exc, path)) from exc
        main = getattr(module, "main", None)
        if main is None:
            raise FunctionLoadError(config.name, shown, "the module has no `main` function")
        if not callable(main):
            raise FunctionLoadError(config.name, shown, "`main` is not callable")
        if not _takes_one_argument(main):
            raise FunctionLoadError(
                config.name, shown, "`main` must take one argument, the event: def main(event)"
            )
        is_async = inspect.iscoroutinefunction(main)
        return LoadedFunction(config, main, is_async, path, module)

    def _ensure_package(self) -> None:
        if self._package in sys.modules:
            return
        package = types.ModuleType(self._package)
        package.__path__ = [str(self.functions_dir)]
        package.__file__ = None
        sys.modules[self._package] = package
        if str(self.functions_dir) not in sys.path:
            sys.path.insert(0, str(self.functions_dir))


def _takes_one_argument(main: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(main)
    except (TypeError, ValueError):
        return True  # no signature to read (a C function): let the call tell
    try:
        signature.bind(None)
    except TypeError:
        return False
    return True


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _user_traceback(exc: BaseException, path: Path) -> str:
    """The import error with only the frames from the user's code, as Python would show them."""
    frames = traceback.extract_tb(exc.__traceback__)
    keep = [
        f
        for f in frames
        if "importlib" not in f.filename and "lakefn/functions.py" not in f.filename
    ]
    lines = ["import failed:", "Traceback (most recent call last):"]
    lines += [line.rstrip("\n") for line in traceback.format_list(keep)]
    lines += [line.rstrip("\n") for line in traceback.format_exception_only(type(exc), exc)]
    return "\n".join(lines)
