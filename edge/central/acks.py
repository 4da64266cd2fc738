"""End-to-end acknowledgements: after a commit, central tells each node what the database holds.

A broker's PUBACK only means "in the broker's RAM": a broker killed before its
autosave forgets what it queued for an offline central. So the node keeps every
row until central says it has it. After each committed batch central publishes,
per node in the batch, one retained QoS 1 message on ``<prefix>/<node>/acks``::

    {"v": 1, "node": "n1", "seq": 120, "max": 180, "missing": [[121, 125]], "ts": 1767225600.0}

``seq`` is the highest contiguous seq stored (1..seq are all in the database);
``max`` and ``missing`` say that every seq in ``seq+1..max`` is stored except the
listed ranges, so a hole the node can never fill (an evicted event) does not make
the node keep everything after it. The statement is computed from the database,
not from the batch, so with several ``$share`` consumers any of them publishes
the same truth; one that is a batch behind publishes an older, still true,
statement, and the node only ever moves its watermark forward.
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

WINDOW_ROWS = 5000  # rows read past the contiguous watermark per node and batch (bounds the query)
MAX_MISSING = 64  # holes listed per message; ``max`` is cut so that the statement stays true


def watermark(store: Store, node: str) -> dict[str, Any]:
    """What the database holds for ``node``: contiguous seq, then a bounded window of what lies above it."""
    report = store.gaps(node)  # also moves the stored contiguous watermark forward
    low = report.contiguous
    rows = store._execute(  # noqa: SLF001 - the store's dialect shim; a read-only query of our own
        "SELECT seq FROM events WHERE node = ? AND seq > ? ORDER BY seq LIMIT ?", (node, low, WINDOW_ROWS),
    ).fetchall()
    top, missing, prev = low, [], low
    for (seq,) in rows:
        seq = int(seq)
        if seq > prev + 1:
            if len(missing) == MAX_MISSING:
                break
            missing.append([prev + 1, seq - 1])
        top = prev = seq
    return {"v": 1, "node": node, "seq": low, "max": top, "missing": missing, "ts": round(time.time(), 3)}


def publish_watermarks(client: Any, store: Store | None, prefix: str, nodes: Iterable[str]) -> int:
    """Publish (retained, QoS 1) the watermark of each node; returns how many went out. Never raises:
    a failed publish only delays the node's clean-up until the next batch."""
    if store is None:
        return 0
    sent = 0
    for node in sorted(set(nodes)):
        try:
            body = json.dumps(watermark(store, node), separators=(",", ":")).encode()
            client.publish(acks_topic(prefix, node), body, qos=1, retain=True)
            sent += 1
        except Exception as err:  # noqa: BLE001 - the events are committed; the ack can wait for the next batch
            log.warning("cannot publish the acks watermark of %s: %s", node, str(err).splitlines()[0])
    return sent


def nodes_of(events: Iterable[Any]) -> set[str]:
    """The nodes whose events were in a batch (``EventRow.node``)."""
    return {e.node for e in events}
