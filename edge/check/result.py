"""One line of the installer's checklist."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class Result:
    """What one probe found. ``advice`` says what to do about a failure or warning, in one line."""

    name: str
    status: str  # OK | WARN | FAIL | SKIP; only FAIL makes `edgecam check` exit 1
    detail: str
    advice: str = ""
    data: dict[str, Any] = field(default_factory=dict)  # figures for --json (ms, bytes, fps, ...)

    @property
    def failed(self) -> bool:
        return self.status == FAIL
