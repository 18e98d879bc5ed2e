"""The operation names Delta tables record in their history (DESCRIBE HISTORY `operation`).

`operations:` in app.yaml filters commits by these names, and a commit it leaves out still
moves the checkpoint: a typo there (`WRTIE`) would silently skip every commit. So names are
checked against this list, and one lakefn does not know yet is written `custom:NAME`.

Sources: Delta Lake's DeltaOperations.scala (Spark), delta-rs (the `deltalake` package behind
`source: local`), and what Databricks records beyond those (COPY INTO, CTAS, ...).
"""

from __future__ import annotations

import difflib

#: the prefix that lets through an operation name lakefn does not know
CUSTOM_PREFIX = "custom:"

DELTA_OPERATIONS = frozenset(
    {
        # writes and DML
        "WRITE",
        "STREAMING UPDATE",
        "MERGE",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "COPY INTO",
        "CONVERT",
        "RESTORE",
        "CLONE",
        "SHALLOW CLONE",
        "DEEP CLONE",
        # table creation and replacement
        "CREATE TABLE",
        "CREATE TABLE AS SELECT",
        "CREATE OR REPLACE TABLE",
        "CREATE OR REPLACE TABLE AS SELECT",
        "REPLACE TABLE",
        "REPLACE TABLE AS SELECT",
        # schema and properties
        "ADD COLUMNS",
        "ADD COLUMN",
        "DROP COLUMNS",
        "RENAME COLUMN",
        "CHANGE COLUMN",
        "CHANGE COLUMNS",
        "REPLACE COLUMNS",
        "UPDATE SCHEMA",
        "UPDATE COLUMN METADATA",
        "UPDATE FIELD METADATA",
        "UPDATE TABLE METADATA",
        "SET TBLPROPERTIES",
        "UNSET TBLPROPERTIES",
        "ADD CONSTRAINT",
        "DROP CONSTRAINT",
        "CLUSTER BY",
        "UPGRADE PROTOCOL",
        "ADD FEATURE",
        "DROP FEATURE",
        "REORG TABLE UPGRADE UNIFORM",
        # maintenance
        "OPTIMIZE",
        "REORG",
        "VACUUM START",
        "VACUUM END",
        "COMPUTE STATS",
        "FSCK",
        "MANUAL UPDATE",
        "EMPTY COMMIT",
    }
)


def normalize(name: str) -> str:
    """Upper case, single spaces: the form commits are compared in."""
    return " ".join(name.split()).upper()


def check(name: str) -> str:
    """The operation name to filter on, or ValueError naming the nearest known one."""
    if not isinstance(name, str):
        raise ValueError(f"operation {name!r} should be a name such as WRITE or MERGE")
    if name.strip().lower().startswith(CUSTOM_PREFIX):
        custom = normalize(name.strip()[len(CUSTOM_PREFIX) :])
        if not custom:
            raise ValueError(f"{name!r}: give the operation name after {CUSTOM_PREFIX!r}")
        return custom
    wanted = normalize(name)
    if wanted in DELTA_OPERATIONS:
        return wanted
    near = difflib.get_close_matches(wanted, sorted(DELTA_OPERATIONS), n=1, cutoff=0.6)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise ValueError(
        f"{name!r} is not a Delta operation name; {hint}"
        f"known names include WRITE, MERGE, UPDATE, DELETE, STREAMING UPDATE. "
        f"For an operation lakefn does not know, write '{CUSTOM_PREFIX}{name.strip()}'"
    )
