"""The public API is what `lakefn/__init__.py` lists, and importing it stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import lakefn

HEAVY = [
    "deltalake",
    "pyarrow",
    "pandas",
    "IPython",
    "ipywidgets",
    "databricks",
    "pyspark",
    "fastapi",
    "uvicorn",
    "apscheduler",
]


def test_every_public_name_is_importable_and_listed_once() -> None:
    assert len(set(lakefn.__all__)) == len(lakefn.__all__)
    for name in lakefn.__all__:
        assert getattr(lakefn, name) is not None, name
    public = {n for n in dir(lakefn) if not n.startswith("_") and n[0].isupper()}
    assert public - {"TYPE_CHECKING"} <= set(lakefn.__all__)


def test_the_contract_names_are_public() -> None:
    for name in [
        "HttpEvent",
        "TimerEvent",
        "TableChangeEvent",
        "Commit",
        "HttpError",
        "create_app",
    ]:
        assert name in lakefn.__all__


def test_every_error_is_a_lakefn_error() -> None:
    errors = [
        getattr(lakefn, n)
        for n in lakefn.__all__
        if n.endswith(("Error", "NotFound", "Gap", "Conflict", "Unavailable", "Timeout", "Trigger"))
    ]
    assert errors and all(issubclass(e, lakefn.LakefnError) for e in errors)


def test_import_lakefn_loads_nothing_heavy() -> None:
    probe = (
        "import sys, json, lakefn\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
