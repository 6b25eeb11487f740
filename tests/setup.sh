#!/usr/bin/env bash
# Command-line tools the end-to-end tests run that a minimal Debian machine may
# lack, installed once (idempotent; .ci/run calls it): curl (a real HTTP client
# through the broker), systemd-analyze (the shipped units are verified) and
# Python's venv (the SDKs and Hermes are installed from PyPI into venvs).
# Chromium and PostgreSQL have setup scripts of their own (tests/console,
# tests/pg).
set -euo pipefail

missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "tests/setup.sh: ${missing[*]} missing and cannot be installed without root (apt-get install ${missing[*]})" >&2
  exit 1
fi
