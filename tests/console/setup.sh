#!/usr/bin/env bash
# What tests/console.rs needs, installed once (idempotent; .ci/run calls it):
# Debian's Chromium (apt-get) and the pinned playwright-core (npm ci from the
# lock file). Playwright's own browser download is not used.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "tests/console/setup.sh: chromium is missing and cannot be installed without root (apt-get install chromium)" >&2
    exit 1
  fi
fi

want=$(node -p 'require("./package.json").dependencies["playwright-core"]')
have=$(node -p 'try { require("./node_modules/playwright-core/package.json").version } catch { "" }')
if [ "$have" != "$want" ]; then
  npm ci --no-audit --no-fund --ignore-scripts
fi
