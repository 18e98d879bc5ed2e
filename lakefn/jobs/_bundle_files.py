"""Writing the bundle: only files whose bytes change, lakefn's leftovers removed, and the
user's databricks.yml written once (with the variables the resources use)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._app_resource import APP_DIR, DATABASE_VARIABLES, WAREHOUSE_VARIABLE
from ._job_resource import RUNNER


@dataclass
class BundleResult:
    out: Path
    check: bool
    written: list[str] = field(default_factory=list)
    existed: set[str] = field(default_factory=set)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def stale(self) -> list[str]:
        return self.written + self.removed

    def lines(self) -> list[str]:
        out = [f"warning: {w}" for w in self.warnings]
        if self.check:
            if not self.stale:
                return [*out, f"{self.out}: up to date"]
            out.append(f"{self.out}: out of date; run `lakefn bundle` to update:")
            out += [
                f"  {p} {'differs' if p in self.existed else 'is missing'}" for p in self.written
            ]
            out += [f"  {p} would be removed" for p in self.removed]
            return out
        out += [f"wrote {self.out / p}" for p in self.written]
        out += [f"removed {self.out / p}" for p in self.removed]
        if not self.stale:
            out.append(f"{self.out}: up to date")
        else:
            out.append(f"deploy it: cd {self.out} && databricks bundle deploy")
        return out


def databricks_yml(bundle_name: str, resources: bytes) -> bytes:
    used = set(re.findall(r"\$\{var\.([A-Za-z0-9_]+)\}", resources.decode()))
    # Only the variables the resources use: deploying asks a value for each declared one.
    known: dict[str, dict[str, Any]] = {
        WAREHOUSE_VARIABLE: {"description": "id of the SQL warehouse the App reads tables through"},
        DATABASE_VARIABLES[0]: {
            "description": "Lakebase instance of the state (the App's database resource; "
            "the jobs log in to it too)"
        },
        DATABASE_VARIABLES[1]: {
            "description": "database of the state on that instance",
            "default": "databricks_postgres",
        },
    }
    variables = {name: spec for name, spec in known.items() if name in used}
    doc: dict[str, Any] = {
        "bundle": {"name": bundle_name},
        "include": ["resources/*.yml"],
        **({"variables": variables} if variables else {}),
        "targets": {
            "dev": {"mode": "development", "default": True},
            "prod": {
                "mode": "production",
                "workspace": {
                    "root_path": "/Workspace/Users/${workspace.current_user.userName}"
                    "/.bundle/${bundle.name}/${bundle.target}"
                },
            },
        },
    }
    needed = " ".join(f"--var {n}=<value>" for n, v in variables.items() if "default" not in v)
    head = (
        "# Written once by `lakefn bundle`; yours to edit. Deploy: databricks bundle deploy"
        + (f" {needed}" if needed else "")
        + "\n"
    )
    return (head + dump_yaml(doc)).encode()


def check_variables(databricks_yml: Path, resources: bytes, warnings: list[str]) -> None:
    used = set(re.findall(r"\$\{var\.([A-Za-z0-9_]+)\}", resources.decode()))
    text = databricks_yml.read_text(encoding="utf-8")
    for name in sorted(used):
        if not re.search(rf"^\s+{name}:", text, re.MULTILINE):
            warnings.append(
                f"{databricks_yml} declares no variable {name!r}, which the bundle uses"
            )


def sync_files(target: Path, files: dict[str, bytes], result: BundleResult) -> None:
    owned_dir = target / APP_DIR
    present = (
        {p.relative_to(target).as_posix() for p in owned_dir.rglob("*") if p.is_file()}
        if owned_dir.exists()
        else set()
    )
    for relative, data in sorted(files.items()):
        path = target / relative
        if path.exists() and path.read_bytes() == data:
            result.unchanged += 1
            continue
        result.written.append(relative)
        if path.exists():
            result.existed.add(relative)
        if not result.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    extra = sorted(present - set(files))
    runner = target / RUNNER
    if RUNNER not in files and runner.exists():
        extra.append(RUNNER)
    for relative in extra:
        result.removed.append(relative)
        if not result.check:
            (target / relative).unlink()
    if not result.check:
        for folder in sorted(owned_dir.rglob("*"), reverse=True) if owned_dir.exists() else []:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # every job spelled out in full, no &id001 anchors to follow


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
