#!/usr/bin/env bash
# Install edgecam on Raspberry Pi OS (Bookworm, 64-bit) from this checkout, as root:
#
#   sudo scripts/install-pi.sh --node-id gate-01 --broker mqtt.example.lan:8883 [--ca-file ca.crt]
#
# apt packages (picamera2, ffmpeg, ...), the project in /opt/edgecam with a venv that sees the
# system's picamera2 (--system-site-packages), the model prepared (INT8 when it pays on this CPU),
# the udev rule for /dev/dma_heap, the node provisioned (scripts/provision: config, user, token,
# signing key), `edgecam check`, and the systemd unit enabled and started.
# Idempotent: run it again to upgrade; what is already there is kept. --dry-run prints the steps.
set -euo pipefail

PREFIX=/opt/edgecam
TEMPLATE=pi-camera-module
NODE_ID=""
BROKER=""
DRY_RUN=0
NO_START=0
PROVISION_EXTRA=()
APT_PACKAGES=(python3-venv python3-pip python3-picamera2 python3-libcamera ffmpeg mosquitto-clients rsync
              ca-certificates)
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<EOF
usage: $0 --node-id ID --broker HOST[:PORT] [options]
  --template NAME   firmware_config/NAME.toml (default $TEMPLATE; also pi-rtsp-camera)
  --ca-file FILE    the broker's CA certificate (copied to /etc/edgecam/ca.crt)
  --no-tls          plain MQTT (a trusted LAN only)
  --prefix DIR      where the project goes (default $PREFIX)
  --no-start        install and enable, but do not start the service
  --dry-run         print what would be done, change nothing
EOF
}

die() { echo "install-pi: $*" >&2; exit 1; }
step() { printf '\n==> %s\n' "$*"; }

# Every change to the system goes through run: --dry-run prints it instead.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    "$@"
  fi
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --node-id) NODE_ID="${2:?--node-id needs a value}"; shift 2 ;;
      --broker) BROKER="${2:?--broker needs a value}"; shift 2 ;;
      --template) TEMPLATE="${2:?--template needs a value}"; shift 2 ;;
      --prefix) PREFIX="${2:?--prefix needs a value}"; shift 2 ;;
      --ca-file)
        [ -f "${2:?--ca-file needs a value}" ] || die "--ca-file $2: no such file"
        PROVISION_EXTRA+=(--ca-file "$(realpath "$2")"); shift 2 ;;
      --no-tls) PROVISION_EXTRA+=(--no-tls); shift ;;
      --no-start) NO_START=1; shift ;;
      --dry-run) DRY_RUN=1; shift ;;
      -h|--help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
  done
  [ -n "$NODE_ID" ] || { usage >&2; die "--node-id is required"; }
  [ -n "$BROKER" ] || { usage >&2; die "--broker is required"; }
  [ -f "$SRC/firmware_config/$TEMPLATE.toml" ] || die "no template firmware_config/$TEMPLATE.toml"
}

preflight() {
  if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo $0 ...), or with --dry-run to see the steps"
  fi
  local codename=""
  if [ -r /etc/os-release ]; then
    # shellcheck disable=SC1091
    codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  fi
  [ "$codename" = bookworm ] || echo "install-pi: note: made for Raspberry Pi OS Bookworm, this is '${codename:-unknown}'" >&2
}

install_packages() {
  step "apt packages"
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "all present: ${APT_PACKAGES[*]}"
    return
  fi
  run apt-get update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

install_project() {
  step "project in $PREFIX"
  if [ "$SRC" != "$PREFIX" ]; then
    run mkdir -p "$PREFIX"
    # --delete keeps excluded paths: the venv, prepared models and fetched assets survive upgrades.
    run rsync -a --delete --exclude /.venv --exclude /.git --exclude /models --exclude /assets \
      --exclude /test-artifacts --exclude __pycache__ "$SRC/" "$PREFIX/"
  fi
  if [ ! -x "$PREFIX/.venv/bin/python" ]; then
    # picamera2 and libcamera come from apt; PyPI's picamera2 cannot import libcamera.
    run python3 -m venv --system-site-packages "$PREFIX/.venv"
  fi
  run "$PREFIX/.venv/bin/pip" install --quiet --disable-pip-version-check -e "${PREFIX}[prepare]"
}

prepare_model() {
  step "model"
  run "$PREFIX/scripts/fetch-assets" --quiet
  if [ -f "$PREFIX/models/manifest.json" ]; then
    echo "kept $PREFIX/models (manifest present; delete it to prepare again)"
  else
    run "$PREFIX/.venv/bin/edgecam" model prepare --out "$PREFIX/models"
  fi
}

install_udev_rule() {
  step "udev rule for the camera's DMA heaps"
  run install -m 0644 "$PREFIX/systemd/60-edgecam-dma-heap.rules" /etc/udev/rules.d/60-edgecam-dma-heap.rules
  run udevadm control --reload
  run udevadm trigger --subsystem-match=dma_heap
}

provision_node() {
  step "provision node $NODE_ID"
  run "$PREFIX/.venv/bin/python" "$PREFIX/scripts/provision" --template "$TEMPLATE" --node-id "$NODE_ID" \
    --broker "$BROKER" "${PROVISION_EXTRA[@]}"
}

install_unit() {
  step "systemd unit"
  run install -m 0644 "$PREFIX/systemd/edgecam.service" /etc/systemd/system/edgecam.service
  run systemctl daemon-reload
  run systemctl enable edgecam.service
}

check_and_start() {
  step "edgecam check"
  # The API port check fails while an older daemon holds the port: stop it first.
  run systemctl stop edgecam.service || true
  if ! run runuser -u edgecam -- "$PREFIX/.venv/bin/edgecam" check -c /etc/edgecam/edgecam.toml; then
    echo "install-pi: some checks failed (above); the service starts anyway and retries what it can" >&2
  fi
  if [ "$NO_START" = 1 ]; then
    echo "not started (--no-start): systemctl start edgecam"
    return
  fi
  step "start"
  run systemctl restart edgecam.service
  echo "follow it with: journalctl -u edgecam -f"
}

main() {
  parse_args "$@"
  preflight
  install_packages
  install_project
  prepare_model
  install_udev_rule
  provision_node
  install_unit
  check_and_start
}

main "$@"
