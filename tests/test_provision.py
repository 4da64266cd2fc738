"""scripts/provision into a temp root (idempotent, secrets kept), and the install script (shellcheck, --dry-run)."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import tomllib

PROJECT = Path(__file__).resolve().parent.parent
PROVISION = PROJECT / "scripts" / "provision"


def provision(root: Path, *args: str, template: str = "pi-rtsp-camera") -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(PROVISION), "--template", template, "--node-id", "gate-01",
           "--broker", "10.1.2.3:1884", "--root", str(root), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Every path under root: (mode, sha256 of contents or 'dir')."""
    out = {}
    for path in sorted(root.rglob("*")):
        mode = oct(stat.S_IMODE(path.lstat().st_mode))
        digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        out[str(path.relative_to(root))] = (mode, digest)
    return out


def token_from(stdout: str) -> str:
    lines = [line for line in stdout.splitlines() if line.startswith("LAN API token")]
    assert len(lines) == 1, stdout
    return lines[0].rsplit(" ", 1)[1]


def test_provision_twice_gives_the_same_tree(tmp_path, capsys):
    root = tmp_path / "root"
    first = provision(root, "--no-tls")  # `check` below looks at this machine's paths: no CA file here
    assert first.returncode == 0, first.stderr
    token = token_from(first.stdout)
    before = tree(root)
    assert before["etc/edgecam/edgecam.toml"][0] == "0o640"
    assert before["var/lib/edgecam/keys"][0] == "0o700"
    assert before["var/lib/edgecam/keys/node.ed25519"][0] == "0o600"
    assert before["var/lib/edgecam/clips"][0] == "0o750"
    assert "useradd --system" in (root / "etc/edgecam/provision-pending.txt").read_text()

    second = provision(root, "--no-tls")
    assert second.returncode == 0, second.stderr
    assert "LAN API token" not in second.stdout  # shown once only
    assert tree(root) == before
    forced = provision(root, "--no-tls", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "LAN API token" not in forced.stdout
    assert tree(root) == before  # same template and args: same file, token hash kept

    config = root / "etc/edgecam/edgecam.toml"
    data = tomllib.loads(config.read_text())
    assert data["node"]["id"] == "gate-01"
    assert (data["mqtt"]["host"], data["mqtt"]["port"]) == ("10.1.2.3", 1884)
    assert data["api"]["tokens"] == [f"sha256:{hashlib.sha256(token.encode()).hexdigest()}:provision"]
    assert token not in config.read_text()
    assert "# Credentials in the URL" in config.read_text()  # the template's comments survive
    assert main(["check", "-c", str(config), "--config-only", "--json"]) in (0, 1)
    problems = json.loads(capsys.readouterr().out)["checks"][0].get("problems", [])
    assert problems == ([] if Path("/opt/edgecam/models").exists()
                        else ["detector.model: '/opt/edgecam/models' does not exist"])  # the target's path
    from edge.clips.evidence import NodeKey

    key = NodeKey.load_or_create(root / "var/lib/edgecam/keys")  # the daemon reads the same key
    pub = [line for line in first.stdout.splitlines() if "public key" in line][0].rsplit(" ", 1)[1]
    assert pub.startswith("ed25519:") and pub in second.stdout and pub == key.public_text()


def test_provision_every_template_and_refusals(tmp_path):
    for template in ("pi-camera-module", "pi-rtsp-camera", "jetson-multi-rtsp"):
        run = provision(tmp_path / template, "--no-tls", template=template)
        assert run.returncode == 0, run.stderr
        data = tomllib.loads((tmp_path / template / "etc/edgecam/edgecam.toml").read_text())
        assert data["mqtt"]["tls"] is False and data["node"]["id"] == "gate-01"
    bad = provision(tmp_path / "x", template="no-such-template")
    assert bad.returncode == 1 and "no template 'no-such-template'" in bad.stderr
    cmd = [sys.executable, str(PROVISION), "--template", "pi-rtsp-camera", "--node-id", "bad id!",
           "--broker", "b", "--root", str(tmp_path / "y")]
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "--node-id" in bad.stderr
    assert not (tmp_path / "y").exists()


def test_a_tls_template_needs_its_ca_file(tmp_path):
    """#13.8: `--broker H:P` with a TLS template used to keep tls = true and a ca_file that is not there."""
    bare = provision(tmp_path / "a", template="pi-rtsp-camera")
    assert bare.returncode == 1
    assert bare.stderr.strip() == (
        "provision: the template uses TLS (mqtt.tls = true) with ca_file /etc/edgecam/ca.crt, which does not exist: "
        "pass --ca-file FILE (the CA that signed the broker's certificate), or --no-tls for a plain broker")
    assert not (tmp_path / "a/etc/edgecam/edgecam.toml").exists()
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    ok = provision(tmp_path / "b", "--ca-file", str(ca), template="pi-rtsp-camera")
    assert ok.returncode == 0, ok.stderr
    data = tomllib.loads((tmp_path / "b/etc/edgecam/edgecam.toml").read_text())
    assert data["mqtt"]["tls"] is True and data["mqtt"]["ca_file"] == "/etc/edgecam/ca.crt"
    assert (tmp_path / "b/etc/edgecam/ca.crt").read_text() == ca.read_text()


def test_shellcheck_scripts():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed")
    scripts = sorted(str(p) for p in (PROJECT / "scripts").glob("*.sh"))
    assert scripts
    out = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout


def test_install_pi_dry_run_prints_the_steps(tmp_path):
    out = subprocess.run(["bash", str(PROJECT / "scripts" / "install-pi.sh"), "--dry-run", "--node-id", "gate-01",
                          "--broker", "10.1.2.3:8883", "--prefix", str(tmp_path / "opt")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "venv --system-site-packages" in text
    # a fresh prefix has no prepared model: the prepare branch, never the "kept" one
    assert f"edgecam model prepare --out {tmp_path / 'opt'}/models" in text
    assert "kept" not in text
    assert "scripts/provision --template pi-camera-module --node-id gate-01 --broker 10.1.2.3:8883" in text
    assert "systemctl enable edgecam.service" in text
    assert not (tmp_path / "opt").exists()  # a dry run changes nothing


def test_install_pi_dry_run_keeps_a_prepared_model(tmp_path):
    """A re-run (upgrade) over a prefix whose model is prepared keeps it: the other branch, asserted alone."""
    models = tmp_path / "opt" / "models"
    models.mkdir(parents=True)
    (models / "manifest.json").write_text("{}")
    out = subprocess.run(["bash", str(PROJECT / "scripts" / "install-pi.sh"), "--dry-run", "--node-id", "gate-01",
                          "--broker", "10.1.2.3:8883", "--prefix", str(tmp_path / "opt")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"kept {models} (manifest present" in out.stdout
    assert "model prepare" not in out.stdout
    assert sorted(p.name for p in (tmp_path / "opt").rglob("*")) == ["manifest.json", "models"]
