"""A state store added from outside lakefn: one class, one `register_store` call.

The class is what ARCHITECTURE.md says to write (the CheckpointStore methods and `from_state`,
as in lakefn/checkpoints/memory.py). Once registered, app.yaml's `state: mine://...` accepts it,
a real runtime builds it with `from_state` and delivers a real table's versions through it. A
scheme nobody registered is refused naming the forms lakefn knows, and a store whose driver is
missing names its own install command.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakefn import ConfigError
from lakefn._exceptions import CheckpointConflict, StateNeedsPackage
from lakefn.abc import CheckpointStore
from lakefn.checkpoints.selection import (
    STORES,
    accepted_forms,
    open_store,
    register_store,
    unregister_store,
)
from lakefn.config import parse_config
from lakefn.runtime import Runtime
from lakefn.sources.local import append, create_table
from lakefn.testing import FakeClock
from tests._serving import TABLE, runtimes_for_a_test
from tests.conftest import ProjectDir


class DictStore(CheckpointStore):
    """Checkpoints and leases in a dict per `state:` URL, kept for the test's process."""

    shelves: dict[str, DictStore] = {}

    def __init__(self, url: str, root: Path, clock: Callable[[], float]) -> None:
        self.url, self.root, self.clock = url, root, clock
        self.versions: dict[str, int] = {}
        self.table_ids: dict[str, str] = {}
        self.leases: dict[str, tuple[str, float]] = {}
        self.lock = threading.Lock()
        self.closed = False

    @classmethod
    def from_state(
        cls, state: str, project_root: Path, *, clock: Callable[[], float] = time.time
    ) -> DictStore:
        store = cls(state, project_root, clock)
        cls.shelves[state] = store
        return store

    @property
    def lease_clock(self) -> Callable[[], float]:
        return self.clock

    def load(self, key: str) -> int | None:
        return self.versions.get(key)

    def save(self, key: str, version: int, *, expected: int | None) -> None:
        with self.lock:
            if self.versions.get(key) != expected:
                raise CheckpointConflict(key, expected, self.versions.get(key))
            self.versions[key] = version

    def load_table_id(self, key: str) -> str | None:
        return self.table_ids.get(key)

    def save_table_id(self, key: str, table_id: str) -> None:
        self.table_ids[key] = table_id

    def acquire(
        self, key: str, owner: str, ttl: float, *, take_over: Callable[[str], bool] | None = None
    ) -> bool:
        with self.lock:
            now = self.clock()
            holder = self.leases.get(key)
            held = holder is not None and holder[0] != owner and holder[1] > now
            if held and not (take_over and take_over(holder[0])):  # type: ignore[index]
                return False
            self.leases[key] = (owner, now + ttl)
            return True

    def release(self, key: str, owner: str) -> None:
        with self.lock:
            if self.leases.get(key, ("",))[0] == owner:
                del self.leases[key]

    def close(self) -> None:
        self.closed = True


RECORDER = """\
import json, pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "deliveries.jsonl"

def main(event):
    with OUT.open("a") as out:
        out.write(json.dumps([c.version for c in event.commits]) + "\\n")
"""


def app_yaml(state: str) -> str:
    return (
        "tables: {local_root: catalog, source: local}\n"
        f"state: {json.dumps(state)}\n"
        "functions:\n"
        "  - name: watch\n"
        "    trigger: {type: unity_table, check_interval: 0.05, start: latest}\n"
        f"    table_name: {TABLE}\n"
    )


@pytest.fixture
def mine() -> Iterator[type[DictStore]]:
    register_store("mine", DictStore)
    yield DictStore
    unregister_store("mine")
    DictStore.shelves.clear()


@pytest.fixture
def runtime(project: ProjectDir) -> Iterator[Callable[..., Runtime]]:
    yield from runtimes_for_a_test(project)


async def test_a_registered_store_is_chosen_by_app_yaml_and_keeps_a_runtimes_checkpoints(
    project: ProjectDir, mine: type[DictStore], runtime: Callable[..., Runtime]
) -> None:
    project.config(app_yaml("mine://shelf-1"))
    project.function("watch", RECORDER)
    catalog = project.root / "catalog"
    create_table(catalog, TABLE, [{"id": 0}])
    clock = FakeClock()
    one = runtime(clock=clock)
    await one.watcher.check("watch")  # starts at the latest version, 0
    append(catalog, TABLE, [{"id": 1}])
    delivered = await one.watcher.check("watch")
    assert delivered is not None and delivered.ok
    lines = (project.root / "deliveries.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [[1]]
    store = mine.shelves["mine://shelf-1"]
    assert one.checkpoints is store and store.root == project.root
    assert store.load(f"watch|{TABLE}") == 1
    # Built on the runtime's clock: the lease it holds runs out when the FakeClock moves.
    assert store.acquire(f"watch|{TABLE}", "host:1:other", 10) is False
    clock.advance(11)
    assert store.acquire(f"watch|{TABLE}", "host:1:other", 10) is True
    one.close()
    assert store.closed


def test_a_registered_scheme_is_listed_and_forgotten_again(mine: type[DictStore]) -> None:
    assert "mine://..." in accepted_forms()
    assert isinstance(open_store("mine://x", "."), DictStore)
    unregister_store("mine")
    with pytest.raises(ConfigError) as found:
        parse_config("state: mine://x\n")
    assert "unknown scheme 'mine'" in str(found.value)
    assert "mine://" not in accepted_forms()
    register_store("mine", DictStore)  # the fixture forgets it again


def test_lakefns_own_schemes_cannot_be_taken_or_dropped(mine: type[DictStore]) -> None:
    with pytest.raises(ValueError, match="one of lakefn.s own"):
        register_store("sqlite", DictStore)
    with pytest.raises(ValueError, match="one of lakefn's own"):
        unregister_store("postgresql")
    with pytest.raises(ValueError, match="already registered"):
        register_store("mine", CheckpointStore)
    with pytest.raises(ValueError, match="no URL scheme"):
        register_store("my store", DictStore)


def test_a_missing_driver_names_the_stores_own_extra(tmp_path: Path) -> None:
    register_store("needy", "lakefn_no_such_driver_module:Store", extra="needy")
    try:
        with pytest.raises(StateNeedsPackage) as found:
            open_store("needy://db", tmp_path)
    finally:
        unregister_store("needy")
    assert "pip install 'lakefn[needy]'" in str(found.value)
    assert "lakefn[postgres]" not in str(found.value)
    assert "needy" not in STORES


def test_the_forms_lakefn_knows_are_named_for_a_bad_state(project: ProjectDir) -> None:
    project.config(app_yaml("nope://x"))
    with pytest.raises(ConfigError) as found:
        project.runtime()
    message = str(found.value)
    assert "unknown scheme 'nope'" in message
    for form in ("sqlite:///path", "postgresql://user@host:5432/db", "lakebase"):
        assert form in message
