#!/usr/bin/env bash
# The egress broker's cost on loopback (issue 15), beside mitmproxy doing the
# same interception (terminate TLS, add the Authorization header, forward over
# verified TLS, stream answers) in the same run. Prints, for direct / broker /
# mitmproxy:
#   - keep-alive small JSON GETs: requests/s and latency p50/p99 (added
#     latency = through a proxy minus direct);
#   - RSS of the proxy process idle and with IDLE (1,000) open tunnels;
#   - each event's lag for a streamed (SSE) answer, events 100 ms apart.
# Upstreams on 127.0.0.2 under a CA made here: `vault server --tls-cert`
# (GET /v1/health, a small JSON answer, hyper) and a Python SSE server.
# Load client: vault-broker's example `broker-load` (tokio + rustls), so the
# client is not the bottleneck. Release build. 2 cores are shared by the
# client, the proxy and the upstream: figures are for comparison in one run.
# Usage: bench/broker.sh     (SECS=5 CONNS=16 IDLE=1000 PYTHON=... MITM_VERSION=...)
#   BIN=PATH    a vault binary to measure instead of building this tree's
#               (run an older build and this one back to back to compare);
#   PERF=FILE   record the broker's CPU profile (perf record -g) during its
#               keep-alive load into FILE (`perf report -i FILE`).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-5}
conns=${CONNS:-16}
idle=${IDLE:-1000}
# mitmproxy 11.0.2 is the last for Python 3.11; for 12.x: PYTHON=python3.12 MITM_VERSION=12.3.1
mitm_version=${MITM_VERSION:-11.0.2}
python=${PYTHON:-python3}

export CARGO_INCREMENTAL=0
[ -n "${BIN:-}" ] || cargo build --release -q -p vault-cli
cargo build --release -q -p vault-broker --example broker-load
bin=${BIN:-$PWD/target/release/vault}
load=$PWD/target/release/examples/broker-load
venv=$PWD/target/bench-broker-venv
if ! "$venv/bin/mitmdump" --version >/dev/null 2>&1; then
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mitmproxy==$mitm_version"
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
# 1,000 tunnels: a client socket, two in the proxy, one upstream each
ulimit -n 16384 2>/dev/null || ulimit -n 8192
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for FILE PATTERN: up to 20 s
    for _ in $(seq 200); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for $2 in $1: $(cat "$1")" >&2
    exit 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# --- the upstream CA, a leaf for 127.0.0.2 ----------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
    -days 2 -subj "/CN=bench upstream CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/leaf.key" -out "$tmp/leaf.csr" \
    -subj "/CN=127.0.0.2" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.2\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tmp/ext.cnf"
openssl x509 -req -in "$tmp/leaf.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -out "$tmp/leaf.pem" -days 2 -extfile "$tmp/ext.cnf" 2>/dev/null
chmod 600 "$tmp/leaf.key"

# --- upstream 1: vault server over TLS (its own throwaway vault) -------------
printf 'bench passphrase\n' >"$tmp/pass"
chmod 600 "$tmp/pass"
VAULT_HOME=$tmp/upstream-vault VAULT_PASSPHRASE_FILE=$tmp/pass "$bin" init --kdf-memory-mib 64 --kdf-iterations 3 2>/dev/null
VAULT_HOME=$tmp/upstream-vault VAULT_PASSPHRASE_FILE=$tmp/pass "$bin" server --listen 127.0.0.2:0 \
    --admin-token-file "$tmp/upstream-admin" --tls-cert "$tmp/leaf.pem" --tls-key "$tmp/leaf.key" \
    --max-connections 8192 --max-connections-per-peer 8192 --header-timeout 120s \
    >"$tmp/upstream.out" 2>"$tmp/upstream.err" &
pids+=($!)
wait_for "$tmp/upstream.out" '^listening on '
json_target=$(sed -n 's|^listening on https://||p' "$tmp/upstream.out")

# --- upstream 2: server-sent events carrying their send time ----------------
cat >"$tmp/sse.py" <<'PY'
import socket, ssl, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        # without it the first event waits out Nagle and a delayed ACK (~40 ms)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i in range(10):
            if i:
                time.sleep(0.1)
            text = f"data: event {i} sent {time.time_ns() // 1000}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(text), text))
            self.wfile.flush()
        text = b"data: [DONE]\n\n"
        self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(text), text))
        self.wfile.flush()
srv = ThreadingHTTPServer(("127.0.0.2", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(f"listening on 127.0.0.2:{srv.server_address[1]}", flush=True)
srv.serve_forever()
PY
python3 "$tmp/sse.py" "$tmp/leaf.pem" "$tmp/leaf.key" >"$tmp/sse.out" 2>"$tmp/sse.err" &
pids+=($!)
wait_for "$tmp/sse.out" '^listening on '
sse_target=$(sed -n 's|^listening on ||p' "$tmp/sse.out")

# --- the broker: an agent whose rules attach a key to both upstreams ---------
export VAULT_HOME=$tmp/vault VAULT_PASSPHRASE_FILE=$tmp/pass
"$bin" init --kdf-memory-mib 64 --kdf-iterations 3 2>/dev/null
printf '[[egress]]\nhost = "%s"\nsecret = "OPENAI_API_KEY"\nauth = "bearer"\n\n[[egress]]\nhost = "%s"\nsecret = "OPENAI_API_KEY"\nauth = "bearer"\n' \
    "$json_target" "$sse_target" >"$tmp/policy.toml"
"$bin" agent add bench --policy "$tmp/policy.toml" >/dev/null 2>&1
printf 'sk-bench-real-key' | "$bin" set bench/OPENAI_API_KEY 2>/dev/null
key=$("$bin" issue bench-key --agent bench 2>/dev/null)
"$bin" server --listen 127.0.0.1:0 --admin-token-file "$tmp/admin" --broker 127.0.0.1:0 \
    --broker-upstream-ca "$tmp/ca.pem" --broker-allow-private 127.0.0.0/8 >"$tmp/broker.out" 2>"$tmp/broker.err" &
broker_pid=$!
pids+=($broker_pid)
wait_for "$tmp/broker.out" '^listening on '
broker=$(sed -n 's|^broker listening on http://||p' "$tmp/broker.out")
api=$(sed -n 's|^listening on ||p' "$tmp/broker.out")
curl -sS -o "$tmp/broker-ca.pem" "$api/v1/broker/ca.pem"

# --- the peer: mitmproxy, attaching the same header, streaming answers -------
cat >"$tmp/attach.py" <<'PY'
from mitmproxy import http
def request(flow: http.HTTPFlow) -> None:
    if flow.request.host == "127.0.0.2":
        flow.request.headers["authorization"] = "Bearer sk-bench-real-key"
def responseheaders(flow: http.HTTPFlow) -> None:
    flow.response.stream = True  # forward as it arrives, as the broker does
PY
mitm_port=$(free_port)
"$venv/bin/mitmdump" -q --listen-host 127.0.0.1 --listen-port "$mitm_port" --set confdir="$tmp/mitm" \
    --set ssl_verify_upstream_trusted_ca="$tmp/ca.pem" -s "$tmp/attach.py" >"$tmp/mitm.out" 2>&1 &
mitm_pid=$!
pids+=($mitm_pid)
for _ in $(seq 200); do [ -s "$tmp/mitm/mitmproxy-ca-cert.pem" ] && (exec 3<>"/dev/tcp/127.0.0.1/$mitm_port") 2>/dev/null && break; sleep 0.1; done

run() { "$load" "$@"; }
via() { # via direct|broker|mitm: the client arguments for that path
    case $1 in
    direct) echo "ca=$tmp/ca.pem" ;;
    broker) echo "ca=$tmp/broker-ca.pem proxy=$broker auth=$key" ;;
    mitm) echo "ca=$tmp/mitm/mitmproxy-ca-cert.pem proxy=127.0.0.1:$mitm_port" ;;
    esac
}

echo "== keep-alive GET /v1/health (small JSON), $conns connections, ${secs}s each"
declare -A p50 p99
for path in direct broker mitm; do
    perf_pid=
    if [ "$path" = broker ] && [ -n "${PERF:-}" ]; then
        perf record -q -g -o "$PERF" -p "$broker_pid" -- sleep "$secs" 2>/dev/null &
        perf_pid=$!
    fi
    # shellcheck disable=SC2046
    out=$(run mode=load target="$json_target" path=/v1/health conns="$conns" secs="$secs" $(via $path))
    [ -z "$perf_pid" ] || wait "$perf_pid" || true
    echo "$path: $out"
    p50[$path]=$(sed -n 's/.*p50_us \([0-9]*\).*/\1/p' <<<"$out")
    p99[$path]=$(sed -n 's/.*p99_us \([0-9]*\).*/\1/p' <<<"$out")
done
for path in broker mitm; do
    echo "$path added latency: p50 $((p50[$path] - p50[direct])) us, p99 $((p99[$path] - p99[direct])) us"
done

echo "== RSS with $idle idle streams (held 8 s)"
for path in broker mitm; do
    pid=$([ $path = broker ] && echo $broker_pid || echo $mitm_pid)
    before=$(rss_kib "$pid")
    # shellcheck disable=SC2046
    run mode=idle target="$json_target" conns="$idle" secs=8 $(via $path) >"$tmp/idle.out" 2>&1 &
    client=$!
    # a proxy that cannot hold them all (mitmproxy resets some under load)
    # is reported, and the run goes on to the streamed answers
    if ! (wait_for "$tmp/idle.out" 'streams open') 2>/dev/null; then
        wait "$client" || true
        echo "$path: could not hold $idle streams open ($(grep -m1 -o 'CONNECT answer: [^"]*' "$tmp/idle.out" || echo 'timed out'))"
        continue
    fi
    sleep 1
    during=$(rss_kib "$pid")
    wait "$client"
    echo "$path: RSS $((before / 1024)) MiB idle, $((during / 1024)) MiB with $idle streams"
done

echo "== streamed answer: 10 events 100 ms apart, each event's lag at the client"
for path in direct broker mitm; do
    # shellcheck disable=SC2046
    echo "$path: $(run mode=stream target="$sse_target" path=/v1/stream $(via $path))"
done
