"""Unity three-part table names, parsed once and quoted for SQL.

A name from app.yaml or from a user never reaches SQL as text: it is parsed into three
identifiers here, and `TableName.sql` re-quotes each one with backticks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._exceptions import TableNameError

_BARE = re.compile(r"[A-Za-z0-9_]+")
_MAX_PART = 255
# Unity Catalog forbids these in object names, quoted or not (control characters and DEL are
# refused for every name). app.yaml is held to them (`TableName.check_unity`); a name parsed
# only to be quoted for SQL, or a local table made with `lakefn tables`, may carry them.
_NOT_IN_UNITY = {".": "a period", "/": "a slash", " ": "a space"}


def _split(text: str) -> list[str]:
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == "`":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise TableNameError(text, "unterminated backtick")
                if text[j] == "`":
                    if j + 1 < n and text[j + 1] == "`":
                        buf.append("`")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            part, i = "".join(buf), j + 1
            if not part:
                raise TableNameError(text, "empty quoted part")
        else:
            m = _BARE.match(text, i)
            if not m:
                bad = text[i] if i < n else "end of name"
                raise TableNameError(text, f"unexpected {bad!r} at position {i}")
            part, i = m.group(0), m.end()
        if any(ord(c) < 32 or ord(c) == 127 for c in part):
            raise TableNameError(text, "control character in name")
        if len(part) > _MAX_PART:
            raise TableNameError(text, f"part longer than {_MAX_PART} characters")
        parts.append(part)
        if i == n:
            return parts
        if text[i] != ".":
            raise TableNameError(text, f"unexpected {text[i]!r} at position {i}")
        i += 1


@dataclass(frozen=True, order=True)
class TableName:
    catalog: str
    schema: str
    table: str

    @classmethod
    def parse(cls, text: object) -> TableName:
        if isinstance(text, TableName):
            return text
        if not isinstance(text, str):
            raise TableNameError(text, "not a string")
        stripped = text.strip()
        if not stripped:
            raise TableNameError(text, "empty")
        parts = _split(stripped)
        if len(parts) != 3:
            raise TableNameError(text, f"{len(parts)} part{'s' if len(parts) != 1 else ''}")
        return cls(*parts)

    def check_unity(self) -> TableName:
        """This name, or TableNameError if Unity Catalog could not hold it: a part with a
        period (so `..` too), a slash or a space. Such a table can only be local, and there
        `..` and `/` would be paths out of the catalog folder."""
        found = [name for c, name in _NOT_IN_UNITY.items() if any(c in p for p in self.parts)]
        if found:
            listed = " or ".join(found)
            raise TableNameError(str(self), f"Unity Catalog names cannot contain {listed}")
        return self

    @property
    def parts(self) -> tuple[str, str, str]:
        return (self.catalog, self.schema, self.table)

    @property
    def sql(self) -> str:
        """The name quoted for Databricks SQL: every part in backticks, backticks doubled."""
        return ".".join("`" + p.replace("`", "``") + "`" for p in self.parts)

    def __str__(self) -> str:
        return ".".join(
            p if _BARE.fullmatch(p) else "`" + p.replace("`", "``") + "`" for p in self.parts
        )
