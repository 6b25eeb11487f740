//! Where `vault run` and `vault env` get an agent's secrets from: a server
//! (remote mode: `VAULT_ADDR` and the agent's key), the local vault as the
//! operator, or either of them through the egress broker. Chosen once here,
//! from the flags and the environment, so both commands choose alike.

use vault_client::{Remote, AGENT_KEY_VAR};
use vault_core::AgentName;

use crate::error::{invalid, Result};

/// One of the four places an agent's environment comes from.
pub enum Source {
    /// A server, as the agent whose key is in `VAULT_AGENT_KEY` (a remote
    /// is used whenever one is configured, `--agent` or not).
    Remote(Remote),
    /// A server's broker, as that agent (`--broker` without `--agent`).
    RemoteBroker(Remote),
    /// The local vault's broker at `addr`, for `agent`.
    LocalBroker {
        /// The agent.
        agent: AgentName,
        /// The broker's address (`--broker-addr`, else `VAULT_BROKER`).
        addr: String,
    },
    /// The local vault, as the operator, for this agent.
    Local(AgentName),
}

impl Source {
    /// Chooses from `--agent`, `--broker` and `--broker-addr` and the
    /// environment.
    ///
    /// # Errors
    /// No agent where one is needed, a bad agent name, a bad remote
    /// configuration or no broker address.
    pub fn choose(agent: Option<&str>, broker: bool, broker_addr: Option<&str>) -> Result<Source> {
        if broker && agent.is_none() {
            if let Some(remote) = Remote::from_env(AGENT_KEY_VAR, None)? {
                return Ok(Source::RemoteBroker(remote));
            }
        }
        if broker {
            let agent = agent.ok_or_else(|| {
                invalid("--broker needs --agent, or VAULT_ADDR and VAULT_AGENT_KEY (remote mode)")
            })?;
            let agent = AgentName::parse(agent)?;
            let addr = crate::broker::broker_addr(broker_addr)?;
            return Ok(Source::LocalBroker { agent, addr });
        }
        if let Some(remote) = Remote::from_env(AGENT_KEY_VAR, None)? {
            return Ok(Source::Remote(remote));
        }
        let agent = agent.ok_or_else(|| {
            invalid("--agent is required (or set VAULT_ADDR and VAULT_AGENT_KEY)")
        })?;
        Ok(Source::Local(AgentName::parse(agent)?))
    }
}
