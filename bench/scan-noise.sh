#!/usr/bin/env bash
# Noise on real code: findings per 100 MB of the source trees this machine has, which hold
# no real leaks (the Python standard library with its site-packages, the cargo registry's
# unpacked crates), by rule and by confidence, vault-scan beside the peers installed here.
#
# Every finding is noise by construction; the figure to watch is what the default
# (`--confidence medium`) shows. MB counts text bytes only (files the scanner did not skip
# as binary), the same for every tool.
# Peers: Kingfisher (pip kingfisher-bin, --no-validate) from target/bench-venv (created by
# bench/scan-peers.sh or here); detect-secrets only with DETECT_SECRETS=1 (~0.2 MB/s).
# Usage: bench/scan-noise.sh [ROOT...]   (from the repository root; default roots below)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/target/bench-venv
OUT=$ROOT/target/scan-noise
mkdir -p "$OUT"
if [ $# -gt 0 ]; then ROOTS=("$@"); else
  ROOTS=("$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["stdlib"])')")
  [ -d "$HOME/.cargo/registry/src" ] && ROOTS+=("$HOME/.cargo/registry/src")
fi
echo "roots: ${ROOTS[*]}"
cargo build -q --release -p vault-scan --example scan
VS=${VAULT_SCAN_BIN:-$ROOT/target/release/examples/scan}
"$VS" --no-ignore --json --confidence=low "${ROOTS[@]}" > "$OUT/vault.json" 2> "$OUT/vault.err" || true
tail -1 "$OUT/vault.err"

KF=""
if [ ! -x "$VENV/bin/kingfisher" ]; then
  (python3 -m venv "$VENV" && "$VENV/bin/pip" install -q kingfisher-bin) > "$OUT/pip.log" 2>&1 || true
fi
if [ -x "$VENV/bin/kingfisher" ]; then
  "$VENV/bin/kingfisher" scan "${ROOTS[@]}" --no-validate --format json > "$OUT/kingfisher.json" 2> "$OUT/kingfisher.err" || true
  KF=$OUT/kingfisher.json
else
  echo "kingfisher: not installable here (see $OUT/pip.log)"
fi
DS=""
if [ -n "${DETECT_SECRETS:-}" ] && [ -x "$VENV/bin/detect-secrets" ]; then
  "$VENV/bin/detect-secrets" scan --all-files "${ROOTS[@]}" > "$OUT/detect-secrets.json" 2> /dev/null || true
  DS=$OUT/detect-secrets.json
fi

python3 - "$OUT/vault.json" "$KF" "$DS" <<'PY'
import collections, json, os, sys
vault, kf, ds = sys.argv[1:4]
r = json.load(open(vault))
binary = sum(os.path.getsize(s["path"]) for s in r["skipped"]
             if s["reason"].startswith("binary") and os.path.exists(s["path"]))
text_mb = (r["stats"]["bytes"] - binary) / 1e6
per = lambda n: 100.0 * n / text_mb
f = r["findings"]
print(f"text scanned: {text_mb:.1f} MB ({r['stats']['files']} files, {binary/1e6:.1f} MB binary skipped)")
order = {"high": 0, "medium": 1, "low": 2}
by = collections.Counter((x["confidence"], x["rule"]) for x in f)
print(f"{'confidence':<8} {'rule':<36} {'n':>5} {'per 100 MB':>10}")
for (c, rule), n in sorted(by.items(), key=lambda kv: (order[kv[0][0]], -kv[1])):
    print(f"{c:<8} {rule:<36} {n:>5} {per(n):>10.1f}")
shown = [x for x in f if x["confidence"] != "low"]
print(f"vault-scan default (--confidence medium): {len(shown)} findings = {per(len(shown)):.1f} per 100 MB")
print(f"vault-scan --confidence high: {sum(x['confidence']=='high' for x in f)} = "
      f"{per(sum(x['confidence']=='high' for x in f)):.1f} per 100 MB")
print(f"vault-scan --confidence low (everything): {len(f)} = {per(len(f)):.1f} per 100 MB")
if kf:
    # Kingfisher writes one JSON document with a findings array, then a summary line.
    items = []
    for line in open(kf):
        line = line.strip()
        if line:
            doc = json.loads(line)
            if isinstance(doc.get("findings"), list):
                items += doc["findings"]
    n = len(items)
    by = collections.Counter(x["finding"].get("confidence", "?") for x in items)
    print(f"kingfisher --no-validate: {n} findings = {per(n):.1f} per 100 MB "
          f"(by its confidence: {dict(by)})")
if ds:
    doc = json.load(open(ds))
    n = sum(len(v) for v in doc.get("results", {}).values())
    print(f"detect-secrets: {n} findings = {per(n):.1f} per 100 MB")
PY
