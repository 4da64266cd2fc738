"""The clip store: files under ``<storage>/clips``, an SQLite (WAL) index, signed records.

It is four small roles over one shared ``ClipIndex`` (``index.py``), each handed to the one consumer that needs
it, so no consumer sees more than its protocol in ``edge.interfaces``:

- ``writer`` (``writer.py``, ``ClipWriter`` and ``BestShotSink``): the recorder's thread opens, describes,
  finishes or gives up clips; the best-shot worker stores shots.
- ``catalog`` (``catalog.py``, ``ClipCatalog``): the LAN API, push fetch and ``edgecam clips`` read, hold, release.
- ``keeper`` (``keeper.py``): retention and the free-space floor.
- ``recovery`` (``recovery.py``): index == disk at start. A missing, emptied or corrupt ``clips.db`` is rebuilt
  from the signed records beside the clips (``sidecar.py``); files nothing explains are quarantined, never deleted.

``ClipStore`` itself is the supervisor's ``ClipRetention``: it builds the roles and runs recovery, retention,
the free-space check, the report and close. Nothing outside this package deletes the store's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..types import ClipStoreStats
from . import sidecar
from .catalog import StoreCatalog
from .evidence import NodeKey
from .index import ClipIndex
from .keeper import ClipKeeper
from .recovery import ClipRecovery
from .retention import Budget
from .writer import StoreWriter


class ClipStore:
    """Clip files + index + evidence chain for one node (thread-safe; one writer process)."""

    def __init__(self, root: Path, signer: NodeKey | None, max_bytes: int = 0, max_age_s: float = 0.0,
                 min_free_bytes: int = 0, node: str = "", clock: dict[str, Any] | None = None) -> None:
        """``signer`` None: a one-shot command (``edgecam clips``), which never moves the daemon's files."""
        self.index = ClipIndex(root, signer, node, clock)
        self.keeper = ClipKeeper(self.index, Budget(int(max_bytes), float(max_age_s), int(min_free_bytes)))
        self.writer = StoreWriter(self.index, self.keeper)
        self.catalog = StoreCatalog(self.index)
        self.recovery = ClipRecovery(self.index, self.writer)
        self.root = self.index.root
        self.dir = self.index.dir
        self.quarantined = 0

    # ----- ClipRetention (what the supervisor does)
    def recover(self) -> dict[str, int]:
        """Make index == disk after a crash or a lost index; returns counts of what was done."""
        counts = self.recovery.run()
        self.quarantined = sidecar.quarantined_count(self.root)
        return counts

    def enforce_retention(self) -> list[str]:
        return self.keeper.enforce_retention()

    def check_space(self) -> bool:
        return self.keeper.check_space()

    def stats(self) -> ClipStoreStats:
        ix, keeper = self.index, self.keeper
        with ix.lock:
            r = ix.db.execute("SELECT COUNT(*), COALESCE(SUM(bytes), 0), COALESCE(SUM(held), 0)"
                              " FROM clips WHERE status='ok'").fetchone()
        return ClipStoreStats(clips=r[0], bytes=r[1], held=r[2], lost=ix.count("status='lost'"),
                              best_bytes=ix.best.total_bytes(), quarantined=self.quarantined,
                              paused=keeper.paused, pause_reason=keeper.pause_reason, free_bytes=keeper.free_bytes())

    def close(self) -> None:
        self.index.close()
