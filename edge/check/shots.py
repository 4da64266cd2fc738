"""``check``'s best-shot lines: what one full-resolution still costs on this node, per two-stream camera.

A two-stream camera's best shots are cut from its record stream: the still is decoded
from the keyframe before the object's best moment (``clips/still.py``), so its cost
grows with the stream's size and its GOP. The probe reads one GOP, undecoded, as
the recorder does, and decodes it whole (the dearest still) on this machine.
"""

from __future__ import annotations

import time

from ..capture.grab import GOP_WINDOW, GrabError, grab_gop
from ..clips.still import decode_stills
from .result import OK, SKIP, WARN, Result

LONG_GOP_S = 4.0  # a GOP longer than this makes every still (and a clip's pre-roll start) dear: say so


def probe_best_shots(name: str, record_source: str, still_max_cpu: float, clips_enabled: bool,
                     timeout: float) -> Result:
    """Off, or the record stream's GOP, what decoding it whole costs here and the shots a minute the budget
    lets through at full resolution (beyond them, shots are cut from the analysed frame)."""
    label = f"best shots {name}"
    if not clips_enabled:
        return Result(label, SKIP, "off ([clips] enabled = false)")
    if still_max_cpu <= 0:
        return Result(label, OK, "cut from the analysed frame ([clips] still_max_cpu = 0: no record-stream stills)",
                      data={"still_max_cpu": still_max_cpu})
    try:
        gop = grab_gop(record_source, timeout)
    except GrabError as err:
        return Result(label, WARN, f"record stream: {err}", "best shots fall back to the analysed frame while "
                      "the record stream gives no keyframe")
    packets = gop.packets
    span = packets[-1].time - packets[0].time + (1.0 / gop.info.fps if gop.info.fps else 0.0)
    began = time.thread_time()
    decoded = sum(1 for _ in decode_stills(gop.info, packets, [packets[-1].mono]))
    cpu_s = round(time.thread_time() - began, 3)
    if not decoded:
        return Result(label, WARN, f"record stream ({gop.info.codec}): its GOP does not decode here",
                      "best shots fall back to the analysed frame; check the camera's codec (H.264 or H.265)")
    per_min = 60 * still_max_cpu / max(cpu_s, 1e-3)
    size = f"{gop.info.width}x{gop.info.height}"
    gop_text = f"GOP {span:.1f} s, {len(packets)} frames" if gop.whole else \
        f"GOP longer than {GOP_WINDOW:g} s ({len(packets)} frames read)"
    detail = (f"record stream {size}, {gop_text}: the dearest still (the whole GOP) costs {cpu_s * 1000:.0f} ms "
              f"CPU here; still_max_cpu {still_max_cpu:g} ≈ {per_min:.0f} or more full-resolution shots a minute "
              "(a Pi 4 core is 4-6x slower), the rest from the analysed frame")
    data = {"width": gop.info.width, "height": gop.info.height, "gop_s": round(span, 2), "gop_frames": len(packets),
            "gop_whole": gop.whole, "still_cpu_s": cpu_s, "still_max_cpu": still_max_cpu,
            "shots_per_min": round(per_min)}
    if not gop.whole or span > LONG_GOP_S:
        return Result(label, WARN, detail, "set the camera's I-frame interval to 1-2 s on the record stream: each "
                      "still decodes from the keyframe before it, and a clip's pre-roll starts at one", data=data)
    return Result(label, OK, detail, data=data)
