"""Licence-plate reading on PP-OCR's det+rec ONNX models from the rapidocr wheel (optional extra).

Why not call rapidocr's own pipeline: over a whole photo it runs the detector at
>= 736 px, recognises every text line it finds (shop signs, stickers) and glues
them into one string. Here the detector runs once on a downscaled image only to
*localise*: its text boxes are grouped into plate candidates (one line, or two
stacked lines of similar width, the Vietnamese motorbike layout), and only
those lines are recognised, on a character set limited to plate characters.
A read is kept only when every line is confident and the text looks like a
plate, so an unreadable plate gives no plate rather than a guess.

Only the model files come from the ``rapidocr`` package (located, not
imported: importing it pulls omegaconf, shapely and friends for nothing), and
they run on the onnxruntime the node already has.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError

DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
MISSING = "plate reading needs the plates extra: pip install 'edgecam[plates]'"

# Characters a plate may carry: Latin capitals, digits, the separators printed on
# Vietnamese plates, and China's province abbreviations (other countries' plates
# are kept as read). Restricting the CTC decode to these removes look-alike
# lower-case and CJK confusions at no cost.
CN_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领警学挂港澳"
PLATE_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-." + CN_PROVINCES

DET_THRESH = 0.3  # DB probability map threshold (PP-OCR's default)
DET_BOX_THRESH = 0.5  # mean probability inside a text box
UNCLIP = 1.3
SPLIT_PAD = 0.0  # how far past the middle of the gap a paired line's box may reach (share of line height)
REC_HEIGHT = 48
LARGE_IMAGE = 800  # longer side above which an image is a scene (plate small in it), not a plate or vehicle crop
MIN_SCORE = 0.70  # a plate's score is its least confident character's probability (tuned on the shared photos)


class PlatesUnavailable(UserError):
    """The plates extra is missing or its models cannot be loaded; one line."""


@dataclass(frozen=True)
class Plate:
    """One plate read in an image: normalised text, confidence 0..1, pixel box xyxy in that image."""

    text: str
    score: float
    box: tuple[int, int, int, int]
    raw: str  # the lines as recognised, joined by " / " (for debugging and benchmarks)


@dataclass(frozen=True)
class _Line:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels, unclipped (grown) like PP-OCR
    core: tuple[float, float, float, float]  # the detector's shrunk text kernel, same coordinates
    score: float


def model_dir() -> Path:
    """Where the rapidocr wheel keeps its ONNX models; PlatesUnavailable when the extra is missing."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        raise PlatesUnavailable(MISSING)
    root = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (DET_MODEL, REC_MODEL):
        if not (root / name).is_file():
            raise PlatesUnavailable(f"{MISSING} (rapidocr installed but {name} is missing: reinstall rapidocr>=3,<4)")
    return root


# --- text normalisation (pure) ---------------------------------------------------------------

_ALNUM = re.compile(r"[^0-9A-Z\u4e00-\u9fff]")
_VN_ONE = re.compile(r"^(\d{2})([A-Z]{1,2})(\d{3})(\d{2})$")  # 30A12345 -> 30A-123.45
_VN_ONE4 = re.compile(r"^(\d{2})([A-Z]{1,2})(\d{4})$")  # 30A1234 -> 30A-1234
_VN_TOP_SERIES = re.compile(r"^(\d{2})([A-Z][A-Z0-9])$")  # 29B1 -> 29-B1 (motorbike)
_VN_TOP_CAR = re.compile(r"^(\d{2})([A-Z]{1,2})$")  # 51A (square car plate)
_VN_BOTTOM5 = re.compile(r"^(\d{3})(\d{2})$")  # 12345 -> 123.45
_VN_BOTTOM4 = re.compile(r"^\d{4}$")


def compact(text: str) -> str:
    """The text without spaces, '-', '.', '/': what plate comparisons and searches match on."""
    return re.sub(r"[\s\-./|]", "", text.upper())


def _top_line(text: str) -> str | None:
    a = _ALNUM.sub("", text)
    if m := _VN_TOP_SERIES.match(a):
        return f"{m[1]}-{m[2]}"
    if m := _VN_TOP_CAR.match(a):
        return f"{m[1]}{m[2]}"
    return None


def _bottom_line(text: str) -> str | None:
    a = _ALNUM.sub("", text)
    if m := _VN_BOTTOM5.match(a):
        return f"{m[1]}.{m[2]}"
    if _VN_BOTTOM4.match(a):
        return a
    return None


def normalise(lines: list[str]) -> str | None:
    """Vietnamese formats from recognised lines; other plate-like text kept as read; None if not a plate.

    One line: ``30A-123.45`` / ``30A-1234``. Two lines: ``29-B1 123.45`` (motorbike), ``51A 192.22``
    (square car plate); an old or special series (``49 019-BD``) keeps its lines as printed.
    """
    lines = [ln.strip(" -.") for ln in lines if ln.strip(" -.")]
    if len(lines) == 1:
        a = _ALNUM.sub("", lines[0])
        if m := _VN_ONE.match(a):
            return f"{m[1]}{m[2]}-{m[3]}.{m[4]}"
        if m := _VN_ONE4.match(a):
            return f"{m[1]}{m[2]}-{m[3]}"
        return lines[0] if _plate_like(a) else None
    if len(lines) == 2:
        top, bottom = _top_line(lines[0]), _bottom_line(lines[1])
        if top and bottom:
            return f"{top} {bottom}"
        joined = _ALNUM.sub("", lines[0] + lines[1])
        return f"{lines[0]} {lines[1]}" if _plate_like(joined) else None
    return None


def _plate_like(alnum: str) -> bool:
    """A plate in some other format: 5-10 characters, two digits or more and a letter or more.

    Rejects words on signs ("HONDA") and fleet or route numbers painted on buses ("65745").
    """
    digits = sum(c.isdigit() for c in alnum)
    return 5 <= len(alnum) <= 10 and digits >= 2 and digits < len(alnum)


# --- the reader -------------------------------------------------------------------------------


class PlateReader:
    """Finds and reads plates in a BGR image (a vehicle crop or a whole photo).

    ``threads`` is onnxruntime's intra-op thread count; the node's CPU budget
    (``plates.max_cpu``) is enforced by whoever schedules reads, not here.
    """

    def __init__(
        self, threads: int = 1, min_score: float = MIN_SCORE, det_side: int = 512, crop_side: int = 320
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - onnxruntime is a core dependency
            raise PlatesUnavailable(MISSING) from None
        root = model_dir()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._det = ort.InferenceSession(str(root / DET_MODEL), opts, providers=["CPUExecutionProvider"])
            self._rec = ort.InferenceSession(str(root / REC_MODEL), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types
            raise PlatesUnavailable(f"cannot load the plate models from {root}: {err}") from None
        chars = self._rec.get_modelmeta().custom_metadata_map.get("character", "").splitlines()
        if not chars:
            raise PlatesUnavailable(f"{root / REC_MODEL} has no character table")
        vocab = ["<blank>", *chars, " "]
        self._vocab = vocab
        allowed = set(PLATE_CHARS)
        mask = np.array([i == 0 or c in allowed for i, c in enumerate(vocab)])
        self._rec_mask = mask
        self._det_in = self._det.get_inputs()[0].name
        self._rec_in = self._rec.get_inputs()[0].name
        self.min_score = min_score
        self.det_side = det_side
        self.crop_side = crop_side

    # detection: where is text?
    def _detect(self, img: np.ndarray) -> list[_Line]:
        h, w = img.shape[:2]
        side = self.det_side if max(h, w) > LARGE_IMAGE else self.crop_side
        scale = side / max(h, w)
        dh, dw = max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32)
        x = cv2.resize(img, (dw, dh)).astype(np.float32)
        x = (x / 127.5 - 1.0).transpose(2, 0, 1)[None]
        prob = self._det.run(None, {self._det_in: x})[0][0, 0]
        bitmap = (prob > DET_THRESH).astype(np.uint8)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        sx, sy = w / dw, h / dh
        lines = []
        for c in contours:
            bx, by, bw, bh = cv2.boundingRect(c)
            if bw < 3 or bh < 3:
                continue
            region = np.zeros((bh, bw), np.uint8)
            cv2.drawContours(region, [c - (bx, by)], -1, 1, -1)
            score = float(prob[by : by + bh, bx : bx + bw][region > 0].mean())
            if score < DET_BOX_THRESH:
                continue
            d = bw * bh * UNCLIP / (2 * (bw + bh))
            x1, y1 = max(0.0, (bx - d) * sx), max(0.0, (by - d) * sy)
            x2, y2 = min(float(w), (bx + bw + d) * sx), min(float(h), (by + bh + d) * sy)
            core = (bx * sx, by * sy, (bx + bw) * sx, (by + bh) * sy)
            lines.append(_Line((x1, y1, x2, y2), core, score))
        return lines

    # recognition: what does one line say?
    def _recognise(self, img: np.ndarray, box: tuple[float, float, float, float]) -> tuple[str, float]:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        crop = img[y1:y2, x1:x2]
        if crop.size == 0:
            return "", 0.0
        h, w = crop.shape[:2]
        rw = max(16, min(960, int(np.ceil(REC_HEIGHT * w / h))))
        x = cv2.resize(crop, (rw, REC_HEIGHT)).astype(np.float32)
        x = (x / 127.5 - 1.0).transpose(2, 0, 1)[None]
        logits = self._rec.run(None, {self._rec_in: x})[0][0]  # (T, C), softmaxed
        probs = np.where(self._rec_mask, logits, 0.0)
        idx = probs.argmax(axis=1)
        conf = probs[np.arange(len(idx)), idx]
        text, scores, prev = [], [], 0
        for i, p in zip(idx, conf, strict=True):
            if i != 0 and i != prev:
                text.append(self._vocab[i])
                scores.append(float(p))
            prev = i
        if not text:
            return "", 0.0
        return "".join(text), min(scores)

    def read(self, img: np.ndarray) -> list[Plate]:
        """Every confident plate in the image, left to right."""
        if img is None or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 8 or img.shape[1] < 8:
            return []
        lines = self._detect(img)
        plates = []
        for group in _group_lines(lines):
            texts, scores = [], []
            for ln in group:
                t, s = self._recognise(img, ln.box)
                texts.append(t)
                scores.append(s)
            text = normalise(texts)
            score = min(scores) if scores else 0.0
            if text is None or score < self.min_score:
                continue
            x1 = min(ln.box[0] for ln in group)
            y1 = min(ln.box[1] for ln in group)
            x2 = max(ln.box[2] for ln in group)
            y2 = max(ln.box[3] for ln in group)
            plates.append(Plate(text, round(score, 3), (int(x1), int(y1), int(x2), int(y2)), " / ".join(texts)))
        return _dedupe(sorted(plates, key=lambda p: p.box[0]))


def _group_lines(lines: list[_Line]) -> list[list[_Line]]:
    """Pair text lines stacked like a two-line plate (similar height, overlapping columns); rest alone."""
    lines = sorted(lines, key=lambda ln: ln.box[1])
    used: set[int] = set()
    groups: list[list[_Line]] = []
    for i, a in enumerate(lines):
        if i in used:
            continue
        ah = a.box[3] - a.box[1]
        aw = a.box[2] - a.box[0]
        best = None
        for j in range(i + 1, len(lines)):
            if j in used:
                continue
            b = lines[j]
            bh, bw = b.box[3] - b.box[1], b.box[2] - b.box[0]
            overlap = min(a.box[2], b.box[2]) - max(a.box[0], b.box[0])
            gap = b.box[1] - a.box[3]
            if (
                overlap > 0.5 * min(aw, bw)
                and -0.5 * ah < gap < 0.8 * ah
                and 0.5 < bh / ah < 2.0
                and 0.4 < bw / aw < 2.5
            ):
                best = j
                break
        if best is not None:
            used.add(best)
            groups.append(list(_split_pair(a, lines[best])))
        elif 1.5 <= aw / max(ah, 1.0) <= 12.0:  # a one-line plate is 2-7x wider than tall (grown box)
            groups.append([a])
    return groups


def _split_pair(top: _Line, bottom: _Line) -> tuple[_Line, _Line]:
    """Cut two stacked lines at the middle of the gap between their kernels.

    Grown boxes of a two-line plate overlap by a third of a line; fed to the
    recogniser, the other line's strokes lower its confidence or add characters.
    """
    mid = (top.core[3] + bottom.core[1]) / 2
    pad = SPLIT_PAD * (top.core[3] - top.core[1] + bottom.core[3] - bottom.core[1]) / 2
    t, b = top.box, bottom.box
    return (
        _Line((t[0], t[1], t[2], min(t[3], mid + pad)), top.core, top.score),
        _Line((b[0], max(b[1], mid - pad), b[2], b[3]), bottom.core, bottom.score),
    )


def _dedupe(plates: list[Plate]) -> list[Plate]:
    """A line read alone and as part of a two-line plate: keep the plate that covers more."""
    out: list[Plate] = []
    for p in sorted(plates, key=lambda p: -((p.box[2] - p.box[0]) * (p.box[3] - p.box[1]))):
        if any(_inside(p.box, q.box) for q in out):
            continue
        out.append(p)
    return sorted(out, key=lambda p: p.box[0])


def _inside(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = max(1, (a[2] - a[0]) * (a[3] - a[1]))
    return ix * iy > 0.6 * area
