"""`make demo`: run a node on a sample traffic video with a local state directory.

Writes demo-state/edgecam.toml (storage, clips and outbox under demo-state/),
then runs the daemon in the foreground. A broker on 127.0.0.1:1883 receives the
events if one is running; otherwise they wait in the durable outbox.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge import assets  # noqa: E402
from edge.api.auth import hash_line  # noqa: E402
from edge.cli import main  # noqa: E402

DEMO_VIDEO = "street-securitycam-640x360-10fps.mp4"


def broker_reachable(host: str = "127.0.0.1", port: int = 1883) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def demo_token(state: Path) -> str:
    """One LAN API token for the demo, kept in demo-state/ so the page works across runs."""
    path = state / "api-token.txt"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def write_config(state: Path, video: Path) -> Path:
    state.mkdir(exist_ok=True)
    config = state / "edgecam.toml"
    token_line = hash_line(demo_token(state), "demo")
    live = "true" if os.environ.get("DEMO_LIVE") else "false"  # `make demo DEMO_LIVE=1`: play in real time, loop
    config.write_text(f"""# Written by `make demo`; edit freely, `make demo` rewrites it.
[node]
id = "demo-node"

[mqtt]
host = "127.0.0.1"
port = 1883
drain_timeout = 5

[storage]
path = "{state}"

[clips]
pre_roll = 3
post_roll = 3

[api]
listen = "127.0.0.1:8080"
tokens = ["{token_line}"]

[cameras.street]
source = "{video}"
realtime = {live}
loop = {live}
detect_fps = 5

[cameras.street.zones.road]
polygon = [[0.0, 0.45], [1.0, 0.45], [1.0, 1.0], [0.0, 1.0]]
""")
    return config


def run() -> int:
    video = assets.video(DEMO_VIDEO)
    if video is None:
        print("demo: sample video missing; run scripts/fetch-assets", file=sys.stderr)
        return 1
    config = write_config(ROOT / "demo-state", video)
    where = "the broker on 127.0.0.1:1883" if broker_reachable() else "the outbox (no broker on 127.0.0.1:1883)"
    print(f"demo: analysing {video.name}; events go to {where}; clips and outbox in demo-state/")
    print("demo: watch events with `.venv/bin/edgecam events tail --broker 127.0.0.1` in another terminal")
    print(f"demo: clips at http://127.0.0.1:8080/ while it runs (token: {demo_token(config.parent)})")
    return main(["run", "-c", str(config)])


if __name__ == "__main__":
    sys.exit(run())
