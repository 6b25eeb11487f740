//! What the web console (vault-server's `/ui/`) needs from the vault: login
//! sessions that are random, stored only as hashes, tagged so a file edit
//! cannot plant or extend one, and revocable all at once; and the audit
//! trail read newest first through indexes, so its pages stay fast on a
//! long trail. Every state change the console makes goes through the same
//! [`Vault`] methods as the CLI; this module adds only what a browser
//! sign-in needs.

use crate::store::Store as _;
use std::collections::BTreeMap;
use std::time::Duration;

use super::audit::to_record;
use super::{require_operator, Vault};
use crate::credential::{hex, sha256};
use crate::crypto::rand;
use crate::crypto::rowtag::{Field, Table};
use crate::error::Result;
use crate::secret::SecretString;
use crate::store::{self, console};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::{AuditRecord, Principal};

/// Where an audit record came from, for the front ends that name
/// themselves with a fixed word (the CLI adds its pid to `cli`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The HTTP API.
    Server,
    /// The web console at `/ui/`.
    Console,
}

impl Origin {
    /// The wire name, as stored in an audit record's `origin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Server => "server",
            Origin::Console => "console",
        }
    }
}

/// How long a console sign-in lasts.
pub const CONSOLE_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// The prefix of a console session id (the cookie's value).
pub const CONSOLE_SESSION_PREFIX: &str = "vcs_";

/// A new console session: the id to set as the cookie (shown nowhere
/// else, stored only hashed) and when it expires (unix seconds).
pub struct ConsoleSession {
    /// `vcs_` and 64 hex digits.
    pub id: SecretString,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Which audit records to read, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// `agent:NAME` or `operator`.
    pub actor: Option<String>,
    /// Only these actions (none: all).
    pub actions: Vec<String>,
    /// Only records before this seq (the next page).
    pub before_seq: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

impl Vault {
    /// Opens a console session for the operator (the caller has checked a
    /// one-time login code); recorded as `console.login`.
    ///
    /// # Errors
    /// The actor is not the operator, or the write fails.
    pub fn console_session_open(
        &mut self,
        actor: &Principal,
        ttl: Duration,
    ) -> Result<ConsoleSession> {
        require_operator(actor, "open console sessions")?;
        let raw = rand::array::<32>()?;
        let id = SecretString::new(format!("{CONSOLE_SESSION_PREFIX}{}", hex(&raw)));
        let id_hash = sha256(id.expose_secret().as_bytes()).to_vec();
        let now = store::now();
        let expires_at = now + ttl.as_secs() as i64;
        let tag = self.session_tag(&id_hash, now, expires_at);
        let tx = self.store.write(actor)?;
        console::delete_expired_sessions(&tx, now)?;
        console::insert_session(
            &tx,
            &console::SessionRow {
                id_hash: id_hash.clone(),
                created_at: now,
                expires_at,
                tag,
            },
        )?;
        // The hash's first bytes name the session in the trail; they do not
        // help anyone find the id.
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::ConsoleLogin,
            Some(&format!("session {}", &hex(&id_hash)[..12])),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(ConsoleSession { id, expires_at })
    }

    /// Whether `id` is a live console session: its row exists, its tag
    /// verifies and it has not expired. Returns its expiry. Reads only.
    ///
    /// # Errors
    /// The read fails.
    pub fn console_session_check(&self, id: &str) -> Result<Option<i64>> {
        if !id.starts_with(CONSOLE_SESSION_PREFIX) || id.len() != CONSOLE_SESSION_PREFIX.len() + 64
        {
            return Ok(None);
        }
        let id_hash = sha256(id.as_bytes());
        let Some(row) = console::session(&self.store, &id_hash)? else {
            return Ok(None);
        };
        let want = self.session_tag(&row.id_hash, row.created_at, row.expires_at);
        let genuine = bool::from(subtle::ConstantTimeEq::ct_eq(
            want.as_slice(),
            row.tag.as_slice(),
        ));
        Ok((genuine && row.expires_at > store::now()).then_some(row.expires_at))
    }

    /// Ends one console session (logout); recorded as `console.logout`.
    /// Whether it was there.
    ///
    /// # Errors
    /// The write fails.
    pub fn console_session_close(&mut self, id: &str) -> Result<bool> {
        let id_hash = sha256(id.as_bytes());
        let tx = self.store.write(&Principal::Operator)?;
        let gone = console::delete_session(&tx, &id_hash)?;
        if gone {
            self.audit_in(
                &tx,
                &Principal::Operator,
                None,
                AuditAction::ConsoleLogout,
                Some(&format!("session {}", &hex(&id_hash)[..12])),
                AuditOutcome::Ok,
            )?;
        }
        tx.commit()?;
        Ok(gone)
    }

    /// Ends every console session (`vault ui logout --all`); recorded as
    /// `console.logout_all`. How many there were.
    ///
    /// # Errors
    /// The actor is not the operator, or the write fails.
    pub fn console_sessions_close_all(&mut self, actor: &Principal) -> Result<usize> {
        require_operator(actor, "end console sessions")?;
        let tx = self.store.write(actor)?;
        let n = console::delete_all_sessions(&tx)?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::ConsoleLogoutAll,
            Some(&format!("{n} session(s)")),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(n)
    }

    fn session_tag(&self, id_hash: &[u8], created_at: i64, expires_at: i64) -> Vec<u8> {
        self.rows.tag(
            Table::ConsoleSessions,
            &[
                Field::Blob(id_hash),
                Field::Int(created_at),
                Field::Int(expires_at),
            ],
        )
    }

    /// Audit records newest first, by [`AuditQuery`] (indexed: the
    /// console's audit and leaks pages).
    ///
    /// # Errors
    /// The actor is not the operator, or the read fails.
    pub fn audit_search(&self, actor: &Principal, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        require_operator(actor, "read the audit trail")?;
        let actions: Vec<&str> = q.actions.iter().map(String::as_str).collect();
        Ok(console::search(
            &self.store,
            q.actor.as_deref(),
            q.before_seq,
            &actions,
            q.limit.min(10_000) as i64,
        )?
        .into_iter()
        .map(to_record)
        .collect())
    }

    /// How many successful `action` records each key id has in the UTC
    /// days from the one holding `since_ms` on (the overview's tokens minted
    /// today), from the per-day rollup of schema 018 (kept by triggers on the
    /// trail, so it is one row per key and day to read however long the trail).
    ///
    /// # Errors
    /// The actor is not the operator, or the read fails.
    pub fn audit_count_by_key(
        &self,
        actor: &Principal,
        action: crate::AuditAction,
        since_ms: i64,
    ) -> Result<BTreeMap<String, u64>> {
        self.audit_count(actor, false, action, since_ms)
    }

    /// [`Vault::audit_count_by_key`] per acting agent, by name (records of
    /// the operator or of no agent are not counted).
    ///
    /// # Errors
    /// The actor is not the operator, or the read fails.
    pub fn audit_count_by_agent(
        &self,
        actor: &Principal,
        action: crate::AuditAction,
        since_ms: i64,
    ) -> Result<BTreeMap<String, u64>> {
        let counts = self.audit_count(actor, true, action, since_ms)?;
        Ok(counts
            .into_iter()
            .filter_map(|(a, n)| Some((a.strip_prefix("agent:")?.to_owned(), n)))
            .collect())
    }

    fn audit_count(
        &self,
        actor: &Principal,
        by_actor: bool,
        action: crate::AuditAction,
        since_ms: i64,
    ) -> Result<BTreeMap<String, u64>> {
        require_operator(actor, "read the audit trail")?;
        let day = since_ms - since_ms.rem_euclid(86_400_000);
        Ok(
            console::count_by_key(&self.store, by_actor, action.as_str(), day)?
                .into_iter()
                .map(|(k, n)| (k, n.max(0) as u64))
                .collect(),
        )
    }

    /// `EXPLAIN QUERY PLAN` of the console's audit queries, by name (the
    /// bench prints them to show they use indexes).
    ///
    /// # Errors
    /// The read fails.
    pub fn console_query_plans(&self) -> Result<Vec<(String, Vec<String>)>> {
        Ok(vec![
            (
                "leaks page (3 actions, newest first)".into(),
                console::query_plan(&self.store, &console::search_sql(false, false, 3))?,
            ),
            (
                "audit page (no filter, newest first)".into(),
                console::query_plan(&self.store, &console::search_sql(false, true, 0))?,
            ),
            (
                "audit page (one agent, newest first)".into(),
                console::query_plan(&self.store, &console::search_sql(true, false, 0))?,
            ),
            (
                "audit page (one action, newest first)".into(),
                console::query_plan(&self.store, &console::search_sql(false, false, 1))?,
            ),
            (
                "tokens minted today per key (018 rollup)".into(),
                console::query_plan(&self.store, console::COUNT_BY_KEY_SQL)?,
            ),
            (
                "tokens minted today per agent (018 rollup)".into(),
                console::query_plan(&self.store, console::COUNT_BY_ACTOR_SQL)?,
            ),
            (
                "spend chart by day (day/host rollup since a day)".into(),
                console::query_plan(
                    &self.store,
                    &crate::store::usage::page_buckets_sql(
                        self.store.backend(),
                        crate::usage::PageSums::Day,
                    ),
                )?,
            ),
            (
                "spend by host (day/host rollup since a day)".into(),
                console::query_plan(
                    &self.store,
                    &crate::store::usage::page_buckets_sql(
                        self.store.backend(),
                        crate::usage::PageSums::Host,
                    ),
                )?,
            ),
            (
                "spend by agent and key (month/key rollup, this month)".into(),
                console::query_plan(
                    &self.store,
                    &crate::store::usage::page_buckets_sql(
                        self.store.backend(),
                        crate::usage::PageSums::Key,
                    ),
                )?,
            ),
            (
                "overview spend today (daily rollup since midnight)".into(),
                console::query_plan(
                    &self.store,
                    &crate::store::usage::daily_buckets_sql(
                        self.store.backend(),
                        crate::usage::GroupBy::Key,
                    ),
                )?,
            ),
            (
                "spend chart by hour (request rows since a time)".into(),
                console::query_plan(
                    &self.store,
                    &crate::store::usage::buckets_sql(
                        self.store.backend(),
                        crate::usage::GroupBy::Hour,
                    ),
                )?,
            ),
        ])
    }
}

#[cfg(test)]
mod tests;
mod verify;

pub use verify::{AuditCheckpoint, AuditVerified, VerifyStep};
