"""A node provisioned with the installer's own script into a temp root (for e2e and soak runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def provision_node(tmp: Path, node_id: str, rtsp_url: str, broker_port: int, api_port: int,
                   detect_fps: float = 5, camera_extra: str = "", clips_extra: str = "") -> tuple[Path, str]:
    """Run scripts/provision on a template for one camera; returns (config path, LAN API token).

    ``rtsp_url`` is the camera's source (a file works too, with ``camera_extra = "realtime = true ..."``);
    ``camera_extra`` and ``clips_extra`` are TOML lines added to the camera's and the [clips] section.
    """
    state = tmp / "root" / "var/lib/edgecam"
    template = tmp / f"{node_id}-template.toml"
    template.write_text(f"""
[node]
id = "{node_id}"
[mqtt]
host = "127.0.0.1"
port = 1883
drain_timeout = 15
reconnect_max = 2
stats_interval = 10
[storage]
path = "{state}"
[clips]
pre_roll = 2
post_roll = 2
max_clip = 30
{clips_extra}
[api]
listen = "127.0.0.1:{api_port}"
tokens = []
[cameras.road]
source = "{rtsp_url}"
detect_fps = {detect_fps}
open_timeout = 10
read_timeout = 3
reconnect_max = 2
{camera_extra}
""")
    run = subprocess.run([sys.executable, str(ROOT / "scripts/provision"), "--template", str(template),
                          "--node-id", node_id, "--broker", f"127.0.0.1:{broker_port}", "--no-tls",
                          "--root", str(tmp / "root")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    token = next(line for line in run.stdout.splitlines() if "LAN API token" in line).rsplit(" ", 1)[1]
    return tmp / "root/etc/edgecam/edgecam.toml", token


def extra_cameras(url: str, count: int, detect_fps: float = 5) -> str:
    """TOML for cameras ``cam2``..``camN`` on ``url``, appended after the template's ``road`` (``camera_extra``)."""
    return "".join(f'\n[cameras.cam{i}]\nsource = "{url}"\ndetect_fps = {detect_fps:g}\nopen_timeout = 10\n'
                   "read_timeout = 3\nreconnect_max = 2\n" for i in range(2, count + 1))
