"""The base of every app.yaml model, shared by `config` and the trigger kinds' own models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from ._tablename import TableName

#: largest table version `start` may name (Delta versions are 64-bit)
MAX_VERSION = 2**63 - 1


class ConfigModel(BaseModel):
    """Frozen, and strict about unknown fields: a typo in app.yaml is an error, not a default."""

    # allow_inf_nan: `.inf` and `.nan` are YAML floats, and no setting of lakefn means either.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def check_table_name(value: str | None) -> str | None:
    if value is not None:
        TableName.parse(value).check_unity()  # raises TableNameError, a ValueError
    return value
