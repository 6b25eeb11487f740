//! Storage of the brokered-egress CA: its private key lives in `vault_keys`
//! under the purpose `broker_ca`, sealed with the DEK and bound to its row like
//! the token-signing and audit keys, so only someone who can unlock the vault
//! can mint certificates agents trust. Core stores an opaque blob; vault-broker
//! generates and parses it (core has no X.509).

use crate::credential::{KEY_PREFIX, TOKEN_PREFIX};
use crate::crypto::aead;
use crate::error::{Error, Result};
use crate::names::{AgentName, SecretPath};
use crate::policy::egress::{EgressAuth, EgressDecision, EgressRequest, EgressScan, SecretRef};
use crate::policy::Budget;
use crate::secret::SecretBytes;
use crate::store::Store as _;
use crate::store::{self, keys};
use crate::token::{Scope, TokenClaims};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Denial;

use super::egress_cache::{credential_hash, CredentialHash};
use super::tokens::vault_key_aad;
use super::{Principal, Vault};

const BROKER_CA_PURPOSE: &str = "broker_ca";

/// A credential's check is read from the store again at least this often
/// (its key's last-use time is written then), whatever else happens.
const CACHE_MAX_AGE_SECS: i64 = 60;

/// What the broker does with one request of an authenticated agent.
#[derive(Debug)]
pub enum EgressGrant {
    /// Attach `value` as `auth` says; `secret` names it (for logs, never the value).
    Attach {
        /// The agent.
        agent: AgentName,
        /// Where the value goes.
        auth: EgressAuth,
        /// `AGENT/NAME` of the secret.
        secret: SecretPath,
        /// The current value, read now (so a rotation applies from the next request).
        value: SecretBytes,
    },
    /// Forward untouched (`unmatched = "tunnel"`).
    Tunnel(AgentName),
    /// No rule covers it (`unmatched = "deny"`).
    Deny(AgentName),
    /// A rule covers the host and path, not the method.
    MethodDenied(AgentName),
}

/// Who a brokered request is for and the limits on it, beside its
/// [`EgressGrant`]: what the broker's usage accounting, budgets, holds and scanning need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressMeta {
    /// The agent.
    pub agent: AgentName,
    /// The key (for a token, the key it was minted from).
    pub key_id: String,
    /// Index of the `[[egress]]` rule that matched (None: no rule).
    pub rule: Option<u32>,
    /// The agent's `[budget]`.
    pub budget: Budget,
    /// The policy's `suspend_on_anomaly`.
    pub suspend_on_anomaly: bool,
    /// Held for a person this long at most (the rule says `approval = true`).
    pub hold: Option<std::time::Duration>,
    /// What the broker does with a credential found in the request.
    pub scan: EgressScan,
}

/// What the agent's policy applies to a granted request besides attaching:
/// the part of [`EgressMeta`] holding and outbound scanning read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EgressGovernance {
    /// Held for a person this long at most (the rule says `approval = true`).
    pub hold: Option<std::time::Duration>,
    /// What the broker does with a credential found in the request.
    pub scan: EgressScan,
}

impl EgressMeta {
    /// What holding and scanning need.
    pub fn governance(&self) -> EgressGovernance {
        EgressGovernance {
            hold: self.hold,
            scan: self.scan,
        }
    }
}

/// An agent authenticated for brokered egress.
#[derive(Clone)]
pub(super) enum EgressActor {
    Key(AgentName, String),
    Token(TokenClaims),
}

impl Vault {
    /// Authenticates a brokered request's credential (a named key or a token)
    /// against the store, now: a revoked, expired or suspended credential is
    /// refused on the very request after the change.
    ///
    /// # Errors
    /// [`Error::BadCredential`] with the reason's code.
    pub fn egress_authenticate(&mut self, credential: &str) -> Result<AgentName> {
        Ok(match self.egress_actor(credential)? {
            EgressActor::Key(agent, _) => agent,
            EgressActor::Token(claims) => claims.agent,
        })
    }

    /// Authenticates `credential`, then decides `request` by that agent's
    /// `[[egress]]` rules, reading the secret to attach (audited as a read by
    /// the agent, within its token's scopes).
    ///
    /// # Errors
    /// [`Error::BadCredential`] for the credential; [`Error::NotFound`] when the
    /// rule's secret does not exist (or is not readable); integrity errors.
    pub fn egress_grant(
        &mut self,
        credential: &str,
        request: &EgressRequest<'_>,
    ) -> Result<EgressGrant> {
        self.egress_grant_with_meta(credential, request)
            .map(|(grant, _)| grant)
    }

    /// [`Vault::egress_grant`], with who the request is for and the limits on it.
    ///
    /// # Errors
    /// As [`Vault::egress_grant`].
    pub fn egress_grant_with_meta(
        &mut self,
        credential: &str,
        request: &EgressRequest<'_>,
    ) -> Result<(EgressGrant, EgressMeta)> {
        let (actor, hash) = self.egress_actor_cached(credential)?;
        let agent = match &actor {
            EgressActor::Key(agent, _) => agent.clone(),
            EgressActor::Token(claims) => claims.agent.clone(),
        };
        let key_id = match &actor {
            EgressActor::Key(_, key_id) => key_id.clone(),
            EgressActor::Token(claims) => claims.key_id.to_string(),
        };
        let policy = match self.egress_cache.policy(&hash) {
            Some(policy) => policy,
            None => {
                let policy = self.policy_of(&agent)?;
                self.egress_cache.keep_policy(&hash, &policy);
                policy
            }
        };
        let mut meta = EgressMeta {
            agent: agent.clone(),
            key_id: key_id.clone(),
            rule: None,
            budget: *policy.budget(),
            suspend_on_anomaly: policy.doc().suspend_on_anomaly,
            hold: None,
            scan: policy.egress_scan(),
        };
        // Requests that attach nothing are recorded too (host and port, never
        // the path's query), so a tunnelled or refused attempt leaves a trace.
        let (action, outcome, grant) = match policy.egress().decide(request) {
            EgressDecision::Attach(rule) => {
                meta.rule = policy
                    .egress()
                    .rules()
                    .iter()
                    .position(|r| std::ptr::eq(r, rule))
                    .and_then(|i| u32::try_from(i).ok());
                let rule = rule.clone();
                meta.hold = rule.approval.then(|| policy.approval_wait());
                return Ok((self.attach(actor, &hash, agent, rule)?, meta));
            }
            EgressDecision::Tunnel => (
                AuditAction::EgressTunnel,
                AuditOutcome::Ok,
                EgressGrant::Tunnel(agent.clone()),
            ),
            EgressDecision::Deny => (
                AuditAction::EgressDeny,
                AuditOutcome::EGRESS_DENIED,
                EgressGrant::Deny(agent.clone()),
            ),
            EgressDecision::MethodDenied => (
                AuditAction::EgressDeny,
                AuditOutcome::EGRESS_METHOD_DENIED,
                EgressGrant::MethodDenied(agent.clone()),
            ),
        };
        let target = format!("{}:{}", request.host.to_ascii_lowercase(), request.port);
        self.audit(
            &Principal::Agent(agent),
            Some(&key_id),
            action,
            Some(&target),
            outcome,
        )?;
        Ok((grant, meta))
    }

    fn attach(
        &mut self,
        actor: EgressActor,
        hash: &CredentialHash,
        agent: AgentName,
        rule: crate::policy::egress::EgressRule,
    ) -> Result<EgressGrant> {
        // An `egress` token reads nothing itself: the broker attaches what
        // the rules name, as for the agent's key. Other tokens attach only
        // what their scopes could read.
        let reader = match &actor {
            EgressActor::Token(claims) if !claims.scopes.contains(&Scope::Egress) => Err(claims),
            EgressActor::Token(claims) => Ok(claims.key_id.to_string()),
            EgressActor::Key(_, key_id) => Ok(key_id.clone()),
        };
        let (secret, value) = match (reader, &rule.secret) {
            (Err(claims), secret) => {
                let (path, value, _) =
                    self.read_with_token(claims, &String::from(secret.clone()))?;
                (path, value)
            }
            (Ok(key_id), secret) => {
                let path = match secret {
                    SecretRef::Own(name) => SecretPath {
                        agent: agent.clone(),
                        name: name.clone(),
                    },
                    SecretRef::Granted(path) => path.clone(),
                };
                let actor = Principal::Agent(agent.clone());
                // Kept between requests until anything changes (egress_cache).
                let read = match self.egress_cache.value(hash, &path) {
                    Some(value) => Ok(value),
                    None => self.read_value(&actor, &path).map(|(value, _)| value),
                };
                if let Ok(value) = &read {
                    self.egress_cache.keep_value(hash, &path, value);
                }
                let outcome = AuditOutcome::of(&read);
                self.audit(
                    &actor,
                    Some(&key_id),
                    AuditAction::EgressAttach,
                    Some(&path.to_string()),
                    outcome,
                )?;
                (path, read?)
            }
        };
        Ok(EgressGrant::Attach {
            agent,
            auth: rule.auth,
            secret,
            value,
        })
    }

    pub(super) fn egress_actor(&mut self, credential: &str) -> Result<EgressActor> {
        self.egress_actor_cached(credential).map(|(actor, _)| actor)
    }

    /// [`Vault::egress_actor`] through the cache ([`super::egress_cache`]):
    /// the store is read only when something changed since the credential
    /// was last checked; also the hash its attached values are kept under.
    fn egress_actor_cached(&mut self, credential: &str) -> Result<(EgressActor, CredentialHash)> {
        let hash = credential_hash(credential);
        // Taken before the store is read: a commit during the read changes
        // it, and what was read is not kept.
        let before = self.store.change_stamp()?;
        let now = store::now();
        if let Some(actor) = self.egress_cache.actor(&hash, before, now) {
            return Ok((actor, hash));
        }
        let (actor, expires_at) = self.egress_actor_from_store(credential)?;
        let after = self.store.change_stamp()?;
        self.egress_cache.insert(
            hash,
            actor.clone(),
            expires_at.min(now + CACHE_MAX_AGE_SECS),
            before,
            after,
        );
        Ok((actor, hash))
    }

    /// The credential checked against the store, and when it expires.
    fn egress_actor_from_store(&mut self, credential: &str) -> Result<(EgressActor, i64)> {
        if credential.starts_with(TOKEN_PREFIX) {
            let claims = self.verify_token(credential)?;
            let key = self.key_by_id(&claims.key_id)?;
            let expires_at = i64::try_from(claims.expires_at)
                .unwrap_or(i64::MAX)
                .min(key.expires_at);
            return Ok((EgressActor::Token(claims), expires_at));
        }
        if credential.starts_with(KEY_PREFIX) {
            let key = self.authenticate_key(credential)?;
            return Ok((
                EgressActor::Key(key.agent, key.key_id.into()),
                key.expires_at,
            ));
        }
        Err(Error::BadCredential {
            code: Denial::MalformedKey,
            message: "the credential is neither a named key (avk_) nor a token (avt_)",
        })
    }

    /// The broker CA's stored material, created by `create` on first use (and
    /// recorded in the audit trail). Another process may win the race to create
    /// it; whatever is stored is returned.
    ///
    /// # Errors
    /// [`Error::Integrity`] if the stored blob does not open under this vault's
    /// DEK; what `create` returns; database errors.
    pub fn broker_ca(
        &mut self,
        create: impl FnOnce() -> Result<SecretBytes>,
    ) -> Result<SecretBytes> {
        if let Some(existing) = self.load_broker_ca()? {
            return Ok(existing);
        }
        let fresh = create()?;
        let aad = vault_key_aad(&self.vault_id, BROKER_CA_PURPOSE);
        let blob = aead::seal(&self.dek, &aad, fresh.expose_secret())?;
        let tx = self.store.write(&Principal::Operator)?;
        super::count_encryption(&tx, &self.rows)?;
        if keys::vault_key(&tx, BROKER_CA_PURPOSE)?.is_none() {
            keys::insert_vault_key(&tx, BROKER_CA_PURPOSE, &blob, store::now())?;
            self.audit_in(
                &tx,
                &Principal::Operator,
                None,
                AuditAction::BrokerCaCreate,
                None,
                AuditOutcome::Ok,
            )?;
        }
        tx.commit()?;
        self.load_broker_ca()?.ok_or_else(|| Error::Integrity {
            what: "the broker CA".into(),
        })
    }

    fn load_broker_ca(&self) -> Result<Option<SecretBytes>> {
        let Some(blob) = keys::vault_key(&self.store, BROKER_CA_PURPOSE)? else {
            return Ok(None);
        };
        let aad = vault_key_aad(&self.vault_id, BROKER_CA_PURPOSE);
        aead::open(&self.dek, &aad, &blob)
            .map(Some)
            .ok_or_else(|| Error::Integrity {
                what: "the broker CA".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::EgressGrant;
    use crate::policy::egress::{EgressAuth, EgressRequest};
    use crate::{
        AgentName, KdfParams, Policy, Principal, SecretBytes, SecretPath, SecretString, Vault,
        DB_FILE,
    };

    const OP: &Principal = &Principal::Operator;

    fn req(host: &str) -> EgressRequest<'_> {
        EgressRequest {
            method: "POST",
            host,
            port: 443,
            path: "/v1/chat",
            tls: true,
        }
    }

    // issue 15, proxy: each request is decided by the credential's own agent,
    // reads the current value, is audited, and stops the moment the key is revoked
    #[test]
    fn egress_grants_follow_the_agent_rotation_and_revocation() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut v = Vault::init(
            &dir.path().join("v"),
            &SecretString::new("pw".into()),
            KdfParams::TEST_ONLY,
        )
        .unwrap();
        let hermes = AgentName::parse("hermes").unwrap();
        let finance = AgentName::parse("finance").unwrap();
        let policy = Policy::from_toml(
            "[[egress]]\nhost = \"api.openai.com\"\nsecret = \"OPENAI_API_KEY\"\nauth = \"bearer\"\n",
        )
        .unwrap();
        v.add_agent(OP, &hermes, &policy).unwrap();
        v.add_agent(OP, &finance, &Policy::default()).unwrap();
        let path = SecretPath::parse("hermes/OPENAI_API_KEY").unwrap();
        v.set_secret(OP, &path, &SecretBytes::from_slice(b"sk-one"))
            .unwrap();
        let day = Duration::from_secs(86_400);
        let key = v
            .issue_key(
                OP,
                &AgentName::parse("hermes-key").unwrap(),
                &hermes,
                day,
                false,
            )
            .unwrap();
        let other = v
            .issue_key(
                OP,
                &AgentName::parse("finance-key").unwrap(),
                &finance,
                day,
                false,
            )
            .unwrap();
        let key = key.key.expose_secret().to_owned();
        let other = other.key.expose_secret().to_owned();

        let EgressGrant::Attach {
            auth,
            value,
            secret,
            ..
        } = v.egress_grant(&key, &req("api.openai.com")).unwrap()
        else {
            panic!("no attach")
        };
        assert_eq!(
            (auth, secret.to_string()),
            (EgressAuth::Bearer, path.to_string())
        );
        assert_eq!(value.expose_secret(), b"sk-one");
        assert!(matches!(
            v.egress_grant(&key, &req("evil.example")).unwrap(),
            EgressGrant::Deny(_)
        ));
        // another agent's key gets its own (empty) rules
        assert!(
            matches!(v.egress_grant(&other, &req("api.openai.com")).unwrap(), EgressGrant::Deny(a) if a == finance)
        );
        // rotation: the next grant reads the new value
        v.set_secret(OP, &path, &SecretBytes::from_slice(b"sk-two"))
            .unwrap();
        let EgressGrant::Attach { value, .. } =
            v.egress_grant(&key, &req("api.openai.com")).unwrap()
        else {
            panic!("no attach")
        };
        assert_eq!(value.expose_secret(), b"sk-two");
        let log = v.audit_log(Some(&hermes), None).unwrap();
        let actions: Vec<_> = log
            .iter()
            .map(|r| (r.action.as_str(), r.outcome.as_str()))
            .collect();
        assert!(actions.contains(&("egress.attach", "ok")), "{actions:?}");
        assert!(
            actions.contains(&("egress.deny", "denied:egress_denied")),
            "{actions:?}"
        );
        assert!(log.iter().all(|r| !format!("{r:?}").contains("sk-")));
        // revocation: refused on the next request
        v.revoke_key(OP, "hermes-key").unwrap();
        let err = v.egress_grant(&key, &req("api.openai.com")).unwrap_err();
        assert_eq!(err.code(), "key_revoked");
        assert_eq!(
            v.egress_authenticate("not-a-credential")
                .unwrap_err()
                .code(),
            "malformed_key"
        );
    }

    // issue 15 remainder, item 5: an `egress` token (what a remote-mode
    // brokered child holds) has the broker attach the agent's rules' secrets
    // but reads nothing itself, and is not part of a default token
    #[test]
    fn an_egress_token_gets_attachments_but_reads_nothing() {
        let dir = tempfile::TempDir::new().unwrap();
        let mut v = Vault::init(
            &dir.path().join("v"),
            &SecretString::new("pw".into()),
            KdfParams::TEST_ONLY,
        )
        .unwrap();
        let hermes = AgentName::parse("hermes").unwrap();
        let policy = Policy::from_toml(
            "[[egress]]\nhost = \"api.openai.com\"\nsecret = \"OPENAI_API_KEY\"\nauth = \"bearer\"\n",
        )
        .unwrap();
        v.add_agent(OP, &hermes, &policy).unwrap();
        let path = SecretPath::parse("hermes/OPENAI_API_KEY").unwrap();
        v.set_secret(OP, &path, &SecretBytes::from_slice(b"sk-one"))
            .unwrap();
        let issued = v
            .issue_key(
                OP,
                &AgentName::parse("hermes-key").unwrap(),
                &hermes,
                Duration::from_secs(86_400),
                false,
            )
            .unwrap();
        let info = v
            .authenticate_key_uncounted(issued.key.expose_secret())
            .unwrap();
        use crate::token::Scope;
        let default = v
            .mint_token(&info, &crate::TokenRequest::default())
            .unwrap();
        assert!(!default.claims.scopes.contains(&Scope::Egress));
        let minted = v
            .mint_token(
                &info,
                &crate::TokenRequest {
                    scopes: Some(vec![Scope::Egress]),
                    ttl: None,
                },
            )
            .unwrap();
        assert_eq!(minted.claims.scopes, vec![Scope::Egress]);
        // it may outlive the policy's read-token TTL (1 h by default), as a brokered run does
        let day = v
            .mint_token(
                &info,
                &crate::TokenRequest {
                    scopes: Some(vec![Scope::Egress]),
                    ttl: Some(Duration::from_secs(20 * 3600)),
                },
            )
            .unwrap();
        assert!(day.claims.expires_at - day.claims.issued_at >= 20 * 3600);
        let token = minted.token.expose_secret().to_owned();
        let EgressGrant::Attach { value, .. } =
            v.egress_grant(&token, &req("api.openai.com")).unwrap()
        else {
            panic!("no attach")
        };
        assert_eq!(value.expose_secret(), b"sk-one");
        assert!(matches!(
            v.egress_grant(&token, &req("evil.example")).unwrap(),
            EgressGrant::Deny(_)
        ));
        let claims = v.verify_token(&token).unwrap();
        assert_eq!(
            v.env_with_token(&claims).unwrap_err().code(),
            "out_of_scope"
        );
        assert_eq!(
            v.read_with_token(&claims, "OPENAI_API_KEY")
                .unwrap_err()
                .code(),
            "out_of_scope"
        );
    }

    // issue 15, local CA: the CA key is created once, sealed in the vault (not in
    // clear in the file), survives unlock and rekey, and is never re-created
    #[test]
    fn broker_ca_is_sealed_in_the_vault_and_survives_unlock_and_rekey() {
        let dir = tempfile::TempDir::new().unwrap();
        let home = dir.path().join("v");
        let pw = SecretString::new("pw".into());
        let mut vault = Vault::init(&home, &pw, KdfParams::TEST_ONLY).unwrap();
        let marker = b"-----BEGIN PRIVATE KEY----- broker-ca-test-marker";
        let first = vault
            .broker_ca(|| Ok(SecretBytes::from_slice(marker)))
            .unwrap();
        assert_eq!(first.expose_secret(), marker);
        let again = vault
            .broker_ca(|| panic!("the CA must not be generated twice"))
            .unwrap();
        assert_eq!(again.expose_secret(), marker);
        drop(vault);
        let raw = std::fs::read(home.join(DB_FILE)).unwrap();
        assert!(!raw.windows(marker.len()).any(|w| w == marker));
        let mut vault = Vault::unlock(&home, &pw).unwrap();
        vault.rekey(&crate::Principal::Operator, &pw).unwrap();
        let after = vault
            .broker_ca(|| panic!("re-created after rekey"))
            .unwrap();
        assert_eq!(after.expose_secret(), marker);
    }
}
