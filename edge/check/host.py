"""Probes of the machine itself: cameras, storage, clock, the API port."""

from __future__ import annotations

import errno
import getpass
import os
import shutil
import socket
import tempfile
from pathlib import Path

import numpy as np

from ..capture import source_kind
from ..capture.grab import GrabError, grab_frame
from ..clock import clock_status
from .result import FAIL, OK, SKIP, WARN, Result

CAMERA_ADVICE = {
    "file": "check the path in cameras.{name}.source",
    "stream": "check the URL, its user/password and the route to the camera (try `ffprobe -rtsp_transport tcp URL`)",
    "usb": "is the camera plugged in (`ls /dev/video*`)? the user needs the video group",
    "picamera2": "check the ribbon cable and `rpicam-hello --list-cameras`; the user needs the video group",
}


def probe_camera(name: str, source: str, timeout: float, size: tuple[int, int],
                 frames: list[np.ndarray] | None = None, *, stream: str = "", decode: str = "software",
                 decoders: list[str] | None = None) -> Result:
    """One frame from the camera within ``timeout``; its size, rate and codec. The frame goes into ``frames``
    when given (the scene check reads it without opening the camera twice). ``stream`` ("record", "detect")
    names one stream of a two-stream camera; the decoder that gave the frame goes into ``decoders``."""
    label = f"camera {name}" + (f" {stream}" if stream == "detect" else "")
    key = "detect_source" if stream == "detect" else "source"
    try:
        grab = grab_frame(source, timeout, width=size[0], height=size[1], decode=decode)
    except GrabError as err:
        advice = CAMERA_ADVICE[source_kind(source)].format(name=name).replace(".source", f".{key}")
        return Result(label, FAIL, (f"{stream} stream: " if stream else "") + str(err), err.advice or advice)
    if decoders is not None:
        decoders.append(grab.decoder)
    if frames is not None:
        frames.append(grab.image)
    rate = f"{grab.fps:.2f} fps" + (" seen" if grab.live else "") if grab.fps else "rate unknown"
    detail = f"{grab.width}x{grab.height}, {rate} ({grab.codec}), first frame in {grab.seconds:.2f} s"
    if stream:
        detail = f"{stream} stream: {detail}"
    data = {"width": grab.width, "height": grab.height, "fps": round(grab.fps, 2), "codec": grab.codec,
            "first_frame_s": round(grab.seconds, 3), "decoder": grab.decoder}
    if stream:
        data["stream"] = stream
    return Result(label, OK, detail, data=data)


def decoder_result(name: str, decode: str, used: str | None) -> Result:
    """The decoder the camera's analysed stream is decoded with, as ``decode`` asked for it."""
    label = f"decoder {name}"
    if used is None:
        return Result(label, SKIP, "no frame decoded")
    hardware = used not in ("software", "v4l2", "picamera2")
    if decode == "software" or hardware:
        return Result(label, OK, f"{used}{' (hardware)' if hardware else ''} (decode = {decode!r})",
                      data={"decoder": used, "decode": decode})
    return Result(label, WARN, f"software: decode = {decode!r} found no hardware decoder that works here",
                  "the log line 'hardware decode unavailable' says why; decode = \"software\" silences this",
                  data={"decoder": used, "decode": decode})


def _mount_of(path: Path) -> tuple[str, str]:
    """(mount point, filesystem type) of the mount holding ``path``, from /proc/mounts."""
    best = ("/", "unknown")
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return best
    resolved = str(path.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fields[2])
    return best


def _block_device(path: Path) -> str | None:
    """Kernel name of the block device holding ``path`` (e.g. ``mmcblk0p2``), via /sys/dev/block."""
    dev = os.stat(path).st_dev
    link = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    try:
        return link.resolve(strict=True).name
    except OSError:
        return None


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def probe_storage(path: Path, min_free: int) -> Result:
    """Writable, enough free space, and where it lives (SD card or not)."""
    if not path.is_dir():
        return Result("storage", FAIL, f"{path} does not exist",
                      "run scripts/provision, or create it owned by the user that runs edgecam")
    try:
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".edgecam-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        return Result("storage", FAIL, f"{path} is not writable by {getpass.getuser()} ({err.strerror})",
                      f"run check as the service user (sudo -u edgecam …) or `chown -R edgecam: {path}`")
    free = shutil.disk_usage(path).free
    point, fstype = _mount_of(path)
    device = _block_device(path)
    on_sd = bool(device and device.startswith("mmcblk"))
    where = f"{fstype} on {device or 'no block device'}" + (" (SD card)" if on_sd else "") + f" at {point}"
    detail = f"{path} writable, {_human(free)} free, {where}"
    data = {"free_bytes": free, "min_free_bytes": min_free, "fstype": fstype, "device": device, "sd_card": on_sd}
    if free < min_free:
        return Result("storage", FAIL, detail + f"; below clips.min_free_bytes ({_human(min_free)})",
                      "free some space, use a bigger disk, or lower clips.min_free_bytes", data)
    if fstype in ("tmpfs", "ramfs"):
        return Result("storage", WARN, detail, "clips and the outbox on tmpfs are lost at reboot", data)
    return Result("storage", OK, detail, data=data)


def probe_clock() -> Result:
    synced, how = clock_status()
    if synced:
        return Result("clock", OK, f"synchronised ({how})", data={"synchronised": True})
    advice = ("events will carry time_ok=false until it syncs: check NTP (`timedatectl timesync-status`) "
              "and the route to the time server")
    if synced is None:
        return Result("clock", WARN, how, advice, data={"synchronised": None})
    return Result("clock", FAIL, f"not synchronised ({how})", advice, data={"synchronised": False})


def probe_api_port(enabled: bool, host: str, port: int) -> Result:
    """Can the LAN API bind its address? (Fails while a running daemon holds it.)"""
    where = f"{host}:{port}"
    if not enabled:
        return Result("api port", SKIP, "api.enabled = false")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return Result("api port", FAIL, f"cannot resolve {host}", "set api.listen to an address of this machine")
    family, kind, proto, _, addr = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
    except OSError as err:
        advice = {
            errno.EADDRINUSE: f"something listens there already (edgecam itself? `ss -ltnp 'sport = :{port}'`)",
            errno.EADDRNOTAVAIL: "that address is not on this machine; use 0.0.0.0 or one of its addresses",
            errno.EACCES: "ports below 1024 need privileges the service does not have; use 8080",
        }.get(err.errno or 0, "pick another api.listen")
        return Result("api port", FAIL, f"cannot bind {where} ({err.strerror})", advice)
    return Result("api port", OK, f"{where} is free")
