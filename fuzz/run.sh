#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints executions per target.
# Usage: fuzz/run.sh [SECONDS_PER_TARGET]   (CI uses a few seconds: keep them building)
# Needs cargo-fuzz (installed if missing). The stable toolchain is enough with
# RUSTC_BOOTSTRAP=1, which lets cargo-fuzz pass its sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
  log=$(mktemp)
  extra=()
  # The server target keeps one vault and router across inputs, and every
  # request leaves audit records and revocations behind by design: memory
  # that outlives an input is state there, not a leak.
  asan=""
  [ "$target" = server_bodies ] && extra=(-detect_leaks=0) && asan=detect_leaks=0
  if ASAN_OPTIONS="$asan" cargo fuzz run "$target" -- -max_total_time="$secs" "${extra[@]}" >"$log" 2>&1; then
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1)
    echo "$target: ${runs:-no summary} in ${secs}s, no crash"
  else
    echo "$target: FAILED (crash or build error); log follows" >&2
    tail -40 "$log" >&2
    exit 1
  fi
  rm -f "$log"
done
