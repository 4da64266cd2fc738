"""Fetch-to-verified time on central: a 10 MB signed clip over loopback, by pull and by push.

Run:  PYTHONPATH=. nice -n 10 .venv/bin/python benchmarks/desk_fetch.py [--mb 10] [--runs 5]
Measures ``fetch_pull`` (download, clips-verify checks against the registered key, content-addressed store,
custody entry) in-process with a fresh evidence store per run; then the whole ``edgecam central fetch``
command as a process (Python start-up included); then a pull that is cut at half and resumed with Range;
then push: a signed request over a real mosquitto to the node's handler, which uploads to the desk's server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.apinode import TOKEN, DroppingProxy  # noqa: E402
from support.clipcat import DictCatalog, StillView  # noqa: E402

from edge.api.auth import hash_line  # noqa: E402
from edge.api.server import ApiServer  # noqa: E402
from edge.central.config import load_central_config  # noqa: E402
from edge.central.fetch import fetch_pull, save_node_token  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cat = DictCatalog(tmp / "node")
        (cat.root / "cam").mkdir()
        (cat.root / "cam" / "clip-1.mp4").write_bytes(os.urandom(int(args.mb * 1e6)))
        cat.add_file("clip-1", "cam/clip-1.mp4", "cam", 1_795_000_000.0, 1_795_000_060.0, ("car",))
        server = ApiServer(cat, StillView({}), "127.0.0.1", 0, [hash_line(TOKEN, "central")])
        server.start()
        (tmp / "token").write_text(TOKEN)
        times = []
        for i in range(args.runs):
            cfg_path = tmp / f"c{i}.toml"
            cfg_path.write_text(f'[database]\nurl = "sqlite:///{tmp}/c{i}.db"\n[evidence]\npath = "{tmp}/ev{i}"\n')
            cfg = load_central_config(cfg_path)
            save_node_token(Path(cfg.evidence.path), "test-node", str(tmp / "token"))
            node = {"node": "test-node", "pubkey": cat.public_key(), "api_url": server.url}
            t0 = time.perf_counter()
            stored, _new = fetch_pull(cfg, node, "clip-1", 0.0, "bench")
            times.append(time.perf_counter() - t0)
            assert stored.sha256 == cat.get("clip-1").sha256
        print(f"pull, in-process: {args.mb:g} MB fetched, verified and stored: median {statistics.median(times):.3f} s"
              f" (min {min(times):.3f}, max {max(times):.3f}, {args.runs} runs)")

        cli_cfg = tmp / "cli.toml"
        cli_cfg.write_text(f'[database]\nurl = "sqlite:///{tmp}/cli.db"\n[evidence]\npath = "{tmp}/evcli"\n')
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        edge = [sys.executable, "-m", "edge", "central"]
        subprocess.run([*edge, "register-node", "-c", str(cli_cfg), "--node", "test-node", "--pubkey",
                        cat.public_key(), "--api", server.url, "--token-file", str(tmp / "token")],
                       check=True, env=env, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([*edge, "fetch", "-c", str(cli_cfg), "--node", "test-node", "--clip", "clip-1"],
                       check=True, env=env, capture_output=True)
        print(f"pull, `edgecam central fetch` process: {time.perf_counter() - t0:.3f} s (Python start-up included)")

        proxy = DroppingProxy(server.port, after=int(args.mb * 1e6 / 2), drops=1)
        res_cfg = tmp / "res.toml"
        res_cfg.write_text(f'[database]\nurl = "sqlite:///{tmp}/res.db"\n[evidence]\npath = "{tmp}/evres"\n')
        cfg = load_central_config(res_cfg)
        save_node_token(Path(cfg.evidence.path), "test-node", str(tmp / "token"))
        node = {"node": "test-node", "pubkey": cat.public_key(), "api_url": f"http://127.0.0.1:{proxy.port}"}
        t0 = time.perf_counter()
        fetch_pull(cfg, node, "clip-1", 0.0, "bench")
        took = time.perf_counter() - t0
        ranged = sum(1 for r in proxy.requests if b"Range: bytes=" in r)
        print(f"pull cut at 50% and resumed with Range ({ranged} ranged request): {took:.3f} s"
              " (includes the client's 1 s pause before retrying)")
        proxy.close()
        print(push_bench(tmp, cat, args.mb, args.runs))
        server.stop()
    return 0


def push_bench(tmp: Path, cat: DictCatalog, mb: float, runs: int) -> str:
    """Push: signed request over a real mosquitto, the node's handler uploads to the desk's web server."""
    from support.broker import Broker

    from edge.central.push import init_key, push_fetch
    from edge.central.store import Store
    from edge.central.web import DeskServer
    from edge.node.requests import RequestHandler
    from edge.outbox.publisher import MqttSettings

    broker = Broker(tmp / "broker").start()
    times = []
    try:
        for i in range(runs):
            path = tmp / f"p{i}.toml"
            body = (f'[database]\nurl = "sqlite:///{tmp}/p{i}.db"\n[evidence]\npath = "{tmp}/evp{i}"\n'
                    f'[mqtt]\nport = {broker.port}\n')
            path.write_text(body)
            desk = DeskServer(load_central_config(path), "127.0.0.1", 0)
            desk.start()
            path.write_text(body + f'[web]\npublic_url = "{desk.url}"\n')
            cfg = load_central_config(path)
            pub, _made = init_key(Path(cfg.evidence.path))
            with Store(cfg.database.url) as store:
                store.register_node("test-node", cat.public_key(), None)
            settings = MqttSettings(port=broker.port, client_id=f"bench-node-{i}")
            handler = RequestHandler("test-node", pub, cat, tmp, settings, pause=0.2)
            handler.start()
            time.sleep(0.5)  # connected and subscribed
            node = {"node": "test-node", "pubkey": cat.public_key(), "api_url": None}
            t0 = time.perf_counter()
            push_fetch(cfg, node, "clip-1", 60.0, "bench", "bench")
            times.append(time.perf_counter() - t0)
            handler.stop()
            desk.stop()
            (tmp / "requests.db").unlink()
    finally:
        broker.stop()
    return (f"push, in-process (request over mosquitto, upload to the desk): {mb:g} MB verified and stored:"
            f" median {statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, {runs} runs)")


if __name__ == "__main__":
    sys.exit(main())
