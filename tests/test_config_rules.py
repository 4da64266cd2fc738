"""Config rules that `check` and the daemon share (#13.8, #13.9, #14.9, #14.13): one validation, plain messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from edge.api.auth import hash_line, parse_token_lines
from edge.cli import main
from edge.config import ConfigError, parse_config
from edge.payload import MAX_EVENT_BYTES, event_body, fit_event_message, worst_case_event_bytes
from edge.types import Event, EventType, LineCrossing

ROOT = Path(__file__).resolve().parent.parent
CAM = '[cameras.gate]\nsource = "x"\n'
TRI = "polygon = [[0, 0], [1, 0], [1, 1]]\n"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text))
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 13.9: a point with one number, strict types, did-you-mean
        (CAM + "[cameras.gate.lines.northbound]\na = [0.05]\nb = [0.5, 0.5]\n",
         "cameras.gate.lines.northbound.a: [0.05] is invalid: a point needs two numbers [x, y]"),
        (CAM + "[cameras.gate.zones.z]\npolygon = [[0, 0], [1, 0], [1, 1, 1]]\n",
         "cameras.gate.zones.z.polygon.2: [1, 1, 1] is invalid: a point needs two numbers [x, y]"),
        ('[mqtt]\nport = "1883"\n',
         "mqtt.port: '1883' is invalid: it is text, not a number: write it without quotes (1883)"),
        (CAM + 'detect_fps = "5"\n',
         "cameras.gate.detect_fps: '5' is invalid: it is text, not a number: write it without quotes (5)"),
        ('[clips]\nenabled = "true"\n',
         "clips.enabled: 'true' is invalid: it is text, not a boolean: write it without quotes (true)"),
        ("[clips]\nenabled = 1\n", "clips.enabled: 1 is invalid"),
        ("[mqtt]\nkeepalive = 30.5\n", "mqtt.keepalive: 30.5 is invalid"),
        (CAM + "detect_fsp = 5\n", "cameras.gate.detect_fsp: unknown key (did you mean `detect_fps`?)"),
        (CAM + "[cameras.gate.motion]\nthreshhold = 3\n",
         "cameras.gate.motion.threshhold: unknown key (did you mean `threshold`?)"),
        ('[mqtt]\nhots = "a"\n', "mqtt.hots: unknown key (did you mean `host`?)"),
        ('[mqtt]\nzzz = "a"\n', "mqtt.zzz: unknown key"),
        # 14.13: pairs and orders
        ('[api]\ntls_cert = "/etc/edgecam/api.crt"\n',
         "api: tls_cert and tls_key must be given together (one alone would serve plain HTTP)"),
        ('[api]\ntls_key = "/etc/edgecam/api.key"\n', "api: tls_cert and tls_key must be given together"),
        ("[mqtt]\nreconnect_min = 10\nreconnect_max = 5\n", "mqtt: reconnect_min (10) is more than reconnect_max (5)"),
        ("[clips]\npre_roll = 30\nmax_clip = 10\n", "clips: pre_roll (30 s) is longer than max_clip (10 s)"),
        # 14.13: MQTT topic rules for the prefix, node id, client id
        ('[mqtt]\nprefix = "edge\\u0000cam"\n',
         "mqtt.prefix: 'edge\\x00cam' is invalid: must not hold control characters (NUL, tab, newline)"),
        ('[mqtt]\nprefix = "a/+/b"\n', "mqtt.prefix: 'a/+/b' is invalid: must not hold the MQTT wildcards"),
        ('[mqtt]\nprefix = "site/"\n', "mqtt.prefix: 'site/' is invalid: must not start or end with /"),
        ('[mqtt]\nclient_id = "n\\u0000"\n', "mqtt.client_id: 'n\\x00' is invalid: must not hold control characters"),
        ('[node]\nid = "a\\u0000b"\n', "node.id: 'a\\x00b' is invalid: use 1-64 letters, digits"),
        ('[node]\nid = "a/b"\n', "node.id: 'a/b' is invalid: use 1-64 letters, digits"),
        # 14.9: names that travel in every event are bounded
        (CAM + '[cameras.gate.zones."drive way"]\n' + TRI,
         "cameras.gate.zones.drive way: 'drive way' is invalid: use 1-32 letters, digits, '_' or '-'"),
        (CAM + f"[cameras.gate.zones.{'z' * 33}]\n" + TRI, f"cameras.gate.zones.{'z' * 33}: "),
        (CAM + f"[cameras.gate.zones.{'z' * 850}]\n" + TRI, f"cameras.gate.zones.{'z' * 37}...: 'zzz"),
        (CAM + "".join(f"[cameras.gate.zones.z{i}]\n{TRI}" for i in range(17)), "cameras.gate.zones: "),
        ('[detector]\nlabels = ["car", "' + "x" * 40 + '"]\n', "detector.labels.1: "),
        # 13.8: a token that is not a hash line is refused by config, so by check and the daemon alike
        ('[api]\ntokens = ["abc123"]\n',
         "api.tokens[0] is not 'sha256:<64 hex>:<name>' (make one with: edgecam token new)"),
    ],
)
def test_messages(text: str, expected: str) -> None:
    message = error_of(text)
    assert message.startswith(expected), message


def test_a_token_pasted_by_mistake_is_never_echoed() -> None:
    assert "S3cretTok" not in error_of('[api]\ntokens = ["S3cretTok"]\n')


def test_token_lines_the_config_accepts_are_the_lines_the_daemon_accepts() -> None:
    lines = [hash_line("t" * 43, "alice"), hash_line("u" * 43, "bob@lan")]
    cfg = parse_config({"api": {"tokens": lines}})
    assert [t.name for t in parse_token_lines(cfg.api.tokens)] == ["alice", "bob@lan"]


def test_strict_types_still_take_what_toml_writes() -> None:
    cfg = parse_config(tomllib.loads(CAM + 'detect_fps = 5\n[storage]\npath = "/tmp/x"\n'
                                     "[cameras.gate.lines.l]\na = [0, 0.5]\nb = [1, 0.5]\n"))
    assert cfg.cameras["gate"].detect_fps == 5.0 and cfg.storage.path == Path("/tmp/x")
    assert cfg.cameras["gate"].lines["l"].a == (0.0, 0.5)


# ---- #14.9: every possible event fits 1 KiB --------------------------------------------------------------


def widest_event(camera: str, zones: list[str], line: str | None) -> Event:
    """The largest event the event builder and recorder can make for this camera (their id formats)."""
    return Event(id=f"{camera}-{int(9_999_999_999.999 * 1000):x}-{10**12 - 1}", type=EventType.END, camera=camera,
                 label="motorcycle", score=0.87654, ts=9_999_999_999.999, time=1.0, box=(0.12345, 0.5, 0.98765, 1.0),
                 zones=tuple(zones), clip=f"{camera}-20261202T015409Z-e819eb", time_ok=False,
                 line=LineCrossing(line, "out") if line else None, duration=9_999_999.99)


def zones_config(node: str, camera: str, zones: list[str], line: str) -> dict:
    return {"node": {"id": node}, "cameras": {camera: {
        "source": "x", "zones": {z: {"polygon": [[0, 0], [1, 0], [1, 1]]} for z in zones},
        "lines": {line: {"a": [0, 0.5], "b": [1, 0.5]}}}}}


def test_worst_case_bounds_a_real_event_and_the_limit_is_enforced() -> None:
    node, camera, line = "n" * 64, "c" * 32, "l" * 32
    zones = [f"{'z' * 30}{i:02d}" for i in range(16)]
    fits = max(k for k in range(17) if worst_case_event_bytes(node, camera, ["motorcycle"], zones[:k], [line])
               <= MAX_EVENT_BYTES)
    assert 0 < fits < 16
    cfg = parse_config(zones_config(node, camera, zones[:fits], line))
    real = widest_event(camera, list(cfg.cameras[camera].zones), line)
    data, trimmed = fit_event_message(event_body(real), node, 2**53)
    assert trimmed == () and len(data) <= worst_case_event_bytes(node, camera, ["motorcycle"], zones[:fits], [line])
    message = error_of(_toml(zones_config(node, camera, zones[:fits + 1], line)))
    assert message.startswith(f"cameras.{camera}: an event could be ") and "over the 1024-byte limit" in message


def _toml(cfg: dict) -> str:
    """The dict above as TOML text (what an installer writes)."""
    out = [f'[node]\nid = "{cfg["node"]["id"]}"']
    for cam, c in cfg["cameras"].items():
        out.append(f'[cameras.{cam}]\nsource = "x"')
        for z in c["zones"]:
            out.append(f"[cameras.{cam}.zones.{z}]\n{TRI}")
        for line in c["lines"]:
            out.append(f"[cameras.{cam}.lines.{line}]\na = [0, 0.5]\nb = [1, 0.5]")
    return "\n".join(out) + "\n"


def test_the_reported_config_is_refused_by_check(tmp_path: Path, capsys) -> None:
    """'A zone with a long name (or many overlapping zones)': check --config-only now fails it (exit 2)."""
    zones = "".join(f"[cameras.gate.zones.{'overlapping_zone_name_long_' + str(i)}]\n{TRI}" for i in range(16))
    path = tmp_path / "edgecam.toml"
    path.write_text(f'[node]\nid = "{"node-" * 12}"\n{CAM}{zones}')
    proc = subprocess.run([sys.executable, "-m", "edge", "check", "-c", str(path), "--config-only"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("edgecam: config error: cameras.gate: an event could be ")


def test_extra_fields_past_the_limit_are_trimmed_never_dropped() -> None:
    body = {**event_body(widest_event("gate", ["a", "b"], "road")), "plate": "P" * 900, "color": "red"}
    data, trimmed = fit_event_message(body, "n1", 7)
    msg = json.loads(data)
    assert len(data) <= MAX_EVENT_BYTES and trimmed == ("plate",)  # one field is enough: only it goes
    assert msg["color"] == "red" and msg["duration"] == 9_999_999.99
    assert msg["seq"] == 7 and msg["zones"] == ["a", "b"] and msg["line"] == {"name": "road", "dir": "out"}


# ---- #13.8: check rejects what the daemon cannot use --------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgecam.toml"
    path.write_text(f'[storage]\npath = "{tmp_path}"\n' + text)
    return path


def test_check_fails_a_tls_config_whose_ca_file_is_missing(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, f'[mqtt]\ntls = true\nca_file = "{tmp_path}/ca.crt"\n[api]\nenabled = false\n')
    assert main(["check", "-c", str(path), "--config-only"]) == 1
    out = capsys.readouterr().out
    assert f"✗ config  mqtt.ca_file: '{tmp_path}/ca.crt' does not exist" in out
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    assert main(["check", "-c", str(path), "--config-only"]) == 0


def test_check_fails_missing_password_file_and_api_cert(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, f'[mqtt]\nusername = "u"\npassword_file = "{tmp_path}/pw"\n'
                           f'[api]\ntls_cert = "{tmp_path}/a.crt"\ntls_key = "{tmp_path}/a.key"\n'
                           f'tokens = ["{hash_line("t" * 43, "a")}"]\n')
    assert main(["check", "-c", str(path), "--config-only", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["checks"][0]["problems"] == [f"mqtt.password_file: '{tmp_path}/pw' does not exist",
                                            f"api.tls_cert: '{tmp_path}/a.crt' does not exist",
                                            f"api.tls_key: '{tmp_path}/a.key' does not exist"]


def test_check_warns_when_the_api_is_on_without_tokens(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, CAM)
    assert main(["check", "-c", str(path), "--config-only"]) == 0  # a warning, not a failure
    out = capsys.readouterr().out
    assert "! config" in out and "api.tokens is empty: the LAN API will refuse every request" in out
    assert out.rstrip().endswith("all checks passed, 1 warning")
    path = write(tmp_path, CAM + "[api]\nenabled = false\n")
    assert main(["check", "-c", str(path), "--config-only"]) == 0
    assert "✓ config" in capsys.readouterr().out


def test_check_fails_a_model_directory_without_manifest(tmp_path: Path, capsys) -> None:
    (tmp_path / "models").mkdir()
    path = write(tmp_path, f'[detector]\nmodel = "{tmp_path}/models"\n[api]\nenabled = false\n')
    assert main(["check", "-c", str(path), "--config-only"]) == 1
    assert f"detector.model: '{tmp_path}/models' has no manifest.json" in capsys.readouterr().out


def test_daemon_logs_what_check_fails_on(tmp_path: Path) -> None:
    """The same lists at daemon start: a config the daemon cannot fully use says so in the journal."""
    import logging

    from edge.node.daemon import Daemon

    cfg = parse_config({"storage": {"path": str(tmp_path)}, "mqtt": {"tls": True, "ca_file": f"{tmp_path}/ca"},
                        "detector": {"model": str(tmp_path / "nowhere")}})
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    logging.getLogger("edgecam").addHandler(handler)
    try:
        with pytest.raises(Exception, match="detector: no manifest.json in model directory"):
            Daemon(cfg).start()
    finally:
        logging.getLogger("edgecam").removeHandler(handler)
    assert f"config: mqtt.ca_file: '{tmp_path}/ca' does not exist" in records
    assert any(r.startswith("config: api.tokens is empty") for r in records)


def test_check_and_run_refuse_a_plain_token_alike(tmp_path: Path) -> None:
    """The reported case: check said "all checks passed", the daemon then ran with "LAN API disabled"."""
    path = write(tmp_path, '[api]\ntokens = ["abc123"]\n')
    line = "edgecam: config error: api.tokens[0] is not 'sha256:<64 hex>:<name>' (make one with: edgecam token new)"
    for command in (["check", "-c", str(path), "--config-only"], ["run", "-c", str(path)]):
        proc = subprocess.run([sys.executable, "-m", "edge", *command], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert (proc.returncode, proc.stderr.strip()) == (2, line)
