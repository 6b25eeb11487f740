//! Agents: registering, listing and removing them (with their keys,
//! secrets and targets).

use crate::error::{Error, Result};
use crate::names::AgentName;
use crate::policy::Policy;
use crate::store::Store as _;
use crate::store::{self, agents};
use crate::AuditAction;
use crate::AuditOutcome;

use super::*;

/// An agent as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    /// Its name.
    pub name: AgentName,
    /// Unix seconds.
    pub created_at: i64,
    /// How many secrets it owns.
    pub secret_count: i64,
}

impl Vault {
    /// Registers an agent (operator only) with `policy` (`Policy::default()`:
    /// its own secrets only, 1 h tokens).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::Refused`] for a non-operator.
    pub fn add_agent(
        &mut self,
        actor: &Principal,
        name: &AgentName,
        policy: &Policy,
    ) -> Result<()> {
        require_operator(actor, "add agents")?;
        let tx = self.store.write(actor)?;
        if !agents::insert(
            &tx,
            &self.rows,
            name.as_str(),
            &policy.to_json(),
            store::now(),
        )? {
            return Err(Error::AlreadyExists {
                what: "agent",
                name: name.to_string(),
            });
        }
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::AgentAdd,
            Some(name.as_str()),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Lists the agents the actor may see: all for the operator, itself for an agent.
    pub fn list_agents(&self, actor: &Principal) -> Result<Vec<AgentInfo>> {
        let only = match actor {
            Principal::Operator => None,
            Principal::Agent(a) => Some(a.as_str()),
        };
        agents::list(&self.store, &self.rows, only)?
            .into_iter()
            .map(|row| {
                Ok(AgentInfo {
                    name: AgentName::parse(&row.name)?,
                    created_at: row.created_at,
                    secret_count: row.secret_count,
                })
            })
            .collect()
    }

    /// Removes an agent. Refused while it owns secrets unless `force`, which
    /// removes them too.
    pub fn remove_agent(
        &mut self,
        actor: &Principal,
        name: &AgentName,
        force: bool,
    ) -> Result<i64> {
        require_operator(actor, "remove agents")?;
        let tx = self.store.write(actor)?;
        let row = agents::list(&tx, &self.rows, Some(name.as_str()))?
            .pop()
            .ok_or_else(|| not_found("agent", name))?;
        if row.secret_count > 0 && !force {
            return Err(Error::Refused {
                reason: format!(
                    "agent {name} still owns {} secret(s); remove them first or pass --force",
                    row.secret_count
                ),
            });
        }
        agents::delete(&tx, row.agent_id)?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::AgentRemove,
            Some(name.as_str()),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        self.checkpoint_after_erasure()?;
        Ok(row.secret_count)
    }
}
