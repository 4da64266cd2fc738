#!/usr/bin/python3
"""A real multi-client RTSP server for tests, on Debian's gst-rtsp-server (system python3 + gi).

An ffmpeg child paces the file in real time (``-re``, looping, stream copy) into
MPEG-TS over local UDP; gst-rtsp-server re-serves that one live stream to every
client. ``tsdemux ignore-pcr=true`` keeps clients at full rate (NOTES.md).
Prints ``READY <url>`` when it accepts clients. The ffmpeg child dies with us.
``--mount /main=A.mp4 --mount /sub=B.mp4`` serves several mounts from one
process (a camera's main and sub stream), each looping its own file.
``--one-feeder``: one ffmpeg paces every mount's file (one clock, as a camera's
one encoder gives its main and sub the same moments); without it each mount
has its own ffmpeg, whose start-up times differ by up to a few hundred ms.
"""

import argparse
import ctypes
import signal
import socket
import subprocess
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--video")
    ap.add_argument("--mount", action="append", default=[], metavar="/PATH=FILE")
    ap.add_argument("--one-feeder", action="store_true")
    args = ap.parse_args()
    mounts = [tuple(m.split("=", 1)) for m in args.mount]
    if args.video:
        mounts.insert(0, (args.path, args.video))
    if not mounts:
        ap.error("give --video FILE or --mount /PATH=FILE")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    feeders = []
    ports = [_udp_port() for _ in mounts]
    head = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]

    def source(video: str) -> list:
        return ["-re", "-stream_loop", "-1", "-i", video]

    def sink(i: int, udp: int) -> list:
        return ["-map", f"{i}:v:0", "-c", "copy", "-f", "mpegts", f"udp://127.0.0.1:{udp}?pkt_size=1316"]

    if args.one_feeder:
        argv = head + [a for _, video in mounts for a in source(video)]
        argv += [a for i, udp in enumerate(ports) for a in sink(i, udp)]
        feeders.append(subprocess.Popen(argv, preexec_fn=_die_with_parent))
    else:
        for (_, video), udp in zip(mounts, ports, strict=True):
            feeders.append(subprocess.Popen(head + source(video) + sink(0, udp), preexec_fn=_die_with_parent))
    for (path, _video), udp in zip(mounts, ports, strict=True):
        pipeline = (
            f'( udpsrc address=127.0.0.1 port={udp} caps="video/mpegts,systemstream=(boolean)true" '
            "! tsdemux ignore-pcr=true ! queue ! h264parse config-interval=-1 "
            "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(pipeline)
        factory.set_shared(True)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        server.get_mount_points().add_factory(path, factory)
    if server.attach(None) == 0:
        print("attach failed (port busy?)", file=sys.stderr)
        for feeder in feeders:
            feeder.kill()
        sys.exit(2)
    print(f"READY rtsp://127.0.0.1:{args.port}{mounts[0][0]}", flush=True)
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    try:
        loop.run()
    finally:
        for feeder in feeders:
            feeder.kill()


if __name__ == "__main__":
    main()
