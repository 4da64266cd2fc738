"""The outbox's seq high-water mark, kept outside the outbox database so that losing the database never
makes seqs start again at 1 (central would take new events for duplicates of old ones).

A fixed 128-byte file of two 64-byte slots, rewritten in place (``pwrite`` + ``fsync``) and alternately:
an update needs no new disk block, so it works on a full disk, and a torn write spoils at most the slot
being written (each slot has a CRC; the valid one with the higher generation wins).
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("edge.outbox")

_SLOT = 64


@dataclass
class SeqMarks:
    gen: int = 0
    reserved: int = 0  # no seq above this was ever handed out
    floor: int = 0  # the next seq must be above this (seqs of events that could not be stored are skipped)
    unstored: int = 0  # events that could not be stored, in total


def _encode(m: SeqMarks) -> bytes:
    text = f"{m.gen} {m.reserved} {m.floor} {m.unstored}"
    line = f"{text} {zlib.crc32(text.encode()):08x}\n".encode()
    return line.ljust(_SLOT, b" ")


def _decode(raw: bytes) -> SeqMarks | None:
    try:
        *fields, crc = raw.decode("ascii").split()
        text = " ".join(fields)
        if len(fields) != 4 or int(crc, 16) != zlib.crc32(text.encode()):
            return None
        return SeqMarks(*(int(f) for f in fields))
    except (UnicodeDecodeError, ValueError):
        return None


class SeqFile:
    """Read once at open, then ``write`` a new state (raises OSError when the file cannot be written)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.marks = SeqMarks()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = b""
        slots = [_decode(raw[i:i + _SLOT]) for i in (0, _SLOT)]
        good = [s for s in slots if s is not None]
        if good:
            self.marks = max(good, key=lambda s: s.gen)
        elif raw:
            log.error("outbox: %s is unreadable; seq continues from the outbox database alone", self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < 2 * _SLOT:
            os.pwrite(self._fd, (_encode(self.marks) * 2), 0)
            os.fsync(self._fd)

    def write(self, reserved: int | None = None, floor: int | None = None, unstored: int | None = None) -> None:
        m = self.marks
        new = SeqMarks(m.gen + 1, m.reserved if reserved is None else reserved, m.floor if floor is None else floor,
                       m.unstored if unstored is None else unstored)
        os.pwrite(self._fd, _encode(new), (new.gen % 2) * _SLOT)
        os.fsync(self._fd)
        self.marks = new

    def close(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass
