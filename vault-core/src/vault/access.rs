//! What an agent may read with a verified token (its secrets, its env, what
//! its scans may name), and the operator's view of an agent's env and policy.
//! Keys are keys.rs, tokens tokens.rs, rate limits and suspension limits.rs.

use crate::store::Store as _;
use std::collections::HashSet;

use super::limits::*;
use super::tokens::*;
use super::{not_found, require_operator, Vault};
use crate::error::Result;
use crate::names::{AgentName, SecretName, SecretPath};
use crate::policy::Policy;
use crate::secret::SecretBytes;
use crate::store::{agents, secrets};
use crate::token::{scopes_within, Scope, TokenClaims};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Denial;
use crate::Principal;

impl Vault {
    /// Reads one secret with a verified token: `NAME` (the agent's own) or
    /// `AGENT/NAME` (granted by policy). Out of scope is an error of its own;
    /// not granted and missing look the same.
    pub fn read_with_token(
        &self,
        claims: &TokenClaims,
        name: &str,
    ) -> Result<(SecretPath, SecretBytes, i64)> {
        let path = match name.split_once('/') {
            Some(_) => SecretPath::parse(name)?,
            None => SecretPath {
                agent: claims.agent.clone(),
                name: SecretName::parse(name)?,
            },
        };
        let scope_name = if path.agent == claims.agent {
            path.name.to_string()
        } else {
            path.to_string()
        };
        let actor = Principal::Agent(claims.agent.clone());
        let target = path.to_string();
        self.token_within_limit(claims)?;
        let read = self.audited_read(
            &actor,
            Some(&claims.key_id),
            AuditAction::SecretRead,
            &target,
            || {
                if !scopes_within(&[Scope::Secret(scope_name)], &claims.scopes) {
                    return Err(bad(
                        Denial::OutOfScope,
                        "the token's scopes do not allow this read",
                    ));
                }
                self.read_value(&actor, &path)
            },
        );
        let (value, version) = self.suspend_on_scope_violation(claims, read)?;
        Ok((path, value, version))
    }

    /// The env a verified token may fetch in one call (`env:read`).
    pub fn env_with_token(&self, claims: &TokenClaims) -> Result<Vec<(SecretName, SecretBytes)>> {
        let actor = Principal::Agent(claims.agent.clone());
        self.token_within_limit(claims)?;
        let read = self.audited_read(
            &actor,
            Some(&claims.key_id),
            AuditAction::EnvRead,
            claims.agent.as_str(),
            || {
                if !scopes_within(&[Scope::EnvRead], &claims.scopes) {
                    return Err(bad(
                        Denial::OutOfScope,
                        "the token's scopes do not allow reading the env",
                    ));
                }
                self.env_values(&claims.agent)
            },
        );
        self.suspend_on_scope_violation(claims, read)
    }

    /// Admits one message scan for a verified token (`POST /v1/scan`) and
    /// says which stored secrets it may be matched against: those the token
    /// could read (its agent's own and granted ones, within its scopes), and
    /// no other, so a scan is never an oracle for another agent's values.
    /// Scans are limited per key like reads (the policy's `reads_per_minute`,
    /// or [`DEFAULT_SCANS_PER_MINUTE`] when it sets none) and each leaves an
    /// audit record `scan`.
    ///
    /// # Errors
    /// [`Error::RateLimited`]; vault errors.
    pub fn scan_with_token(&self, claims: &TokenClaims) -> Result<HashSet<SecretPath>> {
        let key = self.key_by_id(&claims.key_id)?;
        let policy = self.policy_of(&key.agent)?;
        self.within_limit(&key, &policy, Limit::Scans)?;
        let env = scopes_within(&[Scope::EnvRead], &claims.scopes);
        let mut readable = HashSet::new();
        for row in secrets::list(&self.store, &self.rows, None)? {
            let Ok(path) = SecretPath::parse(&format!("{}/{}", row.agent, row.name)) else {
                continue;
            };
            if !policy.may_read(&claims.agent, &path) {
                continue;
            }
            let scope_name = if path.agent == claims.agent {
                path.name.to_string()
            } else {
                path.to_string()
            };
            if env || scopes_within(&[Scope::Secret(scope_name)], &claims.scopes) {
                readable.insert(path);
            }
        }
        let actor = Principal::Agent(claims.agent.clone());
        self.audit(
            &actor,
            Some(&claims.key_id),
            AuditAction::Scan,
            None,
            AuditOutcome::Ok,
        )?;
        Ok(readable)
    }

    /// Every secret `agent`'s policy grants, named for the environment: its
    /// own secrets first; a granted secret whose name an own secret already
    /// uses is left out. The operator may ask for any agent; an agent only
    /// for itself.
    pub fn env_of(
        &self,
        actor: &Principal,
        agent: &AgentName,
    ) -> Result<Vec<(SecretName, SecretBytes)>> {
        self.audited_read(actor, None, AuditAction::EnvRead, agent.as_str(), || {
            if let Principal::Agent(me) = actor {
                if me != agent {
                    return Err(not_found("agent", agent));
                }
            }
            self.env_values(agent)
        })
    }

    fn env_values(&self, agent: &AgentName) -> Result<Vec<(SecretName, SecretBytes)>> {
        let mut env = Vec::new();
        for (path, _) in self.env_versions(agent)? {
            let (value, _) = self.read_value(&Principal::Agent(agent.clone()), &path)?;
            env.push((path.name, value));
        }
        Ok(env)
    }

    /// Which secret (and version) supplies each variable of `agent`'s env:
    /// own secrets first, then granted ones whose name is not taken. Metadata
    /// only, so `vault run --watch` can poll it cheaply for rotations.
    pub fn env_versions(&self, agent: &AgentName) -> Result<Vec<(SecretPath, i64)>> {
        let policy = self.policy_of(agent)?;
        let mut visible: Vec<_> = secrets::list(&self.store, &self.rows, None)?
            .into_iter()
            .filter(|row| row.agent == agent.as_str() || policy.grants_from_others())
            .filter_map(|row| {
                let path = SecretPath::parse(&format!("{}/{}", row.agent, row.name)).ok()?;
                Some((path, row.current_version))
            })
            .filter(|(path, _)| policy.may_read(agent, path))
            .collect();
        // own first, then granted, each sorted by name
        visible.sort_by_key(|(p, _)| (p.agent != *agent, p.name.clone()));
        let mut seen = HashSet::new();
        visible.retain(|(p, _)| seen.insert(p.name.clone()));
        Ok(visible)
    }

    /// Sets an agent's policy (operator only).
    pub fn set_policy(
        &mut self,
        actor: &Principal,
        agent: &AgentName,
        policy: &Policy,
    ) -> Result<()> {
        require_operator(actor, "change policies")?;
        let tx = self.store.write(actor)?;
        let agent_id = agents::id_of(&tx, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", agent))?;
        agents::set_policy(&tx, &self.rows, agent_id, &policy.to_json())?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::PolicySet,
            Some(agent.as_str()),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// An agent's policy: the operator may see any, an agent its own.
    pub fn policy(&self, actor: &Principal, agent: &AgentName) -> Result<Policy> {
        if let Principal::Agent(me) = actor {
            if me != agent {
                return Err(not_found("agent", agent));
            }
        }
        let policy = self.policy_of(agent)?;
        Ok((*policy).clone())
    }

    pub(super) fn policy_of(&self, agent: &AgentName) -> Result<std::sync::Arc<Policy>> {
        self.policy_in(&self.store, agent)
    }

    /// As [`Vault::policy_of`], read through `conn` (an agent's read).
    pub(super) fn policy_in(
        &self,
        conn: &crate::store::Handle,
        agent: &AgentName,
    ) -> Result<std::sync::Arc<Policy>> {
        Ok(self.agent_and_policy_in(conn, agent)?.1)
    }

    /// The agent's id and its compiled policy, from one read of its row.
    pub(super) fn agent_and_policy_in(
        &self,
        conn: &crate::store::Handle,
        agent: &AgentName,
    ) -> Result<(i64, std::sync::Arc<Policy>)> {
        let (agent_id, json) = agents::id_and_policy(conn, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", agent))?;
        if let Some((text, policy)) = self.policies.borrow().get(agent.as_str()) {
            if *text == json {
                return Ok((agent_id, policy.clone()));
            }
        }
        let policy = std::sync::Arc::new(Policy::from_json(&json)?);
        self.policies
            .borrow_mut()
            .insert(agent.as_str().to_owned(), (json, policy.clone()));
        Ok((agent_id, policy))
    }
}
