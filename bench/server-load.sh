#!/usr/bin/env bash
# Load on `vault server` over loopback (issues 4 and 8), with wrk (Debian),
# installed here if missing. Phases, each SECS seconds with CONN connections:
#   health   GET /v1/health           the HTTP stack alone, no vault
#   static   nginx serving the same JSON a secret read returns (the peer: the
#            ceiling of any HTTP answer on this machine); skipped without nginx
#   read     GET /v1/secrets/NAME     token checked in memory, value decrypted,
#                                     an audit record appended (fsync'd)
#   mint     POST /v1/auth/token      named key -> token, audited
#   soak     mixed mints, reads, env and scans for SOAK seconds while another
#            agent's key is rotated by the CLI (a second process writing the
#            same database) every half second; server RSS sampled every 10 s,
#            non-2xx answers and failed rotations counted
# Usage: bench/server-load.sh [SECS] [CONN] [SOAK]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conn=${2:-64}
soak=${3:-60}
if ! command -v wrk >/dev/null; then
    apt-get install -y wrk >/dev/null 2>&1 || sudo apt-get install -y wrk >/dev/null
fi
cargo build --release -q -p vault-cli
bin=$PWD/target/release/vault
tmp=$(mktemp -d)
server=
nginx_pid=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
export VAULT_HOME=$tmp/vault VAULT_PASSPHRASE_FILE=$tmp/pass
printf 'benchmark passphrase\n' >"$tmp/pass"
chmod 600 "$tmp/pass"
"$bin" init --kdf-memory-mib 64 --kdf-iterations 3 2>/dev/null
"$bin" agent add hermes-marketing 2>/dev/null
printf 'ghp_benchmarkvalue0123456789abcdefABCDEF' | "$bin" set hermes-marketing/GITHUB_TOKEN 2>/dev/null
printf 'sk-benchmark-openai-value' | "$bin" set hermes-marketing/OPENAI_API_KEY 2>/dev/null
key=$("$bin" issue hermes-marketing-key 2>/dev/null)
"$bin" agent add codex-ci 2>/dev/null
: >"$tmp/codex.env"
chmod 600 "$tmp/codex.env"
"$bin" issue codex-ci-key --write-env "$tmp/codex.env" >/dev/null 2>&1
"$bin" target add --agent codex-ci --env-file "$tmp/codex.env" >/dev/null 2>&1

"$bin" server --listen 127.0.0.1:0 --admin-token-file "$tmp/admin" >"$tmp/out" 2>"$tmp/log" &
server=$!
for _ in $(seq 1 100); do grep -q listening "$tmp/out" 2>/dev/null && break; sleep 0.05; done
base=$(sed -n 's/^listening on //p' "$tmp/out")
rss() { awk '/VmRSS/ {print $2}' "/proc/$server/status"; }

token=$(python3 - "$base" "$key" <<'PY'
import json, sys, urllib.request
base, key = sys.argv[1], sys.argv[2]
req = urllib.request.Request(base + "/v1/auth/token", data=b'{"ttl_seconds": 3600}', method="POST",
    headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])
PY
)

# One line per phase: requests/s, p50, p99, non-2xx.
run_wrk() { # name, wrk args...
    local name=$1
    shift
    wrk -t2 -c"$conn" -d"${secs}s" --latency "$@" >"$tmp/wrk" 2>&1
    python3 - "$name" "$tmp/wrk" <<'PY'
import re, sys
name, text = sys.argv[1], open(sys.argv[2]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
def pct(p):
    m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", text)
    if not m: return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errs = re.search(r"Socket errors: (.*)", text)
print(f"{name:8s} {rps:10.0f} req/s   p50 {pct(50):7.2f} ms   p99 {pct(99):7.2f} ms   "
      f"non-2xx {bad.group(1) if bad else 0}   {('socket errors: ' + errs.group(1)) if errs else ''}")
PY
}

cat >"$tmp/mint.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"ttl_seconds": 60}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
cat >"$tmp/mixed.lua" <<LUA
local n = 0
local reqs = {}
function init(args)
    local tok = { ["Authorization"] = "Bearer $token" }
    local key = { ["Authorization"] = "Bearer $key", ["Content-Type"] = "application/json" }
    local scan = { ["Authorization"] = "Bearer $token", ["Content-Type"] = "application/json" }
    reqs[1] = wrk.format("GET", "/v1/secrets/GITHUB_TOKEN", tok)
    reqs[2] = wrk.format("GET", "/v1/env", tok)
    reqs[3] = wrk.format("POST", "/v1/auth/token", key, '{"ttl_seconds": 60}')
    reqs[4] = wrk.format("POST", "/v1/scan", scan, '{"text": "a harmless message about deploys"}')
end
function request()
    n = n + 1
    return reqs[(n % 4) + 1]
end
LUA

echo "vault server on $base, $(nproc) cores, wrk -t2 -c$conn, ${secs}s per phase"
echo "server RSS at start: $(rss) KiB"
run_wrk health "$base/v1/health"
if command -v nginx >/dev/null || apt-get install -y nginx-light >/dev/null 2>&1 || apt-get install -y nginx >/dev/null 2>&1; then
    # nginx's workers run as another user: they need to reach the file
    mkdir -p "$tmp/www"
    chmod 711 "$tmp"
    chmod 755 "$tmp/www"
    printf '{"name":"GITHUB_TOKEN","value":"ghp_benchmarkvalue0123456789abcdefABCDEF","version":1}' >"$tmp/www/secret.json"
    chmod 644 "$tmp/www/secret.json"
    cat >"$tmp/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    server { listen 127.0.0.1:18299; root $tmp/www; }
}
NGX
    nginx -c "$tmp/nginx.conf" &
    nginx_pid=$!
    sleep 0.5
    run_wrk static "http://127.0.0.1:18299/secret.json"
    kill "$nginx_pid" 2>/dev/null || true
    nginx_pid=
fi
run_wrk read -H "Authorization: Bearer $token" "$base/v1/secrets/GITHUB_TOKEN"
run_wrk mint -s "$tmp/mint.lua" "$base/v1/auth/token"
echo "server RSS after phases: $(rss) KiB"
before=$(rss)
(
    ok=0 failed=0
    end=$((SECONDS + soak))
    while [ "$SECONDS" -lt "$end" ]; do
        if "$bin" rotate codex-ci-key >/dev/null 2>>"$tmp/rotate.err"; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
        sleep 0.5
    done
    echo "$ok $failed" >"$tmp/rotations"
) &
rotator=$!
(
    while kill -0 "$rotator" 2>/dev/null; do sleep 10; printf '%s ' "$(rss)"; done
    echo
) >"$tmp/rss" &
sampler=$!
secs=$soak run_wrk soak -s "$tmp/mixed.lua" "$base/"
wait "$rotator" "$sampler" || true
read -r rot_ok rot_failed <"$tmp/rotations"
echo "rotations of another agent's key during the soak: $rot_ok done, $rot_failed failed"
[ "$rot_failed" = 0 ] || sort "$tmp/rotate.err" | uniq -c | head -5
echo "server RSS (KiB) before the soak $before, every 10 s: $(cat "$tmp/rss")-> after $(rss)"
echo "server memory after the soak (KiB): $(awk '/^(Anonymous|Shared_Clean|Shared_Dirty|Private_Dirty):/ {printf "%s %s  ", $1, $2}' "/proc/$server/smaps_rollup")"
echo "vault files after the soak: $(du -k "$VAULT_HOME"/* | awk '{printf "%s %s KiB  ", $2, $1}' | sed "s|$VAULT_HOME/||g")"
python3 - "$base" "$tmp/admin" <<'PY'
import sys, urllib.request
admin = open(sys.argv[2]).read().strip()
req = urllib.request.Request(sys.argv[1] + "/metrics", headers={"Authorization": "Bearer " + admin})
text = urllib.request.urlopen(req).read().decode()
fives = sum(int(float(l.rsplit(" ", 1)[1])) for l in text.splitlines()
            if l.startswith("vault_requests_total") and 'status="5' in l)
total = sum(int(float(l.rsplit(" ", 1)[1])) for l in text.splitlines()
            if l.startswith("vault_requests_total"))
print(f"server counted {total} requests, {fives} answered 5xx")
PY
if grep -q "database is locked" "$tmp/log"; then echo "FAIL: database is locked in the server log"; exit 1; fi
