"""``edgecam check``: the installer's checklist, one probe per line.

Order: config (a config error stops here, exit 2), each camera (a two-stream camera's best-shot
still cost with it), the model, plates,
storage, the broker, the clock, the API port. Each probe is bounded by
``--timeout`` and says what to do when it fails. Exit 1 when any line is ✗.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import Config, doubtful, unusable
from ..node.build import settings_from_config
from ..redact import redact_url
from .broker import probe_broker
from .host import decoder_result, probe_api_port, probe_camera, probe_clock, probe_storage
from .model import probe_model
from .plates import probe_plates
from .result import FAIL, OK, SKIP, WARN, Result
from .scene import probe_scene
from .shots import probe_best_shots

MARKS = {OK: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}


def config_result(cfg: Config) -> Result:
    cams = [name for name, cam in cfg.cameras.items() if cam.enabled]
    broker = f"{cfg.mqtt.host}:{cfg.mqtt.port}" + (" (TLS)" if cfg.mqtt.tls else "")
    detail = (f"valid: node {cfg.node.id}, {len(cams)} camera{'s' if len(cams) != 1 else ''}"
              + (f" ({', '.join(cams)})" if cams else "") + f", broker {broker}, storage {cfg.storage.path}")
    problems, notes = unusable(cfg), doubtful(cfg)  # the same lists the daemon logs at start
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return Result("config", FAIL, f"{problems[0]}{more}", "; ".join(problems[1:]) or "fix the path, "
                      "or install the file (scripts/provision --ca-file for the broker's CA)",
                      data={"problems": problems, "notes": notes})
    if not cams:
        notes = [*notes, "no enabled camera: add a [cameras.NAME] section with a source"]
    if notes:
        return Result("config", WARN, detail, "; ".join(notes), data={"problems": [], "notes": notes})
    return Result("config", OK, detail)


def run_checks(cfg: Config, timeout: float) -> list[Result]:
    """Every probe, in checklist order."""
    results = [config_result(cfg)]
    for name, cam in cfg.cameras.items():
        if not cam.enabled:
            results.append(Result(f"camera {name}", SKIP, "enabled = false"))
            continue
        grabbed: list = []
        size = (cam.encode.width, cam.encode.height)
        decoders: list[str] = []
        record: Result | None = None
        if cam.detect_source is None:
            results.append(probe_camera(name, cam.source, timeout, size, grabbed, decode=cam.decode,
                                        decoders=decoders))
        else:  # two streams: the recorded one (never decoded by the daemon) and the analysed one
            record = probe_camera(name, cam.source, timeout, size, stream="record")
            results.append(record)
            results.append(probe_camera(name, cam.detect_source, timeout, size, grabbed, stream="detect",
                                        decode=cam.decode, decoders=decoders))
        if cam.decode != "software" or cam.detect_source is not None:
            results.append(decoder_result(name, cam.decode, decoders[0] if decoders else None))
        if grabbed:
            m = cam.motion
            results.append(probe_scene(name, grabbed[0], m.height, m.threshold, m.low_light))
        if record is not None and record.status != FAIL:  # one stream: shots are its own frame
            results.append(probe_best_shots(name, cam.source, cfg.clips.still_max_cpu, cfg.clips.enabled, timeout))
    det = cfg.detector
    results.append(probe_model(det.model, det.precision, list(det.providers), det.threads))
    results.append(probe_plates(cfg.plates.enabled, cfg.plates.max_cpu, cfg.clips.enabled))
    results.append(probe_storage(cfg.storage.path, cfg.clips.min_free_bytes))
    results.append(probe_broker(settings_from_config(cfg.mqtt, cfg.client_id), timeout))  # what the daemon uses
    results.append(probe_clock())
    results.append(probe_api_port(cfg.api.enabled, cfg.api.host, cfg.api.port))
    return results


def render(results: list[Result]) -> str:
    width = max(len(r.name) for r in results)
    lines = []
    for r in results:
        lines.append(f"{MARKS[r.status]} {r.name:<{width}}  {r.detail}")
        if r.advice and r.status in (FAIL, WARN):
            lines.append(f"  {'':<{width}}  → {r.advice}")
    failed = sum(r.failed for r in results)
    warned = sum(r.status == WARN for r in results)
    summary = "all checks passed" if not failed else f"{failed} check{'s' if failed != 1 else ''} failed"
    lines.append(summary + (f", {warned} warning{'s' if warned != 1 else ''}" if warned else ""))
    return redact_url("\n".join(lines))  # a camera URL in a probe's detail keeps its password out


def as_json(config_path: Path, results: list[Result]) -> str:
    doc = {
        "config": str(config_path),
        "ok": not any(r.failed for r in results),
        "checks": [{"name": r.name, "status": r.status, "detail": r.detail, "advice": r.advice, **r.data}
                   for r in results],
    }
    return redact_url(json.dumps(doc, ensure_ascii=False, indent=2))


