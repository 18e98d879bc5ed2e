"""lakefn's own wheel, made from the code this process runs, for a bundle to carry.

No build backend runs: the wheel is zipped straight from the imported `lakefn` package and the
installed distribution's metadata, so it works the same for a wheel install and an editable one
(where building would write into the source tree), and it is the very code that was tested.
Byte for byte reproducible: files in sorted order, fixed timestamps (SOURCE_DATE_EPOCH when set,
else 1980-01-01), fixed permissions.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import os
import re
import time
import zipfile
from pathlib import Path

from .._exceptions import WheelUnavailable

DISTRIBUTION = "lakefn"
_SKIP_DIRS = {"__pycache__"}
_SKIP_SUFFIXES = (".pyc", ".pyo", "~", ".swp", ".orig", ".rej")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_SELF = re.compile(rf"{DISTRIBUTION}\s*\[([^\]]+)\]")


def version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def wheel_name() -> str:
    return f"{DISTRIBUTION}-{version()}-py3-none-any.whl"


def requires(extras: set[str]) -> list[str]:
    """The requirements lakefn's `extras` add, self-references (`lakefn[postgres]`) expanded:
    what `pip install lakefn[...]` would pull besides the base dependencies.

    lakefn's own metadata only has `extra == "..."` markers, so a regex reads them (no
    `packaging`, which an installed lakefn does not depend on)."""
    try:
        lines = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise WheelUnavailable("lakefn is not installed as a distribution") from None
    wanted, seen, out = set(extras), set[str](), list[str]()
    while wanted - seen:
        extra = sorted(wanted - seen)[0]
        seen.add(extra)
        for line in lines:
            requirement, _, marker = line.partition(";")
            match = _EXTRA.fullmatch(marker.strip())
            if match is None or match.group(1) != extra:
                continue
            requirement = requirement.strip()
            self_ref = _SELF.fullmatch(requirement)
            if self_ref:
                wanted.update(e.strip() for e in self_ref.group(1).split(","))
            elif requirement not in out:
                out.append(requirement)
    return out


def build_wheel() -> tuple[str, bytes]:
    """(file name, bytes) of lakefn's wheel."""
    import lakefn

    package = Path(lakefn.__file__).resolve().parent
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise WheelUnavailable("lakefn is not installed as a distribution") from None
    # An editable install seen from its source tree resolves to the egg-info setuptools left
    # there, whose PKG-INFO is the same core metadata under another name.
    metadata = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if not metadata:
        raise WheelUnavailable("the installed distribution has no METADATA")
    ver = version()
    info = f"{DISTRIBUTION}-{ver}.dist-info"
    files: list[tuple[str, bytes]] = [
        (path.relative_to(package.parent).as_posix(), path.read_bytes())
        for path in sorted(package.rglob("*"))
        if path.is_file() and _ships(path.relative_to(package))
    ]
    files.append((f"{info}/METADATA", metadata.encode()))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        files.append((f"{info}/entry_points.txt", entry_points.encode()))
    files.append((f"{info}/top_level.txt", b"lakefn\n"))
    wheel = (
        "Wheel-Version: 1.0\nGenerator: lakefn bundle\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files.append((f"{info}/WHEEL", wheel.encode()))
    record = "".join(f"{name},sha256={_digest(data)},{len(data)}\n" for name, data in files)
    files.append((f"{info}/RECORD", (record + f"{info}/RECORD,,\n").encode()))
    return wheel_name(), _zip(files)


def _ships(relative: Path) -> bool:
    parts = relative.parts
    if any(p in _SKIP_DIRS or p.startswith(".") for p in parts):
        return False
    return not relative.name.endswith(_SKIP_SUFFIXES)


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _zip(files: list[tuple[str, bytes]]) -> bytes:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    stamp = time.gmtime(max(int(epoch), 315532800)) if epoch and epoch.isdigit() else None
    date_time = stamp[:6] if stamp else (1980, 1, 1, 0, 0, 0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            entry = zipfile.ZipInfo(name, date_time=date_time)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()
