#!/usr/bin/env bash
# Creates ./.venv with the pinned stack and installs the Debian packages the demo corpus is
# built from. Idempotent: re-running on a set-up machine only checks.
# Usage: bash launch/setup_env.sh [pip extras, default "test,reference"]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-test,reference}"
APT_PACKAGES=(espeak-ng fluidsynth fluid-soundfont-gm sonic-pi-samples)
HEARVALIDATOR="hearvalidator==2021.0.2"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Debian packages missing; as root run:" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
  fi
fi

PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.installed-$(cat setup.py constraints.txt launch/setup_env.sh | sha1sum | cut -c1-12)-${EXTRAS//,/_}"
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c constraints.txt -e ".[${EXTRAS}]"
  if [[ ",$EXTRAS," == *",reference,"* ]]; then
    # HEAR's validator; it asks for the `tensorflow` distribution, which tensorflow-cpu
    # (pinned above) provides under another name, so its requirements are not resolved.
    .venv/bin/pip install -q --no-deps "$HEARVALIDATOR"
  fi
  touch "$stamp"
fi
