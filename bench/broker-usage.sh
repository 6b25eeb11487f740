#!/usr/bin/env bash
# What usage accounting and egress scanning cost the broker (issue 16): the
# same vault served by two `vault server --broker` processes, one with
# accounting (the default) and one with --no-usage-accounting, in the same
# run, against one local TLS model API answering OpenAI-shaped JSON with
# usage. Two agents with the same egress rule: hermes scans what it sends
# (`egress_scan` at its default, block), plain does not (`egress_scan =
# "off"`). Three configurations: neither (plain through the unaccounting
# broker), accounting only (plain through the accounting one) and both
# (hermes through the accounting one). Each round sends REQS POSTs of a
# 16 KiB body to /v1/chat/completions through each in turn (CONC keep-alive
# client threads), so load on the machine hits all alike. Prints throughput
# and p50/p99 latency per configuration and each one's cost against neither.
# Usage: bench/broker-usage.sh [REQS] [CONC] [ROUNDS]
#   BIN=PATH  a vault binary to measure instead of building this tree's
set -euo pipefail
cd "$(dirname "$0")/.."
reqs=${1:-400}
conc=${2:-4}
rounds=${3:-3}
[ -n "${BIN:-}" ] || cargo build --release -q -p vault-cli
bin=${BIN:-$PWD/target/release/vault}
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
export VAULT_HOME=$tmp/vault VAULT_PASSPHRASE_FILE=$tmp/pass
printf 'benchmark passphrase\n' >"$tmp/pass"
chmod 600 "$tmp/pass"
"$bin" init --kdf-memory-mib 64 --kdf-iterations 3 2>/dev/null

# the model API: Python's ssl server with a throwaway CA and a leaf for 127.0.0.2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" \
    -out "$tmp/ca.pem" -days 1 -subj /CN=bench-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/api.key" \
    -out "$tmp/api.csr" -subj /CN=127.0.0.2 2>/dev/null
printf 'subjectAltName=IP:127.0.0.2\nbasicConstraints=CA:FALSE\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/api.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -out "$tmp/api.pem" -days 1 -extfile "$tmp/ext" 2>/dev/null
python3 - "$tmp" <<'PY' &
import http.server, json, ssl, sys
tmp = sys.argv[1]
body = json.dumps({"id": "c", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 4096, "completion_tokens": 16, "total_tokens": 4112}}).encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body in two writes: no 40 ms delayed-ACK stall
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.2", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(tmp + "/api.pem", tmp + "/api.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(tmp + "/api.port", "w").write(str(srv.server_address[1]))
srv.serve_forever()
PY
pids+=($!)
for _ in $(seq 1 100); do [ -s "$tmp/api.port" ] && break; sleep 0.05; done
port=$(cat "$tmp/api.port")

printf '[[egress]]\nhost = "127.0.0.2:%s"\nsecret = "OPENAI_API_KEY"\nauth = "bearer"\n' "$port" >"$tmp/p.toml"
"$bin" agent add hermes --policy "$tmp/p.toml" 2>/dev/null
printf 'sk-benchmark-openai-value' | "$bin" set hermes/OPENAI_API_KEY 2>/dev/null
key=$("$bin" issue hermes-key 2>/dev/null)
{ printf 'egress_scan = "off"\n'; cat "$tmp/p.toml"; } >"$tmp/plain.toml"
"$bin" agent add plain --policy "$tmp/plain.toml" 2>/dev/null
printf 'sk-benchmark-openai-value' | "$bin" set plain/OPENAI_API_KEY 2>/dev/null
plain_key=$("$bin" issue plain-key 2>/dev/null)

# Not in a command substitution: its subshell would keep the pid from the
# cleanup, and the servers would outlive the bench.
start() { # name, extra flags...; sets $addr to the broker's address
    local name=$1
    shift
    "$bin" server --listen 127.0.0.1:0 --admin-token-file "$tmp/admin-$name" \
        --broker 127.0.0.1:0 --broker-upstream-ca "$tmp/ca.pem" \
        --broker-allow-private 127.0.0.0/8 "$@" >"$tmp/out-$name" 2>"$tmp/log-$name" &
    pids+=($!)
    for _ in $(seq 1 200); do grep -q '^listening' "$tmp/out-$name" 2>/dev/null && break; sleep 0.05; done
    addr=$(sed -n 's/^broker listening on http:\/\///p' "$tmp/out-$name")
}
start on
on=$addr
start off --no-usage-accounting
off=$addr
"$bin" --json usage >/dev/null # the vault opens fine with both running

python3 - "$on" "$off" "$key" "$plain_key" "$port" "$reqs" "$conc" "$rounds" <<'PY'
import base64, http.client, json, ssl, sys, threading, time
on, off, key, plain_key, port, reqs, conc, rounds = sys.argv[1:]
reqs, conc, rounds = int(reqs), int(conc), int(rounds)
basic = lambda k: "Basic " + base64.b64encode(("agent:" + k).encode()).decode()
body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 16340}]}).encode()
assert len(body) >= 16 * 1024
def run(broker, key):
    auth = basic(key)
    host, bport = broker.rsplit(":", 1)
    lat, lock = [], threading.Lock()
    def worker(n):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the broker's leaf; trust is not what is measured
        c = http.client.HTTPSConnection(host, int(bport), context=ctx, timeout=30)
        c.set_tunnel("127.0.0.2", int(port), headers={"Proxy-Authorization": auth})
        mine = []
        for _ in range(n):
            t = time.perf_counter()
            c.request("POST", "/v1/chat/completions", body=body,
                      headers={"content-type": "application/json", "authorization": "Bearer vault-brokered"})
            r = c.getresponse()
            r.read()
            assert r.status == 200, (r.status, r.read()[:300])
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)
    threads = [threading.Thread(target=worker, args=(reqs // conc,)) for _ in range(conc)]
    t = time.perf_counter()
    for th in threads: th.start()
    for th in threads: th.join()
    wall = time.perf_counter() - t
    lat.sort()
    return len(lat) / wall, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000
configs = [("neither", off, plain_key), ("accounting", on, plain_key), ("both", on, key)]
for _, broker, k in configs:
    run(broker, k)  # warm each: connections, leaves, the vault's caches
res = {name: [] for name, _, _ in configs}
for _ in range(rounds):
    for name, broker, k in configs:
        res[name].append(run(broker, k))
def best(name):
    rs = res[name]
    return max(r[0] for r in rs), min(r[1] for r in rs), min(r[2] for r in rs)
print(f"{reqs} requests x {rounds} rounds, {conc} connections, 16 KiB bodies; best round of each")
base = best("neither")
for name, _, _ in configs:
    t, p50, p99 = best(name)
    line = f"{name + ':':12} {t:7.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
    if name != "neither":
        line += f"  cost {100 * (1 - t / base[0]):+.1f} % throughput, {p99 - base[2]:+.2f} ms p99"
    print(line)
PY
sleep 0.5 # the writer's last batch
"$bin" --json usage | python3 -c 'import json,sys; v=json.load(sys.stdin); print("recorded:", sum(r["requests"] for r in v["egress"]["rows"]), "requests,", v["egress"]["dropped_records"], "dropped")'
