"""`edgecam check`: real broker, real video, real model; the checklist lines and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support.assets import model_path, video_path
from support.broker import free_port

from edge import assets
from edge.cli import main

PROJECT = Path(__file__).resolve().parent.parent


def write_config(tmp: Path, *, mqtt: str = "", cameras: str = "", detector: str = "") -> Path:
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    text = f"""
[node]
id = "check-01"
[mqtt]
host = "127.0.0.1"
connect_timeout = 3
{mqtt}
[storage]
path = "{state}"
[clips]
min_free_bytes = 1000
[api]
listen = "127.0.0.1:{free_port()}"
tokens = ["sha256:{'0' * 64}:check"]
[detector]
{detector}
{cameras}
"""
    path = tmp / "edgecam.toml"
    path.write_text(text)
    return path


def manifest_dir(tmp: Path, sha: str | None = None, fp32_file: str | None = None) -> Path:
    """A model directory whose manifest chooses FP32: the shared model, or a file that is not there."""
    model = model_path()
    d = tmp / "models"
    d.mkdir(exist_ok=True)
    entry = {"file": fp32_file or str(model), "sha256": sha or assets.sha256_file(model)}
    labels = (assets.find(assets.MODEL_LABELS) or model.with_suffix(".labels.txt")).read_text().splitlines()
    manifest = {"choice": {"precision": "fp32", "reason": "test manifest"}, "models": {"fp32": entry},
                "labels": labels}  # as `edgecam model prepare` writes it
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def run_check(capsys, config: Path, *extra: str) -> tuple[int, dict[str, str], str]:
    """Exit code, {check name: its status mark line}, whole output."""
    code = main(["check", "-c", str(config), "--timeout", "5", *extra])
    out = capsys.readouterr().out
    lines = {}
    for line in out.splitlines():
        if line[:1] in "✓✗!-" and line[1:2] == " ":
            name = line[2:].split("  ")[0].strip()
            lines[name] = line
    return code, lines, out


def assert_exit_matches(code: int, lines: dict[str, str]) -> None:
    failed = any(line.startswith("✗") for line in lines.values())
    assert code == (1 if failed else 0)


def test_all_probes_against_live_broker_and_video(tmp_path, capsys, broker):
    road = video_path("road")
    cameras = f'[cameras.road]\nsource = "{road}"\n[cameras.usb]\nsource = "/dev/video99"\n'
    cfg = write_config(tmp_path, mqtt=f"port = {broker.port}", cameras=cameras,
                       detector=f'model = "{manifest_dir(tmp_path)}"')
    code, lines, out = run_check(capsys, cfg)
    assert lines["config"].startswith("✓") and "2 cameras (road, usb)" in lines["config"]
    assert lines["camera road"].startswith("✓ ")
    assert "640x360" in lines["camera road"] and "23.98 fps" in lines["camera road"]
    assert lines["camera usb"].startswith("✗ ") and "/dev/video99: no such device" in lines["camera usb"]
    assert "ls /dev/video*" in out  # one line of advice under the failure
    assert lines["model"].startswith("✓ ") and "FP32" in lines["model"]
    assert "sha256 matches manifest" in lines["model"] and "ms per inference" in lines["model"]
    assert lines["storage"].startswith("✓ ") and "writable" in lines["storage"]
    assert lines["broker"].startswith("✓ ") and f"127.0.0.1:{broker.port}" in lines["broker"]
    assert lines["api port"].startswith("✓ ")
    assert lines["clock"][0] in "✓✗!"
    assert code == 1  # the missing device fails the run


def test_json_output(tmp_path, capsys, broker):
    road = video_path("road")
    cfg = write_config(tmp_path, mqtt=f"port = {broker.port}", cameras=f'[cameras.road]\nsource = "{road}"\n',
                       detector=f'model = "{manifest_dir(tmp_path)}"')
    code = main(["check", "-c", str(cfg), "--json", "--timeout", "5"])
    doc = json.loads(capsys.readouterr().out)
    by_name = {c["name"]: c for c in doc["checks"]}
    assert list(by_name) == ["config", "camera road", "scene road", "model", "plates", "storage", "broker", "clock",
                             "api port"]
    assert by_name["scene road"]["status"] == "ok" and by_name["scene road"]["too_dark"] is False
    assert by_name["camera road"]["width"] == 640 and by_name["camera road"]["height"] == 360
    assert by_name["model"]["precision"] == "fp32" and by_name["model"]["ms"] > 0
    assert by_name["storage"]["free_bytes"] > 1000
    assert doc["ok"] == all(c["status"] != "fail" for c in doc["checks"])
    assert code == (0 if doc["ok"] else 1)


def test_broker_down(tmp_path, capsys):
    cfg = write_config(tmp_path, mqtt=f"port = {free_port()}")
    code, lines, out = run_check(capsys, cfg)
    assert lines["broker"].startswith("✗ ") and "unreachable" in lines["broker"]
    assert "is the broker running" in out
    assert code == 1


def test_broker_wrong_and_right_password(tmp_path, capsys, make_broker):
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd not installed")
    pwdb = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwdb), "cam", "s3cret"], check=True, capture_output=True)
    secured = make_broker(extra=["allow_anonymous false", f"password_file {pwdb}"])
    (tmp_path / "wrong").write_text("guess\n")
    (tmp_path / "right").write_text("s3cret\n")
    seen = {}
    for name in ("wrong", "right"):
        mqtt = f'port = {secured.port}\nusername = "cam"\npassword_file = "{tmp_path / name}"'
        seen[name] = run_check(capsys, write_config(tmp_path, mqtt=mqtt))
    code, lines, out = seen["wrong"]
    assert lines["broker"].startswith("✗ ") and "refused the login" in lines["broker"], out
    assert "mqtt.username" in out
    assert code == 1
    code, lines, out = seen["right"]
    assert lines["broker"].startswith("✓ ") and "user cam" in lines["broker"], out


def test_tls_against_plain_broker(tmp_path, capsys, broker):
    cfg = write_config(tmp_path, mqtt=f"port = {broker.port}\ntls = true")
    code, lines, out = run_check(capsys, cfg)
    assert lines["broker"].startswith("✗ ") and "TLS" in lines["broker"]
    assert code == 1


def test_model_wrong_hash(tmp_path, capsys):
    cfg = write_config(tmp_path, detector=f'model = "{manifest_dir(tmp_path, sha="0" * 64)}"')
    code, lines, out = run_check(capsys, cfg)
    assert lines["model"].startswith("✗ ")
    assert "does not match the manifest's 000000000000" in lines["model"]
    assert "edgecam model prepare" in out
    assert code == 1


def test_model_missing(tmp_path, capsys):
    cfg = write_config(tmp_path, detector=f'model = "{manifest_dir(tmp_path, fp32_file="gone.onnx")}"')
    code, lines, out = run_check(capsys, cfg)
    assert lines["model"].startswith("✗ ") and "gone.onnx is missing" in lines["model"]
    assert code == 1
    cfg = write_config(tmp_path, detector=f'model = "{tmp_path / "nothing.onnx"}"')
    code, lines, out = run_check(capsys, cfg)
    assert lines["model"].startswith("✗ ") and "nothing.onnx is missing" in lines["model"]


def test_storage_missing_and_port_taken(tmp_path, capsys):
    import socket

    cfg = write_config(tmp_path)
    text = cfg.read_text().replace(str(tmp_path / "state"), str(tmp_path / "absent"))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        text = text.replace('listen = "127.0.0.1:', f'listen = "127.0.0.1:{port}" # ')
        cfg.write_text(text)
        code, lines, out = run_check(capsys, cfg)
    assert lines["storage"].startswith("✗ ") and "does not exist" in lines["storage"]
    assert lines["api port"].startswith("✗ ") and "cannot bind" in lines["api port"]
    assert code == 1


def test_config_error_exits_2(tmp_path, capsys):
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text() + "\n[cameras.x]\nsource = 'a.mp4'\nfsp = 5\n")
    assert main(["check", "-c", str(cfg), "--config-only"]) == 2
    assert "cameras.x.fsp: unknown key" in capsys.readouterr().err


@pytest.mark.parametrize("template", ["pi-camera-module", "pi-rtsp-camera", "jetson-multi-rtsp"])
def test_templates_validate(template, capsys):
    """Every value is valid; what --config-only still flags is only the target's own files, absent here."""
    path = PROJECT / "firmware_config" / f"{template}.toml"
    code = main(["check", "-c", str(path), "--config-only", "--json"])
    doc = json.loads(capsys.readouterr().out)
    problems = doc["checks"][0].get("problems", [])
    assert code == (1 if problems else 0)
    assert all(p.endswith("does not exist") and ("'/etc/edgecam/" in p or "'/opt/edgecam/" in p) for p in problems)
    target_files = [p for p in ("/etc/edgecam/ca.crt", "/opt/edgecam/models") if Path(p).exists()]
    assert not any(f in p for f in target_files for p in problems)


def test_every_template_is_tested():
    names = sorted(p.stem for p in (PROJECT / "firmware_config").glob("*.toml"))
    assert len(names) >= 3
    assert {"pi-camera-module", "pi-rtsp-camera", "jetson-multi-rtsp"} <= set(names)


def test_tls_broker_needs_its_ca(tmp_path, capsys, make_broker):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    secured = make_broker(extra=[f"certfile {cert}", f"keyfile {key}"])
    code, lines, out = run_check(capsys, write_config(tmp_path, mqtt=f"port = {secured.port}\ntls = true"))
    assert lines["broker"].startswith("✗ ") and "certificate not trusted" in lines["broker"], out
    assert "mqtt.ca_file" in out
    mqtt = f'port = {secured.port}\ntls = true\nca_file = "{cert}"'
    code, lines, out = run_check(capsys, write_config(tmp_path, mqtt=mqtt))
    assert lines["broker"].startswith("✓ ") and "(TLS" in lines["broker"], out
    code, lines, out = run_check(capsys, write_config(tmp_path, mqtt=f"port = {secured.port}"))
    assert lines["broker"].startswith("✗ ") and "expect TLS" in out, out


def test_clock_sources(tmp_path, monkeypatch):
    from edge import clock

    assert clock.clock_synchronised() in (True, False)  # Linux: the kernel answers
    monkeypatch.setattr(clock, "SOURCES", (("adjtimex", lambda: None), ("systemd-timesyncd", clock._from_timesyncd)))
    monkeypatch.setattr(clock, "TIMESYNCD_DIR", tmp_path / "timesync")
    assert clock.clock_status() == (None, "cannot tell: adjtimex blocked, no systemd-timesyncd, no timedatectl")
    (tmp_path / "timesync").mkdir()
    assert clock.clock_status() == (False, "systemd-timesyncd")
    (tmp_path / "timesync" / "synchronized").touch()
    assert clock.clock_synchronised() is True
