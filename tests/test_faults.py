"""The fault suite (``make faults``): issue #14's promise, end to end, through what users touch.

"Nothing already captured is lost, nothing signed is destroyed, and every loss that cannot be avoided is
counted and visible." Each scenario runs the real daemon (`edgecam run`, provisioned by the installer's
script) and, where it matters, `edgecam central run`, a real mosquitto, a real PostgreSQL (a throwaway
schema) and a real tmpfs for the full disks. They are written to the behaviour the issue demands, so
against code that still has a fault they fail for that fault's reason. Not in `make test` (marked slow):
each needs a minute or so of real time.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from pathlib import Path

import pytest
from support.assets import model_path, video_path
from support.broker import Broker, free_port, wait_port
from support.central import pg_schema
from support.faults import (
    WALLCLOCK,
    Proc,
    central_config,
    central_status,
    edgecam,
    event_lines,
    fill,
    holds_everything,
    register,
    tmpfs,
    wait_until,
)
from support.mqtt_collector import Collector
from support.node import provision_node

pytestmark = [pytest.mark.fault, pytest.mark.slow]

NODE = "fault"
LIVE_FILE = "realtime = true\nloop = true"  # a file camera that behaves like a live one: never ends
DAY = 86_400.0


@pytest.fixture
def live_node(tmp_path: Path):
    """Factory: provision a node on a looping real-time file camera; every process it starts is stopped after."""
    model_path()
    procs: list[Proc] = []

    def make(broker_port: int, clips_extra: str = "", camera_extra: str = LIVE_FILE,
             api_port: int | None = None) -> tuple[Path, str, int]:
        port = api_port or free_port()
        cfg, token = provision_node(tmp_path, NODE, str(video_path("highway")), broker_port, port, detect_fps=4,
                                    camera_extra=camera_extra, clips_extra=clips_extra)
        return cfg, token, port

    def run(cfg: Path, name: str = "node", env: dict | None = None) -> Proc:
        p = Proc(["run", "-c", str(cfg)], cfg.parent.parent.parent.parent / f"{name}.log", env=env).start()
        procs.append(p)
        return p

    make.run = run  # type: ignore[attr-defined]
    yield make
    for p in procs:
        if p.running():
            p.stop()


def _state_dir(cfg: Path) -> Path:
    return cfg.parent.parent.parent / "var/lib/edgecam"


def _running(node: Proc, timeout: float = 120) -> None:
    node.wait_log("running with 1 camera", timeout)


# ---- 8: a second daemon on the same storage ------------------------------------------------------------------


def test_second_daemon_on_the_same_storage_exits_naming_the_first(tmp_path: Path, broker: Broker, live_node) -> None:
    cfg, _token, _port = live_node(broker.port)
    first = live_node.run(cfg, "first")
    _running(first)
    # the same storage, another API port: the lock must be what stops it, not a port clash
    other = cfg.with_name("second.toml")
    other.write_text(cfg.read_text().replace(f"127.0.0.1:{_port}", f"127.0.0.1:{free_port()}"))
    assert other.read_text() != cfg.read_text()
    second = live_node.run(other, "second")
    try:
        second.proc.wait(30)  # type: ignore[union-attr]
    except Exception:
        pytest.fail("a second daemon on the same storage is still running after 30 s (#14.8: no storage lock)")
    assert second.proc.returncode != 0  # type: ignore[union-attr]
    lines = [line for line in second.text().splitlines() if str(first.pid) in line]
    assert lines, f"the second daemon's output does not name the first one's pid {first.pid}:\n{second.text()}"
    assert first.running(), "the first daemon must keep running"


# ---- 5: clips.db removed -------------------------------------------------------------------------------------


def _clip_files(state: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((state / "clips").rglob("*.mp4"))}


def _api(url: str, token: str) -> object:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_removed_clip_index_deletes_nothing_and_is_rebuilt(tmp_path: Path, broker: Broker, live_node) -> None:
    file_run = "realtime = false\nloop = false"  # a file run: records, then exits 0
    cfg, token, api_port = live_node(broker.port, camera_extra=file_run)
    state = _state_dir(cfg)
    for run in ("first", "again"):  # two file runs: two clips at least, the first one held
        done = live_node.run(cfg, run)
        done.proc.wait(240)  # type: ignore[union-attr]
        assert done.proc.returncode == 0, done.text()[-2000:]  # type: ignore[union-attr]
        if run == "first":
            held = sorted(_clip_files(state))[0].removesuffix(".mp4")
            hold = edgecam("clips", "hold", "-c", str(cfg), held)
            assert hold.returncode == 0, hold.stdout + hold.stderr
    before = _clip_files(state)
    assert len(before) >= 2, f"the file runs recorded {len(before)} clip(s)"

    for suffix in ("", "-wal", "-shm"):
        (state / f"clips.db{suffix}").unlink(missing_ok=True)
    assert file_run in cfg.read_text()
    cfg.write_text(cfg.read_text().replace(file_run, LIVE_FILE))  # now a live camera, to query the node's API
    second = live_node.run(cfg, "second")
    wait_port(api_port, timeout=120)
    after = _clip_files(state)
    lost = sorted(set(before) - set(after))
    changed = sorted(n for n in before if n in after and after[n] != before[n])
    assert not lost, f"recovery deleted {len(lost)} of {len(before)} clips after clips.db was removed: {lost}"
    assert not changed, f"recovery changed clip files: {changed}"

    url = f"http://127.0.0.1:{api_port}"
    listed = {c["id"] for c in _api(f"{url}/api/v1/clips", token)}  # type: ignore[union-attr]
    missing = sorted(n.removesuffix(".mp4") for n in before if n.removesuffix(".mp4") not in listed)
    assert not missing, f"the rebuilt index does not list {missing}"
    _running(second)
    wait_until(lambda: len(_clip_files(state)) > len(before), 120, "a new clip after the rebuild")
    time.sleep(5)
    metas = [_api(f"{url}/api/v1/clips/{cid}/meta", token) for cid in sorted(listed)]
    seqs = [m.get("record", m).get("seq") for m in metas if isinstance(m, dict)]  # type: ignore[union-attr]
    assert len(seqs) == len(set(seqs)), f"two signed records share a chain seq after the rebuild: {seqs}"
    assert second.stop() == 0


# ---- 6: the wall clock steps 40 days forward -----------------------------------------------------------------


def test_wall_clock_step_forward_ages_nothing_out(tmp_path: Path, live_node) -> None:
    """edge/clock.py has no offset; a test-only sitecustomize (support/wallclock) steps ``time.time()``."""
    broker = Broker(tmp_path / "broker")  # not started: events wait in the outbox
    cfg, _token, _port = live_node(broker.port)
    offset = tmp_path / "wall-offset"
    offset.write_text("0")
    env = {"PYTHONPATH": str(WALLCLOCK), "EDGECAM_TEST_WALL_OFFSET_FILE": str(offset)}
    node = live_node.run(cfg, "node", env=env)
    state = _state_dir(cfg)
    _running(node)
    wait_until(lambda: len(_clip_files(state)) >= 1 and event_lines(node.text()) >= 20, 180,
               "a clip and 20 events waiting in the outbox")
    clips_before = _clip_files(state)
    offset.write_text(str(40 * DAY))  # NTP corrects an RTC that was 40 days slow
    wait_until(lambda: len(_clip_files(state)) > len(clips_before) or len(_clip_files(state)) == 0, 120,
               "a clip finished after the step (retention runs then)")
    time.sleep(3)
    broker.start()
    collector = Collector(broker.port, topic=f"edgecam/{NODE}/events").start()
    try:
        assert node.stop() == 0
        emitted = event_lines(node.text())
        missing = collector.wait_seqs(set(range(1, emitted + 1)), timeout=30)
    finally:
        collector.stop()
        broker.stop()
    clips_after = _clip_files(state)
    deleted = sorted(set(clips_before) - set(clips_after))
    evicted = [line for line in node.text().splitlines() if "evicted" in line]
    assert not evicted, f"the outbox aged events out after the clock step: {evicted}"
    assert not missing, f"{len(missing)} of {emitted} events never arrived after the clock step"
    assert not deleted, f"retention deleted {len(deleted)} clips after the clock step: {deleted}"


# ---- 4: the node's disk is full and nothing may be deleted ---------------------------------------------------


def test_node_disk_full_loses_no_event(tmp_path: Path, broker: Broker, live_node) -> None:
    state = tmp_path / "root/var/lib/edgecam"
    with tmpfs(state, "24m"):
        cfg, _token, _port = live_node(broker.port, clips_extra="enabled = false")
        collector = Collector(broker.port, topic=f"edgecam/{NODE}/events", client_id="fault-disk",
                              persistent=True).start()
        try:
            node = live_node.run(cfg, "node")
            _running(node)
            wait_until(lambda: len(collector.seqs()) >= 5, 120, "first events delivered")
            filler = fill(state)
            seen = event_lines(node.text())
            wait_until(lambda: event_lines(node.text()) >= seen + 30, 120, "30 events while the disk is full")
            assert node.stop() == 0
            stopped = node.text()
            filler.unlink()
            node = live_node.run(cfg, "node")  # same log: the second run appends
            _running(node)
            time.sleep(5)
            assert node.stop() == 0
            emitted = event_lines(node.text())
            collector.wait_seqs(set(range(1, emitted + 1)), timeout=30)  # the asserts below say what is missing
        finally:
            collector.stop()
    waiting = [line for line in stopped.splitlines() if "waiting for the disk" in line]
    assert not waiting, f"events were still in RAM at shutdown with the disk full: {waiting}"
    seqs = sorted(set(collector.seqs()))
    assert seqs == list(range(1, len(seqs) + 1)), "the node's seqs have a gap"
    assert len(seqs) == emitted, f"{emitted} events emitted, {len(seqs)} delivered: lost with the disk full"


# ---- 3: broker killed with a backlog for an offline central --------------------------------------------------


def test_broker_killed_with_backlog_for_offline_central_loses_nothing(tmp_path: Path, live_node) -> None:
    # periodic autosave, as docs/central.md recommends: a kill -9 loses what came since the last save
    broker = Broker(tmp_path / "broker", autosave_interval=1800, autosave_on_changes=False).start()
    cfg, _token, _port = live_node(broker.port)
    ccfg = central_config(tmp_path / "central.toml", broker.port, f"sqlite:///{tmp_path / 'central.db'}")
    register(ccfg, cfg, NODE)
    central = Proc(["central", "run", "-c", str(ccfg)], tmp_path / "central.log").start()
    acks = Collector(broker.port, topic=f"edgecam/{NODE}/acks", client_id="fault-acks", persistent=True)
    try:
        central.wait_log("subscribed", 60)
        central.stop()  # central goes offline; its persistent session queues at the broker
        node = live_node.run(cfg, "node")
        seen = Collector(broker.port, topic=f"edgecam/{NODE}/events").start()
        _running(node)
        wait_until(lambda: len(seen.seqs()) >= 40, 180, "40 events acked by the broker for the offline central")
        seen.stop()
        last = max(seen.seqs())
        broker.kill()
        time.sleep(2)
        broker.start()
        acks.start()
        central = Proc(["central", "run", "-c", str(ccfg)], tmp_path / "central.log").start()
        central.wait_log("subscribed", 60)
        wait_until(lambda: holds_everything(central_status(ccfg, NODE), last), 90,
                   f"central to hold seqs 1..{last} after the broker lost its queue", step=2)
        watermark = [json.loads(p) for _t, p, _r in acks.raw()]
        assert watermark, f"central published nothing on edgecam/{NODE}/acks"
        assert node.stop() == 0
    except AssertionError as err:
        raise AssertionError(f"{err}; central status: {central_status(ccfg, NODE)}") from None
    finally:
        central.stop()
        if acks.client.is_connected():
            acks.stop()
        broker.stop()


# ---- 2: central's database refuses writes --------------------------------------------------------------------


def _central_refusing(tmp_path: Path, broker: Broker, live_node, db_url: str, refuse, allow) -> None:
    """Events reach central while its database refuses writes; once it accepts again, central holds all."""
    cfg, _token, _port = live_node(broker.port)
    ccfg = central_config(tmp_path / "central.toml", broker.port, db_url)
    register(ccfg, cfg, NODE)
    central = Proc(["central", "run", "-c", str(ccfg)], tmp_path / "central.log").start()
    seen = Collector(broker.port, topic=f"edgecam/{NODE}/events").start()
    try:
        central.wait_log("subscribed", 60)
        refuse()
        node = live_node.run(cfg, "node")
        _running(node)
        wait_until(lambda: len(seen.seqs()) >= 30, 180, "30 events sent while central's database refuses")
        allow()
        assert node.stop() == 0
        last = max(seen.seqs())
        wait_until(lambda: holds_everything(central_status(ccfg, NODE), last), 90,
                   f"central to hold seqs 1..{last} once its database accepts writes again", step=2)
    except AssertionError as err:
        dropped = [line for line in central.text().splitlines() if "dropped" in line][:3]
        raise AssertionError(f"{err}; central status: {central_status(ccfg, NODE)}; central log: {dropped}") from None
    finally:
        seen.stop()
        central.stop()
    assert central.proc is not None and central.proc.returncode == 0, central.text()[-2000:]


def test_central_sqlite_on_a_full_disk_loses_nothing(tmp_path: Path, broker: Broker, live_node) -> None:
    with tmpfs(tmp_path / "central-disk", "8m") as disk:
        filler: list[Path] = []
        _central_refusing(tmp_path, broker, live_node, f"sqlite:///{disk / 'events.db'}",
                          refuse=lambda: filler.append(fill(disk)), allow=lambda: filler.pop().unlink())


def test_central_postgresql_refusing_writes_loses_nothing(tmp_path: Path, broker: Broker, live_node,
                                                          pg_url: str | None) -> None:
    if pg_url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable")
    import psycopg

    with pg_schema(pg_url) as url:
        schema = url.rsplit("%3D", 1)[1]

        def sql(statement: str) -> None:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute(f"SET search_path TO {schema}")
                conn.execute(statement)

        def refuse() -> None:  # what a full PostgreSQL disk answers: SQLSTATE 53100 disk_full
            sql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; "
                "END $$")
            sql("CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON events FOR EACH ROW EXECUTE FUNCTION refuse()")

        _central_refusing(tmp_path, broker, live_node, url, refuse=refuse,
                          allow=lambda: sql("DROP TRIGGER refuse ON events"))
