#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints executions per target.
# Usage: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (CI uses a few seconds: keep them
# building; with TARGETs, only those run)
# FUZZ_PROFILE=dev builds the dev profile (the scanner, its automata, Argon2 and BLAKE2
# still optimised: Cargo.toml), for CI's few seconds a target: `fuzz/run.sh 3` from an
# empty target/ took 3 min 58 s so on 2 cores, 6 min 10 s with cargo-fuzz's optimised
# build, which stays the default.
# Needs cargo-fuzz (installed if missing). The stable toolchain is enough with
# RUSTC_BOOTSTRAP=1, which lets cargo-fuzz pass its sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
shift || true
only="$*"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
build=()
case ${FUZZ_PROFILE:-release} in
  release) ;;
  dev) build=(--dev) ;;
  *) echo "FUZZ_PROFILE must be release or dev, not ${FUZZ_PROFILE}" >&2; exit 2 ;;
esac

# Read-only seed corpora for the scanner targets: the fake transcripts the tests use.
samples=../vault-scan/tests/data/samples
seeds() {
  case $1 in
    scan_jsonl) echo "$samples/claude-code $samples/codex $samples/gemini $samples/hermes/sessions $samples/openclaw" ;;
    scan_chatgpt_export) echo "$samples/chatgpt-export $samples/openai-chat" ;;
    scan_slack_export) echo "$samples/slack-export" ;;
    scan_stream_chunks) echo "$samples/openai-chat $samples/hermes/sessions" ;;
  esac
}
# scan_sqlite starts from real databases, built from the samples' SQL scripts.
mkdir -p corpus/scan_sqlite
find "$samples" -name '*.sql' | while read -r sql; do
  db=corpus/scan_sqlite/$(basename "$sql" .sql).db
  [ -f "$db" ] || python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[2]); c.executescript(open(sys.argv[1]).read()); c.commit()' "$sql" "$db"
done

for target in ${only:-$(cargo fuzz list)}; do
  log=$(mktemp)
  mkdir -p "corpus/$target"
  # The server target keeps one vault and router across inputs, and every
  # request leaves audit records and revocations behind by design: memory
  # that outlives an input is state there, not a leak.
  extra=()
  asan=""
  if [ "$target" = server_bodies ]; then extra=(-detect_leaks=0); asan=detect_leaks=0; fi
  # shellcheck disable=SC2046 # seeds are word lists of directories without spaces
  if ASAN_OPTIONS="$asan" cargo fuzz run "${build[@]}" "$target" "corpus/$target" $(seeds "$target") -- -max_total_time="$secs" "${extra[@]}" >"$log" 2>&1; then
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1)
    echo "$target: ${runs:-no summary} in ${secs}s, no crash"
  else
    echo "$target: FAILED (crash or build error); log follows" >&2
    tail -40 "$log" >&2
    exit 1
  fi
  rm -f "$log"
done
