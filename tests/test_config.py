"""Config: every documented key accepted, every kind of bad value rejected with its key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from edge.config import ConfigError, load_config, parse_config

FULL = """
[node]
id = "node-01"

[mqtt]
host = "broker.local"
port = 8883
prefix = "edgecam"
protocol = "5"
username = "node01"
password_file = "/etc/edgecam/mqtt.pass"
tls = true
ca_file = "/etc/edgecam/ca.pem"
cert_file = "/etc/edgecam/node.pem"
key_file = "/etc/edgecam/node.key"
drain_timeout = 10
stats_interval = 30
max_inflight = 20
outbox_max_rows = 10000

[storage]
path = "/var/lib/edgecam"

[clips]
pre_roll = 5
post_roll = 5
max_clip = 60
max_bytes = 4000000000
max_age_days = 7
min_free_bytes = 200000000

[api]
listen = "0.0.0.0:8080"
tokens = ["sha256:abababababababababababababababababababababababababababababababab:alice"]

[detector]
precision = "auto"
providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
threads = 2
labels = ["person", "car"]
min_score = 0.4
scores = { person = 0.5 }

[tracker]
min_hits = 3
max_lost = 1.5

[events]
update_interval = 1.0

[cameras.gate]
source = "/path/to/video.mp4"
realtime = false
detect_fps = 5
loop = false

[cameras.gate.motion]
threshold = 30
mask = [[[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]]

[cameras.gate.zones.driveway]
polygon = [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]

[cameras.gate.lines.road]
a = [0.0, 0.6]
b = [1.0, 0.6]

[cameras.street]
source = "rtsp://10.0.0.9:554/stream1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edgecam.toml"
    path.write_text(text)
    return path


def test_every_documented_key_is_accepted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL))
    assert cfg.node.id == "node-01"
    assert cfg.mqtt.port == 8883 and cfg.mqtt.protocol == "5" and cfg.mqtt.tls
    assert cfg.storage.path == Path("/var/lib/edgecam")
    assert cfg.api.host == "0.0.0.0" and cfg.api.port == 8080
    gate = cfg.cameras["gate"]
    assert gate.source == "/path/to/video.mp4" and gate.detect_fps == 5 and not gate.loop and not gate.realtime
    assert gate.zones["driveway"].polygon[0] == (0.1, 0.5)
    assert gate.lines["road"].a == (0.0, 0.6)
    assert cfg.cameras["street"].detect_fps == 5.0  # default
    assert cfg.detector.scores == {"person": 0.5}
    assert cfg.client_id == "edgecam-node-01"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg.mqtt.host == "127.0.0.1" and cfg.mqtt.port == 1883 and cfg.mqtt.drain_timeout == 30
    assert cfg.api.listen == "0.0.0.0:8080" and cfg.cameras == {}


CAM = '[cameras.gate]\nsource = "x"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[mqtt]\nport = 70000\n", "mqtt.port: 70000 is not a valid port (1-65535)"),
        ("[mqtt]\nport = 0\n", "mqtt.port: 0 is not a valid port (1-65535)"),
        ('[mqtt]\nport = "x"\n', "mqtt.port: 'x' is invalid"),
        ('[mqtt]\nhots = "a"\n', "mqtt.hots: unknown key"),
        ('[nodes]\nid = "a"\n', "nodes: unknown key"),
        ('[node]\nid = "bad/id"\n', "node.id: 'bad/id' is invalid"),
        ('[mqtt]\nprotocol = "4"\n', "mqtt.protocol: '4' is invalid"),
        ("[mqtt]\ndrain_timeout = -5\n", "mqtt.drain_timeout: -5 is invalid"),
        ('[api]\nlisten = "0.0.0.0:99999"\n', "api.listen: '0.0.0.0:99999' is invalid"),
        ("[cameras.gate]\ndetect_fps = 5\n", "cameras.gate.source: required key is missing"),
        (CAM + "detect_fps = -1\n", "cameras.gate.detect_fps: -1 is invalid"),
        (CAM + "lop = true\n", "cameras.gate.lop: unknown key"),
        (CAM + "[cameras.gate.zones.z]\npolygon = [[0, 0], [1, 1]]\n", "cameras.gate.zones.z.polygon"),
        (CAM + "[cameras.gate.zones.z]\npolygon = [[0, 0], [1, 1], [1.5, 0]]\n",
         "cameras.gate.zones.z.polygon.2.0: 1.5 is invalid"),
        (CAM + "[cameras.gate.lines.l]\na = [0.5, 0.5]\nb = [0.5, 0.5]\n", "cameras.gate.lines.l: "),
        ('[mqtt]\ncert_file = "/a"\n', "mqtt: "),
        ('[detector]\nprecision = "int4"\n', "detector.precision: 'int4' is invalid"),
        ('[cameras."bad name"]\nsource = "x"\n', "cameras.bad name"),
    ],
)
def test_bad_values_name_the_key_path(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text))
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_unreadable_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[mqtt\nport = 1"))


def test_cli_config_error_is_one_line_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "[mqtt]\nport = 70000\n")
    proc = subprocess.run([sys.executable, "-m", "edge", "run", "-c", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == ["edgecam: config error: mqtt.port: 70000 is not a valid port (1-65535)"]


def test_help_works_both_ways() -> None:
    for cmd in (["-m", "edge", "--help"], ["-m", "edge", "run", "--help"]):
        proc = subprocess.run([sys.executable, *cmd], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0
        assert "edgecam" in proc.stdout
