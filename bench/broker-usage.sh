#!/usr/bin/env bash
# What usage accounting costs the broker (issue 16): the same vault served by
# two `vault server --broker` processes, one with accounting (the default) and
# one with --no-usage-accounting, in the same run, against one local TLS model
# API answering OpenAI-shaped JSON with usage. Each round sends REQS POSTs of
# a 16 KiB body to /v1/chat/completions through each broker in turn (CONC
# keep-alive client threads), so load on the machine hits both alike.
# Prints throughput and p50/p99 latency per configuration and the difference.
# Usage: bench/broker-usage.sh [REQS] [CONC] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
reqs=${1:-400}
conc=${2:-4}
rounds=${3:-3}
cargo build --release -q -p vault-cli
bin=$PWD/target/release/vault
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

# the model API: Python's ssl server with a throwaway certificate for 127.0.0.2
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/api.key" -out "$tmp/api.pem" \
    -days 1 -subj /CN=127.0.0.2 -addext subjectAltName=IP:127.0.0.2 2>/dev/null
python3 - "$tmp" <<'PY' &
import http.server, json, ssl, sys
tmp = sys.argv[1]
body = json.dumps({"id": "c", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 4096, "completion_tokens": 16, "total_tokens": 4112}}).encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
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

start() { # name, extra flags...
    local name=$1
    shift
    "$bin" server --listen 127.0.0.1:0 --admin-token-file "$tmp/admin-$name" \
        --broker 127.0.0.1:0 --broker-upstream-ca "$tmp/api.pem" \
        --broker-allow-private 127.0.0.0/8 "$@" >"$tmp/out-$name" 2>"$tmp/log-$name" &
    pids+=($!)
    for _ in $(seq 1 200); do grep -q '^listening' "$tmp/out-$name" 2>/dev/null && break; sleep 0.05; done
    sed -n 's/^broker listening on http:\/\///p' "$tmp/out-$name"
}
on=$(start on)
off=$(start off --no-usage-accounting)
"$bin" --json usage >/dev/null # the vault opens fine with both running

python3 - "$on" "$off" "$key" "$port" "$reqs" "$conc" "$rounds" "$tmp" <<'PY'
import base64, http.client, json, ssl, sys, threading, time
on, off, key, port, reqs, conc, rounds, tmp = sys.argv[1:]
reqs, conc, rounds = int(reqs), int(conc), int(rounds)
auth = "Basic " + base64.b64encode(("agent:" + key).encode()).decode()
body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 16300}]}).encode()
assert len(body) >= 16 * 1024
def run(broker):
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
            assert r.status == 200, r.status
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
run(on); run(off)  # warm both: connections, leaves, the vault's caches
res = {"on": [], "off": []}
for _ in range(rounds):
    for name, broker in (("off", off), ("on", on)):
        res[name].append(run(broker))
def best(name):
    rs = res[name]
    return max(r[0] for r in rs), min(r[1] for r in rs), min(r[2] for r in rs)
(ton, p50on, p99on), (toff, p50off, p99off) = best("on"), best("off")
print(f"{reqs} requests x {rounds} rounds, {conc} connections, 16 KiB bodies; best round of each")
print(f"accounting off: {toff:7.0f} req/s  p50 {p50off:6.2f} ms  p99 {p99off:6.2f} ms")
print(f"accounting on:  {ton:7.0f} req/s  p50 {p50on:6.2f} ms  p99 {p99on:6.2f} ms")
print(f"cost: {100 * (1 - ton / toff):+.1f} % throughput, {p99on - p99off:+.2f} ms p99")
PY
sleep 0.5 # the writer's last batch
"$bin" --json usage | python3 -c 'import json,sys; v=json.load(sys.stdin); print("recorded:", sum(r["requests"] for r in v["egress"]["rows"]), "requests,", v["egress"]["dropped_records"], "dropped")'
