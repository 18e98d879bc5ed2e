"""`LocalTables`: real Delta tables in a local catalog, written the way a job writes them.

The test harness hands one to each test (`lakefn.tables`); `lakefn.testing` re-exports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._tablename import TableName

if TYPE_CHECKING:
    import pyarrow as pa
    from deltalake import DeltaTable

    from .events import Commit


class LocalTables:
    """Real Delta tables in the harness's temporary local catalog (`<catalog>/<schema>/<table>`).

    Each write is one commit, as a Databricks job's write would be; the table watcher reads
    them exactly as it reads any local table. Every write returns the table's new version.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        from .sources.local import path_for

        return path_for(self.root, name)

    def create(
        self,
        name: str,
        rows: pa.Table | Sequence[dict[str, Any]],
        *,
        change_data_feed: bool = True,
        partition_by: list[str] | None = None,
    ) -> int:
        """A new table holding `rows` (version 0), with the change data feed on by default."""
        from .sources.local import create_table

        return create_table(
            self.root, name, rows, change_data_feed=change_data_feed, partition_by=partition_by
        )

    def append(self, name: str, rows: pa.Table | Sequence[dict[str, Any]]) -> int:
        from .sources.local import append

        return append(self.root, name, rows)

    def overwrite(self, name: str, rows: pa.Table | Sequence[dict[str, Any]]) -> int:
        from .sources.local import append

        return append(self.root, name, rows, mode="overwrite")

    def delete(self, name: str, predicate: str | None = None) -> int:
        """Delete the rows matching the SQL `predicate` (all rows without one)."""
        table = self._open(name)
        table.delete(predicate)
        return table.version()

    def version(self, name: str) -> int:
        return self._open(name).version()

    def rows(self, name: str) -> list[dict[str, Any]]:
        """The table's current rows."""
        rows: list[dict[str, Any]] = self._open(name).to_pyarrow_table().to_pylist()
        return rows

    def history(self, name: str) -> list[Commit]:
        """Every commit, oldest first, as a function's `event.commits` would hold them."""
        from .sources.local import LocalDeltaSource

        return LocalDeltaSource(self.root).commits_since(TableName.parse(name), -1)

    def _open(self, name: str) -> DeltaTable:
        from deltalake import DeltaTable

        from ._exceptions import TableNotFound

        path = self.path(name)
        if not (path / "_delta_log").is_dir():
            raise TableNotFound(str(TableName.parse(name)), f"local catalog {self.root}")
        return DeltaTable(str(path))
