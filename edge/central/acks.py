"""End-to-end acknowledgements: after a commit, central tells each node what the database holds.

A broker's PUBACK only means "in the broker's RAM": a broker killed before its
autosave forgets what it queued for an offline central. So the node keeps every
row until central says it has it. After each committed batch central publishes,
per node in the batch, one retained QoS 1 message on ``<prefix>/<node>/acks``::

    {"v": 1, "node": "n1", "seq": 120, "from": 180, "max": 230, "missing": [[201, 205]], "ts": 1767225600.0}

``seq`` is the highest contiguous seq stored (1..seq are all in the database);
``from``/``max``/``missing`` say that every seq in ``from..max`` (the range of the
batch just committed) is stored except the listed ranges. So every committed
event is confirmed right after its commit, and a hole the node can never fill
(an event it evicted) does not make it keep everything after the hole. Both
statements are read from the database, not from memory, so with several
``$share`` consumers any of them publishes the truth; a consumer a batch behind
publishes an older, still true, statement, and the node never moves its
watermark back.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from ..payload import acks_topic
from .store import Store

log = logging.getLogger("edgecam.central")

WINDOW_ROWS = 5000  # rows read per node and batch (bounds both queries)
MAX_MISSING = 64  # holes listed per message; ``max`` is cut so that the statement stays true


def contiguous(store: Store, node: str) -> int:
    """Advance the node's stored contiguous watermark over at most ``WINDOW_ROWS`` rows; returns it."""
    ex = store._execute  # noqa: SLF001 - the store's dialect shim; the same column ``gaps()`` maintains
    row = ex("SELECT contiguous_seq FROM nodes WHERE node = ?", (node,)).fetchone()
    mark = int(row[0]) if row else 0
    start = mark
    for (seq,) in ex(f"SELECT seq FROM {store.seq_table} WHERE node = ? AND seq > ? ORDER BY seq LIMIT ?",
                     (node, mark, WINDOW_ROWS)).fetchall():
        if int(seq) != mark + 1:
            break
        mark += 1
    if row and mark > start:
        ex("UPDATE nodes SET contiguous_seq = ? WHERE node = ? AND contiguous_seq < ?", (mark, node, mark))
    return mark


def watermark(store: Store, node: str, lo: int | None = None, hi: int | None = None) -> dict[str, Any]:
    """What the database holds for ``node``: the contiguous seq, and which seqs of ``lo..hi`` it has."""
    low = contiguous(store, node)
    mark: dict[str, Any] = {"v": 1, "node": node, "seq": low}
    if lo is not None and hi is not None and hi > low:
        lo = max(lo, low + 1)
        seqs = [int(r[0]) for r in store._execute(  # noqa: SLF001
            f"SELECT seq FROM {store.seq_table} WHERE node = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ?",
            (node, lo, hi, WINDOW_ROWS)).fetchall()]
        if seqs:
            missing: list[list[int]] = []
            first, top = seqs[0], seqs[0]
            for seq in seqs[1:]:
                if seq > top + 1:
                    if len(missing) == MAX_MISSING:
                        break
                    missing.append([top + 1, seq - 1])
                top = seq
            mark.update({"from": first, "max": top, "missing": missing})
    mark["ts"] = round(time.time(), 3)
    return mark


def publish_watermarks(client: Any, store: Store | None, prefix: str, events: Iterable[Any]) -> int:
    """After a commit: publish (retained, QoS 1) each batch node's watermark; returns how many went out.
    Never raises: a failed publish only delays the node's clean-up (it resends, central re-confirms)."""
    if store is None:
        return 0
    ranges: dict[str, tuple[int, int]] = {}
    for e in events:
        lo, hi = ranges.get(e.node, (e.seq, e.seq))
        ranges[e.node] = (min(lo, e.seq), max(hi, e.seq))
    sent = 0
    for node, (lo, hi) in sorted(ranges.items()):
        try:
            body = json.dumps(watermark(store, node, lo, hi), separators=(",", ":")).encode()
            client.publish(acks_topic(prefix, node), body, qos=1, retain=True)
            sent += 1
        except Exception as err:  # noqa: BLE001 - the events are committed; the ack can wait for the next batch
            log.warning("cannot publish the acks watermark of %s: %s", node, str(err).splitlines()[0])
    return sent
