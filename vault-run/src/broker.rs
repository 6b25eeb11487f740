//! A run through the egress broker (`vault run --broker`, `vault env
//! --broker`): the child's proxy and CA environment and placeholders for
//! brokered secrets, locally (a named key of the run's own) or through a
//! server (an `egress` token). The proxy itself is vault-broker's; the child
//! never receives a brokered secret's value.

use std::collections::BTreeSet;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use vault_broker::LocalCa;
use vault_client::Remote;
use vault_core::policy::egress::PLACEHOLDER;
use vault_core::{
    AgentName, KeyInfo, KeyStatus, Principal, Scope, SecretBytes, SecretName, SecretString,
    TokenRequest, Vault,
};

use crate::error::{invalid, refused, Context as _, Error, Result};
use crate::render::{render, Format};

/// How long the key `vault run --broker` issues for the child lives.
const RUN_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// An agent's env as names and values.
type AgentEnv = Vec<(SecretName, SecretBytes)>;

/// The key `vault run --broker` issued for its child, and the unlocked vault
/// that revokes it when the child exits.
///
/// Why the vault stays unlocked for the child's life (as `vault run --watch`
/// does) rather than being dropped before the child starts: revoking writes a
/// row-tagged key row and an audit record, which needs the data key, and a
/// second passphrase prompt at exit would hang unattended runs. `vault` makes
/// itself non-dumpable at start, so the child (same uid) cannot read the
/// key from this process's memory; the 24 h TTL stays as the backstop for a
/// `vault run` that is killed with SIGKILL before it can revoke.
pub struct RunKey {
    vault: Vault,
    key_id: String,
    name: String,
    agent: AgentName,
    created_at: i64,
}

impl RunKey {
    /// The run's key: its name and id (for a message when revoking fails).
    pub fn key(&self) -> (&str, &str) {
        (&self.name, &self.key_id)
    }

    /// Revokes the run's key, and any successor it got during the run. A
    /// failure is for the caller to report, not fatal (the child's exit code
    /// is what it passes on): the key then expires.
    ///
    /// Why successors: when the run's key (or a token of it) is found leaked,
    /// the leak flow rotates it, and the successor keeps the name and the
    /// 24 h lifetime. Revoking only the id issued at start would leave that
    /// successor alive long after the run it belonged to. A successor is a
    /// key of the run's name and agent created since the run's key was.
    ///
    /// # Errors
    /// The vault could not list or revoke them.
    pub fn revoke(mut self) -> Result<()> {
        let op = &Principal::Operator;
        let live = self
            .vault
            .list_keys(op, Some(&self.agent))?
            .into_iter()
            .filter(|k| {
                (k.key_id == self.key_id
                    || (k.name == self.name && k.created_at >= self.created_at))
                    && !matches!(k.status, KeyStatus::Revoked | KeyStatus::Expired)
            })
            .map(|k| k.key_id)
            .collect::<Vec<_>>();
        for key_id in live {
            self.vault.revoke_key(op, &key_id)?;
        }
        Ok(())
    }
}

/// `vault run --broker --agent A` (local mode): with the unlocked vault,
/// issues a named key for the run (`A-run-PID`, 24 h) and gives the child an
/// `egress` token of that key (never the key), and returns the agent's env
/// without its brokered secrets, the broker settings for `broker` (see
/// [`broker_addr`]), and the key to revoke when the child exits.
///
/// # Errors
/// The agent or its policy cannot be read, the CA cannot be loaded, or the
/// key cannot be issued (then nothing is left behind).
pub fn prepare_run(
    mut vault: Vault,
    agent: &AgentName,
    broker: &str,
) -> Result<(AgentEnv, ChildEnv, RunKey)> {
    let brokered = brokered_names(&vault, agent)?;
    let ca = LocalCa::load_or_create(&mut vault)?;
    let mut base = agent.as_str().to_owned();
    base.truncate(40);
    let key_name = AgentName::parse(&format!(
        "{}-run-{}",
        base.trim_end_matches('-'),
        std::process::id()
    ))?;
    let issued =
        vault.issue_egress_key(&Principal::Operator, &key_name, agent, RUN_KEY_TTL, true)?;
    // The child holds an `egress` token minted from the run's key, not the
    // key: the API refuses to read or mint with it, so a child that finds the
    // API cannot fetch a brokered value. Revoking the key at exit ends it.
    let minted = vault
        .authenticate_key_uncounted(issued.key.expose_secret())
        .and_then(|info| {
            vault.mint_token(
                &info,
                &TokenRequest {
                    scopes: Some(vec![Scope::Egress]),
                    ttl: Some(RUN_KEY_TTL),
                },
            )
        });
    let minted = match minted {
        Ok(m) => m,
        Err(e) => {
            let _ = vault.revoke_key(&Principal::Operator, &issued.info.key_id);
            return Err(e.into());
        }
    };
    let credential = SecretString::new(minted.token.expose_secret().to_owned());
    let env = without_brokered(vault.env_of(&Principal::Operator, agent)?, &brokered);
    let child = match child_env(broker, &credential, ca.cert_pem(), &brokered, None) {
        Ok(c) => c,
        Err(e) => {
            // Nobody will hold the key: revoke it now.
            let _ = vault.revoke_key(&Principal::Operator, &issued.info.key_id);
            return Err(e);
        }
    };
    let run_key = RunKey {
        key_id: issued.info.key_id.to_string(),
        name: issued.info.name.to_string(),
        agent: agent.clone(),
        created_at: issued.info.created_at,
        vault,
    };
    Ok((env, child, run_key))
}

/// How long a remote-mode child's `egress` token is asked to live; the
/// agent's policy caps it (`max_token_ttl`, at most 24 h).
const REMOTE_TOKEN_TTL: u64 = 24 * 3600;

/// A remote-mode brokered run: the child's env and broker settings, and the
/// `egress` token it holds (reads nothing at the API; revoked at exit).
pub struct RemoteRun {
    /// The agent's env without its brokered secrets.
    pub env: AgentEnv,
    /// The broker settings for the child.
    pub child: ChildEnv,
    remote: Remote,
    token: SecretString,
    /// When the token expires (Unix seconds).
    pub expires_at: u64,
}

impl RemoteRun {
    /// Revokes the child's token; a failure is for the caller to report,
    /// and the token then expires on its own.
    ///
    /// # Errors
    /// The server could not be reached or refused.
    pub fn revoke(self) -> Result<()> {
        self.remote.revoke(&self.token)?;
        Ok(())
    }
}

/// `vault run --broker` with `VAULT_ADDR` and `VAULT_AGENT_KEY` (no local
/// vault): mints an `egress` token (the broker attaches with it; it reads
/// nothing at the API, so the child cannot fetch a brokered value), learns
/// the broker's address (`--broker-addr`, `VAULT_BROKER`, else `GET
/// /v1/broker`), its CA and the agent's placeholder names from the server,
/// and fetches the agent's env without its brokered secrets. The agent's
/// named key stays in this process.
///
/// # Errors
/// The server refused or could not be reached, or the CA files cannot be
/// written (then the token is revoked).
pub fn prepare_remote(
    remote: Remote,
    addr_flag: Option<&str>,
    persist: Option<&Path>,
) -> Result<RemoteRun> {
    let (token, public) = remote.mint(Some(vec!["egress".into()]), Some(REMOTE_TOKEN_TTL))?;
    let expires_at = public["expires_at"].as_u64().unwrap_or(0);
    let built = (|| {
        let (addr, ca_pem) = remote.broker(&token)?;
        let broker = match broker_addr(addr_flag) {
            Ok(flag) => flag,
            Err(_) => addr,
        };
        let brokered: BTreeSet<String> = remote.placeholders(&token)?.into_iter().collect();
        let env = without_brokered(remote.env_vars()?, &brokered);
        let child = child_env(&broker, &token, &ca_pem, &brokered, persist)?;
        Ok::<_, Error>((env, child))
    })();
    match built {
        Ok((env, child)) => Ok(RemoteRun {
            env,
            child,
            remote,
            token,
            expires_at,
        }),
        Err(e) => {
            // Nobody will hold the token: revoke it now.
            let _ = remote.revoke(&token);
            Err(e)
        }
    }
}

/// `vault env --broker` in remote mode: the settings [`prepare_remote`]
/// builds, rendered, with CA files in `persist`; the token is not revoked
/// (a gateway holds it) and expires at the returned time. No
/// `VAULT_AGENT_KEY` goes in: the agent's named key could read the
/// brokered values at the API.
///
/// # Errors
/// As [`prepare_remote`], or a value `format` cannot carry.
pub fn remote_env_settings(
    remote: Remote,
    addr_flag: Option<&str>,
    persist: &Path,
    format: Format,
) -> Result<(zeroize::Zeroizing<String>, u64)> {
    let run = prepare_remote(remote, addr_flag, Some(persist))?;
    let mut env = run.env;
    env.retain(|(name, _)| {
        name.as_str() != KEY_VAR && !run.child.set.iter().any(|(n, _)| n == name.as_str())
    });
    for (name, value) in &run.child.set {
        env.push((
            SecretName::parse(name)?,
            SecretBytes::from_slice(value.as_bytes()),
        ));
    }
    Ok((
        zeroize::Zeroizing::new(render(&env, format)?),
        run.expires_at,
    ))
}

impl ChildEnv {
    /// Puts the settings into this process's environment, which the child
    /// inherits. Called while `vault run` is still single-threaded (before
    /// its signal thread starts), so no other thread reads the environment.
    pub fn apply_to_process(&self) {
        for name in &self.remove {
            std::env::remove_var(name);
        }
        for (name, value) in &self.set {
            std::env::set_var(name, value);
        }
    }
}

/// What `vault run --broker` adds to the child's environment.
pub struct ChildEnv {
    /// Variables to set.
    pub set: Vec<(String, String)>,
    /// Inherited variables to remove first (proxy and CA settings, both cases).
    pub remove: Vec<String>,
    /// The run's private directory holding the CA files, removed when
    /// dropped (None: the files are in a directory that persists).
    pub _dir: Option<tempfile::TempDir>,
}

/// Inherited variables `vault run --broker` removes: a stale proxy or CA
/// setting would send the child around the broker or make it distrust it.
const INHERITED: [&str; 14] = [
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "NODE_USE_ENV_PROXY",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "HERMES_CA_BUNDLE",
    "DENO_CERT",
    "OPENCLAW_PROXY_URL",
];

/// System trust stores, first found wins, merged with the vault CA so the
/// child's other TLS (git, package managers) keeps working.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// Builds the child's broker environment: the CA and a merged bundle in a
/// private 0700 directory (`persist`, or a fresh one removed with the run),
/// proxy variables carrying `credential`, and the placeholder for each of
/// `brokered`.
///
/// # Errors
/// `broker` is not an `http://HOST:PORT` address, `ca_pem` holds no
/// certificate, or the directory or its files cannot be written.
pub fn child_env(
    broker: &str,
    credential: &SecretString,
    ca_pem: &str,
    brokered: &BTreeSet<String>,
    persist: Option<&Path>,
) -> Result<ChildEnv> {
    let base = broker.trim_end_matches('/');
    let hostport = base
        .strip_prefix("http://")
        .filter(|h| !h.is_empty() && !h.contains(['/', '@']))
        .ok_or_else(|| {
            invalid(format!(
                "the broker address {base:?} must look like http://127.0.0.1:PORT (as `vault server --broker` prints it)"
            ))
        })?;
    if !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(refused("the server sent no broker CA certificate"));
    }
    let (temp, dir) = match persist {
        Some(dir) => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("creating {}", dir.display()))?;
            (None, dir.to_path_buf())
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("vault-broker-")
                .tempdir()
                .context("creating the run's private directory")?;
            let path = temp.path().to_path_buf();
            (Some(temp), path)
        }
    };
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let ca_file = dir.join("vault-ca.pem");
    write_file(&ca_file, ca_pem.as_bytes())?;
    let mut bundle = SYSTEM_BUNDLES
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    if !bundle.ends_with('\n') && !bundle.is_empty() {
        bundle.push('\n');
    }
    bundle.push_str(ca_pem);
    let bundle_file = dir.join("bundle.pem");
    write_file(&bundle_file, bundle.as_bytes())?;
    // The credential goes in the user part; the broker accepts it as user or password.
    let proxy = format!("http://agent:{}@{hostport}", credential.expose_secret());
    let mut no_proxy: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for var in ["NO_PROXY", "no_proxy"] {
        if let Ok(v) = std::env::var(var) {
            for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                if !no_proxy.iter().any(|n| n == entry) {
                    no_proxy.push(entry.to_owned());
                }
            }
        }
    }
    let no_proxy = no_proxy.join(",");
    let ca = ca_file.display().to_string();
    let merged = bundle_file.display().to_string();
    let mut set = vec![];
    for name in vault_core::envfile::PROXY_VARS {
        set.push((name.to_owned(), proxy.clone()));
    }
    set.push(("NO_PROXY".into(), no_proxy.clone()));
    set.push(("no_proxy".into(), no_proxy));
    set.push(("NODE_USE_ENV_PROXY".into(), "1".into()));
    set.push(("NODE_EXTRA_CA_CERTS".into(), ca));
    for name in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "HERMES_CA_BUNDLE",
    ] {
        set.push((name.to_owned(), merged.clone()));
    }
    for name in brokered {
        set.push((name.clone(), PLACEHOLDER.to_owned()));
    }
    let remove = INHERITED
        .iter()
        .flat_map(|v| [v.to_string(), v.to_ascii_lowercase()])
        .collect();
    Ok(ChildEnv {
        set,
        remove,
        _dir: temp,
    })
}

/// The env names of the secrets `agent`'s egress rules attach.
///
/// # Errors
/// The agent does not exist.
pub fn brokered_names(vault: &Vault, agent: &AgentName) -> Result<BTreeSet<String>> {
    let policy = vault.policy(&Principal::Operator, agent)?;
    Ok(policy
        .egress()
        .rules()
        .iter()
        .map(|r| r.secret.env_name().to_string())
        .collect())
}

/// Drops brokered secrets from an env: their values never reach the child.
pub fn without_brokered(
    env: Vec<(SecretName, SecretBytes)>,
    brokered: &BTreeSet<String>,
) -> Vec<(SecretName, SecretBytes)> {
    env.into_iter()
        .filter(|(name, _)| !brokered.contains(name.as_str()))
        .collect()
}

/// Where the broker is: `--broker-addr`, else `VAULT_BROKER`.
///
/// # Errors
/// Neither is set.
pub fn broker_addr(flag: Option<&str>) -> Result<String> {
    flag.map(str::to_owned)
        .or_else(|| std::env::var("VAULT_BROKER").ok().filter(|v| !v.is_empty()))
        .ok_or_else(|| {
            invalid(
                "--broker needs the broker's address: pass --broker-addr http://127.0.0.1:PORT or set \
                 VAULT_BROKER (the line `vault server --broker` prints)",
            )
        })
}

/// Writes a CA file atomically, mode 0600 (replacing the previous one in the
/// persistent directory).
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    vault_core::envfile::write_private_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// How long the key `vault env --broker` issues lives: it is meant for a
/// long-running gateway, and rotation (`vault rotate A-broker`) rewrites the
/// file registered with `--write`.
const ENV_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// `vault env --broker --agent A`: the settings `vault run --broker` gives
/// its child, as name/value pairs for an env file: the agent's secrets
/// without the brokered ones, `VAULT_AGENT_KEY`, the proxy variables
/// carrying a named key of its own (`A-broker`, 90 days, replacing the
/// previous one of that name), CA paths in `VAULT_HOME/broker/` (which
/// persists), NO_PROXY and placeholders. With `write`, the file is written
/// and registered as a target, so rotating the key rewrites it (proxy URLs
/// included). `home` is the vault directory; `broker` as [`broker_addr`] found it.
///
/// # Errors
/// As [`prepare_run`], or the file cannot be written or registered (then
/// the new key is revoked).
pub fn env_settings(
    vault: &mut Vault,
    home: &Path,
    agent: &AgentName,
    broker: &str,
    write: Option<&Path>,
    format: Format,
) -> Result<EnvSettings> {
    let brokered = brokered_names(vault, agent)?;
    let ca = LocalCa::load_or_create(vault)?;
    let mut base = agent.as_str().to_owned();
    base.truncate(50);
    let key_name = AgentName::parse(&format!("{}-broker", base.trim_end_matches('-')))?;
    // egress-only: the file's key gets requests brokered, but mints no token
    // that reads, so whoever reads the file learns no brokered value
    let issued =
        vault.issue_egress_key(&Principal::Operator, &key_name, agent, ENV_KEY_TTL, true)?;
    let key_id = issued.info.key_id.clone();
    let result = (|| {
        let credential = SecretString::new(issued.key.expose_secret().to_owned());
        let child = child_env(
            broker,
            &credential,
            ca.cert_pem(),
            &brokered,
            Some(&home.join("broker")),
        )?;
        let mut env = without_brokered(vault.env_of(&Principal::Operator, agent)?, &brokered);
        env.retain(|(name, _)| {
            name.as_str() != KEY_VAR && !child.set.iter().any(|(n, _)| n == name.as_str())
        });
        env.push((
            SecretName::parse(KEY_VAR)?,
            SecretBytes::from_slice(credential.expose_secret().as_bytes()),
        ));
        for (name, value) in &child.set {
            env.push((
                SecretName::parse(name)?,
                SecretBytes::from_slice(value.as_bytes()),
            ));
        }
        let text = zeroize::Zeroizing::new(render(&env, format)?);
        if let Some(path) = write {
            vault_core::envfile::write_private_atomic(path, text.as_bytes())?;
            match vault.add_target(
                &Principal::Operator,
                agent,
                path,
                &SecretName::parse(KEY_VAR)?,
                // the file holds this key: rotating another key of the agent leaves it alone
                Some(key_name.as_str()),
            ) {
                Ok(_) | Err(vault_core::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok::<_, Error>(text)
    })();
    if result.is_err() {
        // Nobody holds the new key: revoke it rather than leave it dangling.
        let _ = vault.revoke_key(&Principal::Operator, &key_id);
    }
    Ok(EnvSettings {
        text: result,
        replaced: issued.replaced,
    })
}

/// What [`env_settings`] made once the key was issued.
pub struct EnvSettings {
    /// The settings as text, in the format asked for, or why they could not
    /// be written (the new key is then revoked).
    pub text: Result<zeroize::Zeroizing<String>>,
    /// The previous broker key of that name, revoked.
    pub replaced: Option<KeyInfo>,
}

/// The variable that carries the agent's key in a broker env file (the
/// target's key variable, as `vault target add` defaults it).
const KEY_VAR: &str = "VAULT_AGENT_KEY";

#[cfg(test)]
mod tests {
    use vault_core::{KdfParams, Policy, RotationReason};

    use super::*;

    // issue 16 remainder, item 4: the run's key leaks and is rotated during
    // the run; the successor is revoked with it when the run ends
    #[test]
    fn a_leaked_run_keys_successor_is_revoked_when_the_run_ends() {
        let dir = tempfile::tempdir().unwrap();
        let pass = SecretString::new("correct horse battery staple".into());
        let mut vault = Vault::init(&dir.path().join("vault"), &pass, KdfParams::FLOOR).unwrap();
        let agent = AgentName::parse("hermes").unwrap();
        let op = &Principal::Operator;
        vault.add_agent(op, &agent, &Policy::default()).unwrap();
        let (_, _child, mut run) = prepare_run(vault, &agent, "http://127.0.0.1:9").unwrap();
        let (name, old_id) = (run.name.clone(), run.key_id.clone());
        // what the leak flow does with a leaked key (vault_guard::leak::act)
        let report = run
            .vault
            .rotate_key(op, &old_id, RotationReason::Leak)
            .unwrap();
        assert_ne!(report.new_key_id, old_id);
        let live = |vault: &Vault| {
            vault
                .list_keys(op, Some(&agent))
                .unwrap()
                .into_iter()
                .filter(|k| k.name == name && k.status == KeyStatus::Active)
                .count()
        };
        assert_eq!(live(&run.vault), 1, "the successor is live during the run");
        let home = dir.path().join("vault");
        run.revoke().unwrap();
        let vault = Vault::unlock(&home, &pass).unwrap();
        assert_eq!(live(&vault), 0, "no key of the run outlives it");
    }
}
