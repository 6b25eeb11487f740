#!/usr/bin/env bash
# Issue 20's speed goals, in one run on this machine: secret reads/s and p99 of
# one SQLite `vault server` (the peer: the embedded default), of one server on
# PostgreSQL and of two servers on one PostgreSQL database, with wrk; then how
# long a token revoked through one PostgreSQL server is still taken by the
# other (TRIALS revocations, p50/p99/max). The database is a throwaway cluster
# (vault-testpg's hold-db example: initdb into a temp dir, its own port, the
# same roles as e2e_pg) that shares the cores with the servers and wrk.
# Last, the statements one read sends to the database, by kind.
# Usage: bench/pg.sh [SECS] [CONN] [TRIALS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conn=${2:-64}
trials=${3:-40}
bash tests/pg/setup.sh >/dev/null
if ! command -v wrk >/dev/null; then
    apt-get install -y wrk >/dev/null 2>&1 || sudo apt-get install -y wrk >/dev/null
fi
cargo build --release -q -p vault-cli
cargo build --release -q -p vault-testpg --example hold-db
bin=$PWD/target/release/vault
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    exec 3>&- 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
printf 'benchmark passphrase\n' >"$tmp/pass"
chmod 600 "$tmp/pass"
export VAULT_PASSPHRASE_FILE=$tmp/pass

# the database: hold-db prints the owner's and the server role's URLs
mkfifo "$tmp/db-in"
target/release/examples/hold-db <"$tmp/db-in" >"$tmp/db-out" 2>"$tmp/db-err" &
pids+=($!)
exec 3>"$tmp/db-in"
for _ in $(seq 1 600); do grep -q '^url-server ' "$tmp/db-out" 2>/dev/null && break; sleep 0.1; done
owner_url=$(sed -n 's/^url-owner //p' "$tmp/db-out")
server_url=$(sed -n 's/^url-server //p' "$tmp/db-out")
[ -n "$server_url" ] || { cat "$tmp/db-err"; exit 1; }

# `vault` on VAULT_HOME $1 and database $2 (none: SQLite in VAULT_HOME)
v() {
    local home=$1 url=$2
    shift 2
    if [ -n "$url" ]; then
        VAULT_HOME=$home VAULT_DATABASE_URL=$url "$bin" "$@"
    else
        env -u VAULT_DATABASE_URL VAULT_HOME="$home" "$bin" "$@"
    fi
}
# the same vault on both backends: one agent, one secret, one named key (printed)
setup() { # VAULT_HOME, init URL ("" for SQLite), URL for the rest
    local home=$1 init_url=$2 url=$3
    v "$home" "$init_url" init --kdf-memory-mib 64 --kdf-iterations 3 >/dev/null 2>&1
    if [ -n "$init_url" ]; then
        echo grant >&3
        for _ in $(seq 1 100); do grep -q '^granted' "$tmp/db-out" && break; sleep 0.1; done
    fi
    v "$home" "$url" agent add hermes-marketing >/dev/null 2>&1
    printf 'ghp_benchmarkvalue0123456789abcdefABCDEF' |
        v "$home" "$url" set hermes-marketing/GITHUB_TOKEN >/dev/null 2>&1
    v "$home" "$url" issue hermes-marketing-key 2>/dev/null
}
serve() { # name, VAULT_HOME, URL: prints the base URL
    local name=$1 home=$2 url=$3
    v "$home" "$url" server --listen 127.0.0.1:0 \
        --admin-token-file "$tmp/$name.admin" >"$tmp/$name.out" 2>"$tmp/$name.log" &
    pids+=($!)
    for _ in $(seq 1 200); do grep -q listening "$tmp/$name.out" 2>/dev/null && break; sleep 0.05; done
    sed -n 's/^listening on //p' "$tmp/$name.out"
}
mint() { # base, key
    python3 - "$1" "$2" <<'PY'
import json, sys, urllib.request
base, key = sys.argv[1], sys.argv[2]
req = urllib.request.Request(base + "/v1/auth/token", data=b'{"ttl_seconds": 3600}', method="POST",
    headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])
PY
}
# wrk against each base at once (CONN connections split between them): one
# line, summed requests/s, the worst p99, non-2xx
read_phase() { # name, token, base...
    local name=$1 token=$2
    shift 2
    local n=$# i=0 w=()
    for base in "$@"; do
        wrk -t$((2 / n)) -c$((conn / n)) -d"${secs}s" --latency -H "Authorization: Bearer $token" \
            "$base/v1/secrets/GITHUB_TOKEN" >"$tmp/wrk.$i" 2>&1 &
        w+=($!)
        i=$((i + 1))
    done
    wait "${w[@]}"
    python3 - "$name" "$tmp"/wrk.* <<'PY'
import re, sys
name, files = sys.argv[1], sys.argv[2:]
rps = p99 = bad = 0.0
for f in files:
    text = open(f).read()
    rps += float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", text)
    v, unit = float(m.group(1)), m.group(2)
    p99 = max(p99, v / 1000 if unit == "us" else v * 1000 if unit == "s" else v)
    b = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    bad += int(b.group(1)) if b else 0
print(f"{name:24s} {rps:8.0f} reads/s   p99 {p99:7.2f} ms   non-2xx {bad:.0f}")
PY
    rm -f "$tmp"/wrk.*
}

sqlite_key=$(setup "$tmp/sqlite" "" "")
sqlite_base=$(serve sqlite "$tmp/sqlite" "")
pg_key=$(setup "$tmp/pg-a" "$owner_url" "$server_url")
pg_a=$(serve pg-a "$tmp/pg-a" "$server_url")
mkdir -m 700 "$tmp/pg-b"
pg_b=$(serve pg-b "$tmp/pg-b" "$server_url")

echo "$(nproc) cores, wrk with $conn connections in all, ${secs}s per phase, PostgreSQL $(ls /usr/lib/postgresql | sort -n | tail -1) on the same machine"
read_phase "SQLite, one server" "$(mint "$sqlite_base" "$sqlite_key")" "$sqlite_base"
pg_token=$(mint "$pg_a" "$pg_key")
read_phase "PostgreSQL, one server" "$pg_token" "$pg_a"
read_phase "PostgreSQL, two servers" "$pg_token" "$pg_a" "$pg_b"

# revocation: a token revoked through A, polled through B every 2 ms until refused
python3 - "$pg_a" "$pg_b" "$pg_key" "$trials" <<'PY'
import json, sys, time, urllib.error, urllib.request
a, b, key, trials = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def call(method, url, bearer, body=None):
    req = urllib.request.Request(url, data=body, method=method,
        headers={"Authorization": "Bearer " + bearer, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
lags = []
for _ in range(trials):
    status, body = call("POST", a + "/v1/auth/token", key, b'{"ttl_seconds": 600}')
    assert status == 200, body
    token = json.loads(body)["token"]
    assert call("GET", b + "/v1/secrets/GITHUB_TOKEN", token)[0] == 200
    assert call("POST", a + "/v1/auth/revoke", token, b"{}")[0] == 200
    revoked = time.monotonic()
    while call("GET", b + "/v1/secrets/GITHUB_TOKEN", token)[0] == 200:
        assert time.monotonic() - revoked < 10, "the other server still takes a revoked token"
        time.sleep(0.002)
    lags.append((time.monotonic() - revoked) * 1000)
lags.sort()
pct = lambda p: lags[min(len(lags) - 1, int(len(lags) * p / 100))]
print(f"revocation through A refused by B after: p50 {pct(50):.1f} ms   p99 {pct(99):.1f} ms   "
      f"max {lags[-1]:.1f} ms   ({trials} tokens)")
PY

# what one secret read sends to the database: every statement of READS reads
# through A (the cluster logs them all from here on), per read and by kind
echo log-statements >&3
for _ in $(seq 1 100); do grep -q '^logging ' "$tmp/db-out" && break; sleep 0.1; done
pg_log=$(sed -n 's/^logging //p' "$tmp/db-out")
sleep 0.5 # the reload reaches every backend
start=$(wc -c <"$pg_log")
python3 - "$pg_a" "$pg_token" <<'PY'
import sys, urllib.request
base, token = sys.argv[1], sys.argv[2]
for _ in range(20):
    req = urllib.request.Request(base + "/v1/secrets/GITHUB_TOKEN",
        headers={"Authorization": "Bearer " + token})
    assert urllib.request.urlopen(req).status == 200
PY
sleep 1 # the group commit's audit batch
tail -c +$((start + 1)) "$pg_log" | python3 -c '
import collections, re, sys
kinds = collections.Counter()
for line in sys.stdin:
    m = re.search(r"LOG:  (?:statement|execute [^:]*): (.*)", line)
    if m:
        kinds[" ".join(m.group(1).split())[:90]] += 1
total = sum(kinds.values())
print(f"statements per secret read: {total / 20:.1f} (20 reads; each is a round trip)")
for text, n in kinds.most_common(12):
    print(f"  {n / 20:5.2f}  {text}")
'
