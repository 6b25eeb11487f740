"""vault as a Hermes Agent secret source.

Hermes loads ``$HERMES_HOME/.env`` and then asks every enabled secret source
for environment variables (``agent.secret_sources``).  This source runs
``vault env --format json`` in remote mode: the agent's named key (the
bootstrap credential, declared protected so no source can overwrite it) and
the server address go to a ``vault`` child process through Hermes'
``run_secret_cli`` helper (argv only, stdin closed, minimal environment), and
the agent's secrets come back as ``{"env": {NAME: value}}``.  Only that
agent's secrets: the vault server decides from the key, not from anything in
this file or in config.yaml.

Config (``secrets.vault`` in config.yaml; no secret ever goes there):

    enabled: true
    addr: http://127.0.0.1:8200      # else VAULT_ADDR from .env / the shell
    vault_bin: /usr/local/bin/vault  # else `vault` on PATH
    agent_key_env: VAULT_AGENT_KEY   # the variable holding the agent's named key
    override_existing: false         # may vault values beat .env / shell ones?
    timeout_seconds: 30

It never raises and never prompts (the SecretSource contract): every failure
is a FetchResult error with a machine-readable kind.  Error text is vault's
own stderr, which names variables and reasons, never values.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import FrozenSet

from agent.secret_sources.base import (
    ErrorKind,
    FetchResult,
    SecretSource,
    is_valid_env_name,
    run_secret_cli,
)

_DEFAULT_KEY_ENV = "VAULT_AGENT_KEY"
_DEFAULT_TIMEOUT = 30.0

# vault's documented exit codes (README "Exit codes").
_EXIT_AUTH = 3
_EXIT_NOT_FOUND = 4


def _key_env(cfg: dict) -> str:
    name = cfg.get("agent_key_env") if isinstance(cfg, dict) else None
    return name if isinstance(name, str) and is_valid_env_name(name) else _DEFAULT_KEY_ENV


def _timeout(cfg: dict) -> float:
    try:
        value = float(cfg.get("timeout_seconds", _DEFAULT_TIMEOUT))
    except (TypeError, ValueError):
        return _DEFAULT_TIMEOUT
    return value if value > 0 else _DEFAULT_TIMEOUT


class VaultSource(SecretSource):
    """One agent's secrets from a vault server, by the agent's named key."""

    name = "vault"
    label = "vault"
    # The agent's whole env, not an explicit VAR -> ref map: like a
    # Bitwarden project, so explicit (mapped) sources keep precedence.
    shape = "bulk"

    def protected_env_vars(self, cfg: dict) -> FrozenSet[str]:
        return frozenset({_key_env(cfg), "VAULT_ADDR"})

    def fetch_timeout_seconds(self, cfg: dict) -> float:
        # The orchestrator's budget: a little over the child's own timeout.
        return _timeout(cfg if isinstance(cfg, dict) else {}) + 5.0

    def config_schema(self) -> dict:
        return {
            "addr": {"description": "vault server URL (else VAULT_ADDR)", "default": ""},
            "vault_bin": {"description": "path of the vault binary", "default": "vault"},
            "agent_key_env": {
                "description": "env var holding the agent's named key",
                "default": _DEFAULT_KEY_ENV,
            },
        }

    def fetch(self, cfg: dict, home_path: Path) -> FetchResult:
        cfg = cfg if isinstance(cfg, dict) else {}
        result = FetchResult()
        try:
            return self._fetch(cfg, result)
        except Exception as exc:  # noqa: BLE001 -- the contract: never raise
            result.secrets = {}
            result.error = f"vault secret source failed: {type(exc).__name__}"
            result.error_kind = ErrorKind.INTERNAL
            return result

    def _fetch(self, cfg: dict, result: FetchResult) -> FetchResult:
        key_env = _key_env(cfg)
        key = os.environ.get(key_env, "").strip()
        if not key:
            result.error = (
                f"{key_env} is not set: put the agent's vault key in this profile's .env "
                "(`vault issue NAME-key --write-env PATH/.env`) or the service environment"
            )
            result.error_kind = ErrorKind.NOT_CONFIGURED
            return result
        addr = cfg.get("addr") if isinstance(cfg.get("addr"), str) else ""
        addr = addr or os.environ.get("VAULT_ADDR", "")
        if not addr:
            result.error = "no vault server: set secrets.vault.addr or VAULT_ADDR"
            result.error_kind = ErrorKind.NOT_CONFIGURED
            return result
        configured = cfg.get("vault_bin") if isinstance(cfg.get("vault_bin"), str) else ""
        binary = configured or shutil.which("vault") or ""
        if not binary or not os.access(binary, os.X_OK):
            result.error = (
                f"vault binary not found ({configured or 'vault on PATH'}): "
                "set secrets.vault.vault_bin to its absolute path"
            )
            result.error_kind = ErrorKind.BINARY_MISSING
            return result
        result.binary_path = Path(binary)
        try:
            proc = run_secret_cli(
                [binary, "env", "--format", "json"],
                # The key travels in the child's environment, never in argv.
                extra_env={"VAULT_ADDR": addr, "VAULT_AGENT_KEY": key},
                timeout=_timeout(cfg),
            )
        except RuntimeError as exc:
            result.error = str(exc)
            result.error_kind = (
                ErrorKind.TIMEOUT if "timed out" in str(exc) else ErrorKind.BINARY_MISSING
            )
            return result
        if proc.returncode != 0:
            message = (proc.stderr or "").strip().splitlines()
            result.error = message[-1] if message else f"vault exited {proc.returncode}"
            if proc.returncode == _EXIT_AUTH:
                result.error_kind = ErrorKind.AUTH_FAILED
            elif "cannot reach" in result.error:
                result.error_kind = ErrorKind.NETWORK
            elif proc.returncode == _EXIT_NOT_FOUND:
                result.error_kind = ErrorKind.NOT_CONFIGURED
            else:
                result.error_kind = ErrorKind.INTERNAL
            return result
        try:
            env = json.loads(proc.stdout).get("env")
        except (ValueError, AttributeError):
            env = None
        if not isinstance(env, dict):
            result.error = "vault env answered something other than {\"env\": {...}}"
            result.error_kind = ErrorKind.INTERNAL
            return result
        for name, value in env.items():
            if isinstance(name, str) and isinstance(value, str) and is_valid_env_name(name):
                result.secrets[name] = value
            else:
                result.warnings.append(f"skipped an entry that is not NAME=text: {name!r}")
        if not result.secrets:
            result.warnings.append("the vault holds no secrets for this agent")
        return result


def register(ctx) -> None:
    """Hermes plugin entry point."""
    ctx.register_secret_source(VaultSource())
