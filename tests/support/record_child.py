"""A recording process for the kill -9 test: records one endless event from a video, slowly."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.clips.evidence import NodeKey  # noqa: E402
from edge.clips.recorder import ClipRecorder  # noqa: E402
from edge.clips.store import ClipStore  # noqa: E402
from support.packets import demux, event  # noqa: E402


def main() -> None:
    root, video = Path(sys.argv[1]), Path(sys.argv[2])
    store = ClipStore(root, NodeKey.load_or_create(root / "keys"), node="n1")
    store.recover()
    info, pk = demux(video)
    rec = ClipRecorder("cam", store.writer, 2.0, 2.0, 300.0, lossless=True)
    rec.start()
    rec.start_stream(info)
    started = False
    for p in pk:
        rec.feed(p)
        if not started and p.time >= 3.0:
            print("clip", rec.on_event(event("start", p.time)), flush=True)
            started = True
        time.sleep(0.01)
    time.sleep(60)  # never ends the event: the parent kills us mid-clip


if __name__ == "__main__":
    main()
