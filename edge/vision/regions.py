"""Regions: which square crops of the frame the detector should look at.

Motion boxes are grown into squares no smaller than the model's input (a
small moving thing is then seen at full model resolution, like Frigate's
regions) and neighbouring squares are merged while the merged crop stays
close to the model's size, so a busy frame costs a few detector calls, not
one per motion box. Detections come back in crop pixels and are mapped to
the frame; duplicates from overlapping crops are removed.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..types import Box, Detection

_GROW = 1.2  # a region is this much bigger than the motion it covers


def square_around(box: Box, side: float, frame_size: tuple[int, int]) -> Box:
    """A square of ``side`` centred on ``box``, shifted (not shrunk) to stay in the frame."""
    width, height = frame_size
    cx, cy = box.center
    sw = min(side, width)
    sh = min(side, height)
    x1 = min(max(0.0, cx - sw / 2), width - sw)
    y1 = min(max(0.0, cy - sh / 2), height - sh)
    return Box(float(round(x1)), float(round(y1)), float(round(x1 + sw)), float(round(y1 + sh)))


def union(a: Box, b: Box) -> Box:
    return Box(min(a.x1, b.x1), min(a.y1, b.y1), max(a.x2, b.x2), max(a.y2, b.y2))


def _overlaps(a: Box, b: Box) -> bool:
    return a.x1 < b.x2 and b.x1 < a.x2 and a.y1 < b.y2 and b.y1 < a.y2


def plan_regions(
    boxes: Sequence[Box], frame_size: tuple[int, int], model_size: int, max_scale: float = 1.6
) -> list[Box]:
    """Square crops (full-frame pixels) that cover every box; merged while a crop side ≤ max_scale·model_size."""
    limit = max_scale * model_size
    regions = [square_around(b, max(model_size, _GROW * max(b.width, b.height)), frame_size) for b in boxes]
    merged = True
    while merged and len(regions) > 1:
        merged = False
        for i in range(len(regions)):
            for j in range(i + 1, len(regions)):
                joined = union(regions[i], regions[j])
                side = max(joined.width, joined.height)
                if side <= limit or (_overlaps(regions[i], regions[j]) and side <= _GROW * max(
                    regions[i].width, regions[j].width, regions[i].height, regions[j].height
                )):
                    regions[i] = square_around(joined, max(model_size, side), frame_size)
                    del regions[j]
                    merged = True
                    break
            if merged:
                break
    return regions


def to_frame(detections: Sequence[Detection], region: Box) -> list[Detection]:
    """Shift detections from crop pixels to full-frame pixels."""
    dx, dy = region.x1, region.y1
    return [
        Detection(d.label, d.score, Box(d.box.x1 + dx, d.box.y1 + dy, d.box.x2 + dx, d.box.y2 + dy))
        for d in detections
    ]


def _contained(a: Box, b: Box) -> float:
    """How much of the smaller box lies inside the other (0..1)."""
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    small = min(a.area, b.area)
    return ix * iy / small if small > 0 else 0.0


def merge_detections(groups: Sequence[Sequence[Detection]], iou: float = 0.5, contain: float = 0.7) -> list[Detection]:
    """Detections from several crops, one per object.

    Across crops, a box that overlaps a better one (IoU ≥ ``iou``) or is mostly
    inside it (a car cut in half by a crop edge) is dropped. Within one crop
    the detector's own NMS already ran, so people standing close stay apart.
    """
    if len(groups) == 1:
        return list(groups[0])
    tagged = sorted(
        ((d, g) for g, dets in enumerate(groups) for d in dets), key=lambda t: t[0].score, reverse=True
    )
    kept: list[tuple[Detection, int]] = []
    for det, group in tagged:
        for n, (k, g) in enumerate(kept):
            if g == group:
                continue
            if det.box.iou(k.box) >= iou:
                break
            if _contained(det.box, k.box) >= contain:
                if det.box.area > k.box.area:  # the other crop cut the object: keep the whole box
                    kept[n] = (Detection(k.label, k.score, det.box), g)
                break
        else:
            kept.append((det, group))
    return [d for d, _ in kept]


def inside_any(box: Box, regions: Sequence[Box], fraction: float = 0.6) -> bool:
    """Whether most of ``box`` was looked at by one of the crops."""
    if box.area <= 0:
        return False
    for r in regions:
        ix = max(0.0, min(box.x2, r.x2) - max(box.x1, r.x1))
        iy = max(0.0, min(box.y2, r.y2) - max(box.y1, r.y1))
        if ix * iy >= fraction * box.area:
            return True
    return False


def filter_area(
    detections: Sequence[Detection], width: int, height: int, min_area: float, max_area: float
) -> list[Detection]:
    """Drop boxes smaller or larger than the given fractions of a ``width`` x ``height`` frame.

    Applied to full-frame boxes (after mapping crops back), since a crop's size says nothing
    about how big an object is in the scene.
    """
    frame = float(width * height)
    return [d for d in detections if min_area * frame <= d.box.area <= max_area * frame]
