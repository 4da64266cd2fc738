"""Fleet benchmark (#18.3): N simulated nodes -> one mosquitto -> `edgecam central run` x 1, 2, 4 -> PostgreSQL.

    PYTHONPATH=. nice -n 10 python benchmarks/fleet.py [--nodes 1000] [--seconds 600] [--consumers 1,2,4]
        [--procs 8] [--server postgresql://postgres@127.0.0.1:5432/test] [--write benchmarks/fleet.md]

Each simulated node is the project's own ``OutboxService`` (durable SQLite outbox, its own paho
connection, end-to-end acks) with its database on a tmpfs (``--dir``, default /dev/shm), submitting one
event per second; nodes are spread over ``--procs`` worker processes. Central is the real
``python -m edge central run`` (MQTT 5, ``$share/fleet/...``, persistent sessions) writing into a
database this script creates and drops. During each run one consumer is killed (SIGKILL, restarted 3 s
later, as systemd would) at 1/4 of the run and the broker at 1/2 (SIGKILL, restarted 3 s later with its
persistence file); the second half leaves time for the nodes' end-to-end resend (30 s after central's
watermark passes a row it never got). Nodes then run until their outboxes are empty (central confirmed
every row) or ``--drain`` s. Reported per consumer count: events sent, stored, lost (sent but never stored),
doubled rows, consumer lag (``received_at - ts``) p50/p99 outside the fault windows (kill .. restart +
15 s), central CPU-s per 1,000 events (all consumers, killed ones included), broker CPU-s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULT_TAIL = 15.0  # seconds after a restart still counted as the fault window


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (and its reaped children), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick


# -- the simulated nodes (one worker process holds many) ------------------------------------------

def node_names(first: int, count: int) -> list[str]:
    return [f"fleet{i:05d}" for i in range(first, first + count)]


def register_fleet(store, base: Path, count: int) -> None:
    """Give every simulated node its Ed25519 key and register it, as `register-node` would (#18.1)."""
    from edge.clips.evidence import NodeKey

    for node in node_names(0, count):
        key = NodeKey.load_or_create(base / node / "keys")
        store.register_node(node, key.public_text(), None)


def worker(args: argparse.Namespace) -> int:
    from edge.clips.evidence import NodeKey
    from edge.outbox.publisher import MqttSettings
    from edge.outbox.service import OutboxService
    from edge.signing import MessageSigner
    from edge.types import Event, EventType

    base = Path(args.dir)
    nodes = node_names(args.first, args.count)
    services = []
    for node in nodes:
        (base / node).mkdir(parents=True, exist_ok=True)
        signer = MessageSigner(NodeKey.load_or_create(base / node / "keys"), node)  # made by register_fleet
        svc = OutboxService(base / node / "outbox.db", node,
                            MqttSettings(port=args.port, client_id=f"edgecam-{node}", reconnect_min=0.5,
                                         reconnect_max=2.0),
                            reserve_bytes=0, signer=signer)
        svc.start()
        services.append(svc)
    sent = dict.fromkeys(nodes, 0)
    t0 = float(args.t0)
    for tick in range(int(args.seconds)):
        for k, (node, svc) in enumerate(zip(nodes, services, strict=True)):
            at = t0 + tick + k / len(nodes)
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)
            n = sent[node] + 1
            svc.submit(Event(id=f"{node}-{n}", type=EventType.END, camera="gate", label="motorcycle", score=0.8,
                             ts=time.time(), time=float(n), box=(0.1, 0.2, 0.3, 0.4), zones=("road",),
                             duration=2.0, heading="left", color="white", color_score=0.7))
            sent[node] = n
    # End to end, a node deletes a row only when central's watermark covers it, and resends rows central
    # passed over (lost between broker and central): wait for that, as a running node would, then stop.
    deadline = time.time() + args.drain
    while time.time() < deadline and any(svc.depth() for svc in services):
        time.sleep(0.5)
    undrained = sum(1 for svc in services if svc.depth())
    for svc in services:
        svc.stop(5.0)
    Path(args.out).write_text(json.dumps({"sent": sent, "undrained": undrained}))
    return 0


# -- one run ---------------------------------------------------------------------------------------

class Broker:
    def __init__(self, work: Path, port: int) -> None:
        self.conf = work / "mosquitto.conf"
        self.conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {work}/\n"
            "autosave_interval 5\nmax_queued_messages 1000000\nmax_inflight_messages 100\n"
            + ("user root\n" if os.geteuid() == 0 else ""))
        self.cpu_done = 0.0
        self.proc = self._start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.conf)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_and_restart(self, pause: float) -> None:
        self.cpu_done += cpu_seconds(self.proc.pid)
        self.proc.kill()
        self.proc.wait(10)
        time.sleep(pause)
        self.proc = self._start()

    def cpu(self) -> float:
        return self.cpu_done + cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Central:
    """``python -m edge central run`` processes sharing one subscription group."""

    def __init__(self, work: Path, port: int, url: str, count: int) -> None:
        self.work, self.port, self.url = work, port, url
        self.cpu_done = 0.0
        self.procs = [self._start(i) for i in range(count)]

    def _start(self, i: int) -> subprocess.Popen:
        cfg = self.work / f"central{i}.toml"
        cfg.write_text(f'[mqtt]\nport = {self.port}\nprotocol = "5"\nclient_id = "fleet-central-{i}"\n'
                       f'shared_group = "fleet"\n\n[database]\nurl = "{self.url}"\n')
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        log = open(self.work / f"central{i}.log", "ab")  # noqa: SIM115 - lives as long as the process
        return subprocess.Popen([sys.executable, "-m", "edge", "central", "run", "-c", str(cfg)],  # our own nice
                                stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=ROOT)

    def kill_and_restart(self, i: int, pause: float) -> None:
        self.cpu_done += cpu_seconds(self.procs[i].pid)
        self.procs[i].kill()
        self.procs[i].wait(10)
        time.sleep(pause)
        self.procs[i] = self._start(i)

    def cpu(self) -> float:
        return self.cpu_done + sum(cpu_seconds(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            p.wait(30)


def one_run(args: argparse.Namespace, consumers: int) -> dict[str, object]:
    import psycopg

    name = f"edgecam_fleet_{os.getpid()}_{consumers}"
    with psycopg.connect(args.server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = args.server.rsplit("/", 1)[0] + "/" + name
    work = Path(tempfile.mkdtemp(prefix="edgecam-fleet-", dir=args.dir))
    port = free_port()
    broker = Broker(work, port)
    central = None
    workers: list[subprocess.Popen] = []
    faults: list[tuple[float, float]] = []
    try:
        time.sleep(0.5)
        from edge.central.store import Store

        with Store(url) as store:  # the schema once, before the consumers race for it
            register_fleet(store, work / "nodes", args.nodes)  # central stores only what a registered key signed
        central = Central(work, port, url, consumers)
        time.sleep(4.0)  # consumers subscribed before the first event (a shared group keeps no backlog before)
        t0 = time.time() + 5.0 + args.nodes * 0.01
        per = -(-args.nodes // args.procs)
        for w in range(args.procs):
            first, count = w * per, min(per, args.nodes - w * per)
            if count <= 0:
                break
            workers.append(subprocess.Popen(
                [sys.executable, __file__, "--worker", "--first", str(first), "--count",
                 str(count), "--port", str(port), "--seconds", str(args.seconds), "--t0", str(t0),
                 "--dir", str(work / "nodes"), "--out", str(work / f"worker{w}.json"), "--drain", "120"],
                env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT))
        cpu0_central, cpu0_broker = central.cpu(), broker.cpu()
        time.sleep(max(0.0, t0 + args.seconds / 4 - time.time()))
        k = time.time()
        central.kill_and_restart(0, 3.0)
        faults.append((k, time.time() + FAULT_TAIL))
        time.sleep(max(0.0, t0 + args.seconds / 2 - time.time()))
        k = time.time()
        broker.kill_and_restart(3.0)
        faults.append((k, time.time() + FAULT_TAIL))
        for w in workers:
            w.wait(args.seconds + 300)
        sent: dict[str, int] = {}
        undrained = 0
        for path in sorted(work.glob("worker*.json")):
            data = json.loads(path.read_text())
            sent.update(data["sent"])
            undrained += data["undrained"]
        expected = sum(sent.values())
        deadline = time.time() + 60
        with psycopg.connect(url, autocommit=True) as conn:
            while time.time() < deadline:
                if conn.execute("SELECT count(*) FROM event_keys").fetchone()[0] >= expected:
                    break
                time.sleep(1.0)
            cpu_central, cpu_broker = central.cpu() - cpu0_central, broker.cpu() - cpu0_broker
            stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            distinct = conn.execute("SELECT count(*) FROM (SELECT DISTINCT node, seq FROM events) t").fetchone()[0]
            present = dict(conn.execute("SELECT node, count(*) FROM events GROUP BY node").fetchall())
            lags = conn.execute("SELECT received_at - ts, ts FROM events").fetchall()
            have = conn.execute("SELECT node, seq FROM events").fetchall()
        lost = sum(max(0, n - present.get(node, 0)) for node, n in sent.items())
        missing = sorted({(node, seq) for node, n in sent.items() for seq in range(1, n + 1)} - set(have))
        if args.keep_logs:
            shutil.copytree(work, args.keep_logs / f"run{consumers}", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.db*", "*.reserve"))
        clean = sorted(lag for lag, ts in lags if not any(a <= ts <= b for a, b in faults))
        in_fault = sorted(lag for lag, ts in lags if any(a <= ts <= b for a, b in faults))

        def pct(values: list[float], q: float) -> float | None:
            return round(values[min(len(values) - 1, int(q * len(values)))], 3) if values else None

        return {"consumers": consumers, "nodes": args.nodes, "seconds": args.seconds, "sent": expected,
                "stored": stored, "lost": lost, "doubled": stored - distinct, "undrained_nodes": undrained,
                "lag_p50": pct(clean, 0.5), "lag_p99": pct(clean, 0.99), "lag_max": pct(clean, 1.0),
                "fault_lag_p99": pct(in_fault, 0.99), "fault_lag_max": pct(in_fault, 1.0),
                "central_cpu_per_1000": round(1000 * cpu_central / max(expected, 1), 3),
                "central_cpu_s": round(cpu_central, 1), "broker_cpu_s": round(cpu_broker, 1),
                "broker_cpu_per_1000": round(1000 * cpu_broker / max(expected, 1), 3),
                "rate": round(expected / args.seconds, 1), "missing_sample": missing[:20],
                "faults_at": [round(a - t0, 1) for a, _ in faults]}
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        if central is not None:
            central.stop()
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(args.server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def render(rows: list[dict[str, object]], argv: list[str]) -> str:
    out = [f"### Fleet: {rows[0]['nodes']} nodes x {rows[0]['seconds']} s, one event per node per second"
           f" ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}, {platform.machine()},"
           f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})",
           "",
           "command: `PYTHONPATH=. nice -n 10 python benchmarks/fleet.py " + " ".join(argv) + "`",
           "",
           "| consumers | sent | stored | lost | doubled | lag p50 | lag p99 | lag max | p99 in fault windows |"
           " central CPU-s / 1,000 ev | broker CPU-s (per 1,000) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['consumers']} | {r['sent']:,} | {r['stored']:,} | {r['lost']} | {r['doubled']} |"
                   f" {r['lag_p50']} s | {r['lag_p99']} s | {r['lag_max']} s | {r['fault_lag_p99']} s |"
                   f" {r['central_cpu_per_1000']} | {r['broker_cpu_s']} ({r['broker_cpu_per_1000']}) |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--consumers", default="1,2,4")
    ap.add_argument("--procs", type=int, default=8, help="worker processes holding the simulated nodes")
    ap.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--dir", default="/dev/shm", help="a tmpfs for the nodes' outboxes and the broker")
    ap.add_argument("--write", type=Path, help="also write the markdown table here")
    ap.add_argument("--keep-logs", type=Path, help="copy the consumers' logs and the broker config here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for opt in ("--first", "--count", "--port", "--t0", "--out", "--drain"):
        ap.add_argument(opt, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        args.first, args.count, args.port, args.drain = int(args.first), int(args.count), int(args.port), \
            float(args.drain)
        return worker(args)
    rows = []
    for c in (int(x) for x in args.consumers.split(",")):
        row = one_run(args, c)
        print(json.dumps(row), flush=True)
        rows.append(row)
    text = render(rows, sys.argv[1:])
    print(text)
    if args.write:
        args.write.write_text(text + "\n")
    return 0 if all(r["lost"] == 0 and r["doubled"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
