"""unity_table triggers: watch tables for new Delta versions and hand them over, at least once.

- `watcher.py`: `TableWatcher`, a watch task per function, and checks, simulations and
  checkpoint moves by hand.
- `loop.py`: one check: the checkpoint, what is new, the operations filter, the delivery and
  the checkpoint's compare-and-set; history gaps and recreated tables.
- `lease.py`: how processes sharing a state store take turns on a table.
- `store.py`: the checkpoint store and the source, called on the watcher's threads.
- `handover.py`: the events a function is handed, delivered or simulated.
- `status.py`: errors logged once per change of state, /lakefn/tables and /healthz.
- `state.py`: what is known of one watched table, and how often it is looked at.

Nothing here imports pyarrow or a source's client until it is used.
"""

from __future__ import annotations

from .lease import holder_is_dead, owner_id
from .state import FAILURE_BACKOFF_CAP, MAX_BATCH, WatchState, next_check_in
from .watcher import TableWatcher

__all__ = [
    "FAILURE_BACKOFF_CAP",
    "MAX_BATCH",
    "TableWatcher",
    "WatchState",
    "holder_is_dead",
    "next_check_in",
    "owner_id",
]
