#!/usr/bin/env bash
# Times vault-scan beside peer scanners over the same corpus, in the same run.
#
# Corpus: the CPython standard library on this machine (*.py, no site-packages), copied to
# target/bench-corpus so every tool reads the same bytes from the page cache.
# Peers: Kingfisher (pip kingfisher-bin, --no-validate) and detect-secrets, installed into
# target/bench-venv; ripsecrets if `ripsecrets` is on PATH. One core via `taskset -c 0`.
# Usage: bench/scan-peers.sh            (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CORPUS=$ROOT/target/bench-corpus
VENV=$ROOT/target/bench-venv
STDLIB=$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["stdlib"])')

if [ ! -d "$CORPUS" ]; then
  mkdir -p "$CORPUS"
  (cd "$STDLIB" && find . -path ./site-packages -prune -o -name '*.py' -print0 |
     xargs -0 cp --parents -t "$CORPUS")
fi
BYTES=$(find "$CORPUS" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
FILES=$(find "$CORPUS" -type f | wc -l)
echo "corpus: $CORPUS, $FILES files, $((BYTES / 1000000)) MB"

if [ ! -x "$VENV/bin/kingfisher" ] || [ ! -x "$VENV/bin/detect-secrets" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q kingfisher-bin detect-secrets
fi
cargo build -q --release -p vault-scan --example scan
VS=$ROOT/target/release/examples/scan

# cat the corpus once so every tool starts from a warm page cache
find "$CORPUS" -type f -print0 | xargs -0 cat > /dev/null

run() { # name, command...
  local name=$1; shift
  local t0 t1 rss
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o /tmp/scan-peers.rss taskset -c 0 "$@" > /tmp/scan-peers.out 2>/dev/null || true
  t1=$(date +%s.%N)
  rss=$(tail -1 /tmp/scan-peers.rss)
  awk -v n="$name" -v b="$BYTES" -v a="$t0" -v z="$t1" -v r="$rss" \
    'BEGIN {s=z-a; printf "%-16s %8.2f s %9.1f MB/s %8.0f MB peak\n", n, s, b/1e6/s, r/1024}'
}

run vault-scan "$VS" --no-ignore "$CORPUS"
"$VENV/bin/kingfisher" scan "$CORPUS" --no-validate --format json > /dev/null 2>&1 || true  # warm-up: first run unpacks/caches
run kingfisher "$VENV/bin/kingfisher" scan "$CORPUS" --no-validate --format json
if command -v ripsecrets > /dev/null; then run ripsecrets ripsecrets "$CORPUS"; fi
if [ -z "${SKIP_DETECT_SECRETS:-}" ]; then run detect-secrets "$VENV/bin/detect-secrets" scan --all-files "$CORPUS"; fi
