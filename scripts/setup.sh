#!/usr/bin/env bash
# Create .venv and install sclc-lightning with its test dependencies. Idempotent: a second run
# only checks a stamp. Offline-safe: torch and torchvision come from pip's local wheels here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.sclc-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # Chromium from the Debian packages, for the report's browser test (skipped without it).
  if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } \
      || echo "setup: chromium could not be installed; the report's browser test will be skipped" >&2
  fi
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch 2.14.1 + torchvision 0.29.1 work together with torch-fidelity and Lightning.
  .venv/bin/python -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
  .venv/bin/python -m pip install --quiet -e ".[dev]"
  rm -f .venv/.sclc-setup-*
  touch "$stamp"
fi
