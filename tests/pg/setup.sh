#!/usr/bin/env bash
# What the PostgreSQL tests need (issue 20), installed once (idempotent; .ci/run
# calls it): Debian's PostgreSQL server binaries. The tests start their own
# throwaway cluster (vault-testpg); the system cluster the package may start is
# not used.
set -euo pipefail

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
  else
    echo "tests/pg/setup.sh: PostgreSQL is missing and cannot be installed without root (apt-get install postgresql)" >&2
    exit 1
  fi
fi
