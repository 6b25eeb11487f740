#!/usr/bin/env bash
# Console page times and the query plans behind them (issue 17): seeds 50
# agents, 500 keys and an audit trail of AUDIT_ROWS records, then requests
# every page ROUNDS times through the real router. PROFILE=release for
# optimised numbers (the default dev profile is the pessimistic case).
# Usage: [AUDIT_ROWS=100000] [ROUNDS=20] [PROFILE=dev|release] bench/console.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-dev}
flag=
[ "$profile" = release ] && flag=--release
CARGO_INCREMENTAL=0 cargo run -q $flag -p vault-server --example console_bench
