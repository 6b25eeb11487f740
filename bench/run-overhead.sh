#!/usr/bin/env bash
# `vault run` overhead over the child's own start, after unlock (issue 3).
# Times N runs each of: `true` alone; `vault ls` (open + unlock + list); and
# `vault run --agent A -- true` (open + unlock + read env + spawn + wait).
# run - ls is what `vault run` adds beyond the unlock both pay.
# Usage: bench/run-overhead.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-30}
cargo build --release -q -p vault-cli
bin=$PWD/target/release/vault
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export VAULT_HOME=$tmp/vault VAULT_PASSPHRASE_FILE=$tmp/pass
printf 'benchmark passphrase\n' >"$tmp/pass"
chmod 600 "$tmp/pass"
"$bin" init --kdf-memory-mib 64 --kdf-iterations 3 2>/dev/null
"$bin" agent add hermes 2>/dev/null
for i in $(seq 1 10); do printf 'value-%s' "$i" | "$bin" set "hermes/S$i" 2>/dev/null; done
python3 - "$bin" "$n" <<'PY'
import statistics, subprocess, sys, time
bin, n = sys.argv[1], int(sys.argv[2])
def median_ms(cmd):
    runs = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)
true_ms = median_ms(["true"])
ls_ms = median_ms([bin, "ls"])
run_ms = median_ms([bin, "run", "--agent", "hermes", "--", "true"])
print(f"true alone:                 {true_ms:7.2f} ms")
print(f"vault ls (unlock at floor): {ls_ms:7.2f} ms")
print(f"vault run -- true:          {run_ms:7.2f} ms")
print(f"run overhead after unlock:  {run_ms - ls_ms:7.2f} ms  (median of {n})")
PY
