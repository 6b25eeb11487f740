#!/usr/bin/env python3
"""Leak-to-rotation latency (issue 6): from appending a line that holds an
agent's live key to a watched transcript, to (a) the server refusing that key
and (b) the agent's env file holding its successor. Real release binaries:
`vault server` on 127.0.0.1:0 and `vault watch` with its defaults (file
events); WATCH_ARGS adds flags to the watcher (WATCH_ARGS=--poll measures the
250 ms polling fallback). The binary is VAULT_BIN, or CARGO_TARGET_DIR's (or
./target's) release build, built first.

Usage: bench/leak-latency.py [TRIALS]   (default 100)
"""
import json, os, statistics, subprocess, sys, tempfile, time, urllib.error, urllib.request

TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAULT = os.environ.get("VAULT_BIN")
if not VAULT:  # VAULT_BIN: a release binary built already
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "vault-cli"], cwd=root, check=True)
    VAULT = os.path.join(os.environ.get("CARGO_TARGET_DIR") or os.path.join(root, "target"), "release", "vault")
tmp = tempfile.mkdtemp(prefix="vault-leak-")
env = dict(os.environ, VAULT_HOME=os.path.join(tmp, "vault"), VAULT_PASSPHRASE_FILE=os.path.join(tmp, "pass"))
env.pop("VAULT_ADDR", None)
open(env["VAULT_PASSPHRASE_FILE"], "w").write("leak latency passphrase\n")
os.chmod(env["VAULT_PASSPHRASE_FILE"], 0o600)
run = lambda *a: subprocess.run([VAULT, *a], env=env, check=True, capture_output=True)
target = os.path.join(tmp, "agent.env")
sessions = os.path.join(tmp, "sessions")
os.mkdir(sessions)
transcript = os.path.join(sessions, "chat.jsonl")
open(transcript, "w").write('{"role":"user","content":"hi"}\n')
run("init", "--kdf-memory-mib", "64", "--kdf-iterations", "3")
run("agent", "add", "hermes")
# --write-env registers the file as the key's target (issue 19)
run("issue", "hermes-key", "--write-env", target)

server = subprocess.Popen([VAULT, "server", "--listen", "127.0.0.1:0", "--admin-token-file", os.path.join(tmp, "admin")],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
base = server.stdout.readline().strip().removeprefix("listening on ")
watcher = subprocess.Popen([VAULT, "watch", sessions, *os.environ.get("WATCH_ARGS", "").split()], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(1.0)

def key_in_file():
    for line in open(target):
        if line.startswith("VAULT_AGENT_KEY="):
            return line.strip().split("=", 1)[1]

def server_accepts(key):
    req = urllib.request.Request(base + "/v1/auth/token", data=b"{}", method="POST",
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5).read()
        return True
    except urllib.error.HTTPError:
        return False

refused, replaced = [], []
try:
    for _ in range(TRIALS):
        key = key_in_file()
        assert server_accepts(key), "the current key should work before the leak"
        t0 = time.perf_counter()
        with open(transcript, "a") as f:
            f.write(json.dumps({"role": "user", "content": "my key is " + key}) + "\n")
        a = b = None
        while a is None or b is None:
            now = time.perf_counter() - t0
            if now > 10:
                raise SystemExit("no rotation within 10 s")
            if b is None and key_in_file() != key:
                b = now
            if a is None and not server_accepts(key):
                a = now
            time.sleep(0.002)
        refused.append(a)
        replaced.append(b)
finally:
    watcher.terminate()
    server.terminate()

def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

for name, xs in [("server refuses the leaked key", refused), ("env file holds the successor", replaced)]:
    print(f"{name}: p50 {q(xs, 50) * 1000:.0f} ms, p99 {q(xs, 99) * 1000:.0f} ms over {len(xs)} trials")
