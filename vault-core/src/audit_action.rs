//! The audit trail's vocabulary: every action a record names, one variant
//! each, with one wire name ([`AuditAction::as_str`]) that the store writes,
//! the chain MACs and `vault audit log` prints. The names are fixed: the
//! audit chain and every script reading it depend on them, so a variant is
//! added, never renamed.

use std::fmt;

/// What an audit record says was done (or tried).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    /// `agent.add`
    AgentAdd,
    /// `agent.remove`
    AgentRemove,
    /// `approval.approve`
    ApprovalApprove,
    /// `approval.deny`
    ApprovalDeny,
    /// `approval.expire`
    ApprovalExpire,
    /// `approval.open`
    ApprovalOpen,
    /// `approval.reopen`
    ApprovalReopen,
    /// `audit.prune`: records before a time removed, a checkpoint kept (issue 19).
    AuditPrune,
    /// `audit.retention`: the default age `vault audit prune` removes set or cleared.
    AuditRetention,
    /// `broker.ca.create`
    BrokerCaCreate,
    /// `console.login`: a console session began (one-time sign-in URL used).
    ConsoleLogin,
    /// `console.logout`
    ConsoleLogout,
    /// `console.logout_all`: every console session revoked.
    ConsoleLogoutAll,
    /// `doctor.run`
    DoctorRun,
    /// `egress.attach`
    EgressAttach,
    /// `egress.deny`
    EgressDeny,
    /// `egress.exfiltration`: a credential found in what an agent sent.
    EgressExfiltration,
    /// `egress.hold.send`: an approved held request went out.
    EgressHoldSend,
    /// `egress.hold.unverified`: a held request's approval failed its check; not sent.
    EgressHoldUnverified,
    /// `egress.tunnel`
    EgressTunnel,
    /// `env.read`
    EnvRead,
    /// `key.auth`
    KeyAuth,
    /// `key.issue`
    KeyIssue,
    /// `key.reinstate`
    KeyReinstate,
    /// `key.revoke`
    KeyRevoke,
    /// `key.revoke_tokens`
    KeyRevokeTokens,
    /// `key.suspend`
    KeySuspend,
    /// `notify.configure`
    NotifyConfigure,
    /// `policy.set`
    PolicySet,
    /// `rotation.configure`
    RotationConfigure,
    /// `rotation.done`
    RotationDone,
    /// `rotation.remove`: a finished rotation's journal row deleted (`vault rotation rm`).
    RotationRemove,
    /// `rotation.stalled`
    RotationStalled,
    /// `rotation.start`
    RotationStart,
    /// `scan`
    Scan,
    /// `secret.leaked`
    SecretLeaked,
    /// `secret.read`
    SecretRead,
    /// `secret.remove`
    SecretRemove,
    /// `secret.rollback`: a kept version stored again as the current one.
    SecretRollback,
    /// `secret.rotate`
    SecretRotate,
    /// `secret.set`
    SecretSet,
    /// `server.start`
    ServerStart,
    /// `server.stop`
    ServerStop,
    /// `target.add`
    TargetAdd,
    /// `target.remove`
    TargetRemove,
    /// `token.attenuate`
    TokenAttenuate,
    /// `token.mint`
    TokenMint,
    /// `token.revoke`
    TokenRevoke,
    /// `token.verify`
    TokenVerify,
    /// `vault.backup`
    VaultBackup,
    /// `vault.init`
    VaultInit,
    /// `vault.integrity_upgrade`
    VaultIntegrityUpgrade,
    /// `vault.migrate`
    VaultMigrate,
    /// `vault.passwd`
    VaultPasswd,
    /// `vault.rekey`
    VaultRekey,
    /// `vault.restore`
    VaultRestore,
}

impl AuditAction {
    /// Every action, in variant order.
    pub const ALL: &'static [AuditAction] = &[
        AuditAction::AgentAdd,
        AuditAction::AgentRemove,
        AuditAction::ApprovalApprove,
        AuditAction::ApprovalDeny,
        AuditAction::ApprovalExpire,
        AuditAction::ApprovalOpen,
        AuditAction::ApprovalReopen,
        AuditAction::AuditPrune,
        AuditAction::AuditRetention,
        AuditAction::BrokerCaCreate,
        AuditAction::ConsoleLogin,
        AuditAction::ConsoleLogout,
        AuditAction::ConsoleLogoutAll,
        AuditAction::DoctorRun,
        AuditAction::EgressAttach,
        AuditAction::EgressDeny,
        AuditAction::EgressExfiltration,
        AuditAction::EgressHoldSend,
        AuditAction::EgressHoldUnverified,
        AuditAction::EgressTunnel,
        AuditAction::EnvRead,
        AuditAction::KeyAuth,
        AuditAction::KeyIssue,
        AuditAction::KeyReinstate,
        AuditAction::KeyRevoke,
        AuditAction::KeyRevokeTokens,
        AuditAction::KeySuspend,
        AuditAction::NotifyConfigure,
        AuditAction::PolicySet,
        AuditAction::RotationConfigure,
        AuditAction::RotationDone,
        AuditAction::RotationRemove,
        AuditAction::RotationStalled,
        AuditAction::RotationStart,
        AuditAction::Scan,
        AuditAction::SecretLeaked,
        AuditAction::SecretRead,
        AuditAction::SecretRemove,
        AuditAction::SecretRollback,
        AuditAction::SecretRotate,
        AuditAction::SecretSet,
        AuditAction::ServerStart,
        AuditAction::ServerStop,
        AuditAction::TargetAdd,
        AuditAction::TargetRemove,
        AuditAction::TokenAttenuate,
        AuditAction::TokenMint,
        AuditAction::TokenRevoke,
        AuditAction::TokenVerify,
        AuditAction::VaultBackup,
        AuditAction::VaultInit,
        AuditAction::VaultIntegrityUpgrade,
        AuditAction::VaultMigrate,
        AuditAction::VaultPasswd,
        AuditAction::VaultRekey,
        AuditAction::VaultRestore,
    ];

    /// The wire name, as stored and chained.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::AgentAdd => "agent.add",
            AuditAction::AgentRemove => "agent.remove",
            AuditAction::ApprovalApprove => "approval.approve",
            AuditAction::ApprovalDeny => "approval.deny",
            AuditAction::ApprovalExpire => "approval.expire",
            AuditAction::ApprovalOpen => "approval.open",
            AuditAction::ApprovalReopen => "approval.reopen",
            AuditAction::AuditPrune => "audit.prune",
            AuditAction::AuditRetention => "audit.retention",
            AuditAction::BrokerCaCreate => "broker.ca.create",
            AuditAction::ConsoleLogin => "console.login",
            AuditAction::ConsoleLogout => "console.logout",
            AuditAction::ConsoleLogoutAll => "console.logout_all",
            AuditAction::DoctorRun => "doctor.run",
            AuditAction::EgressAttach => "egress.attach",
            AuditAction::EgressDeny => "egress.deny",
            AuditAction::EgressExfiltration => "egress.exfiltration",
            AuditAction::EgressHoldSend => "egress.hold.send",
            AuditAction::EgressHoldUnverified => "egress.hold.unverified",
            AuditAction::EgressTunnel => "egress.tunnel",
            AuditAction::EnvRead => "env.read",
            AuditAction::KeyAuth => "key.auth",
            AuditAction::KeyIssue => "key.issue",
            AuditAction::KeyReinstate => "key.reinstate",
            AuditAction::KeyRevoke => "key.revoke",
            AuditAction::KeyRevokeTokens => "key.revoke_tokens",
            AuditAction::KeySuspend => "key.suspend",
            AuditAction::NotifyConfigure => "notify.configure",
            AuditAction::PolicySet => "policy.set",
            AuditAction::RotationConfigure => "rotation.configure",
            AuditAction::RotationDone => "rotation.done",
            AuditAction::RotationRemove => "rotation.remove",
            AuditAction::RotationStalled => "rotation.stalled",
            AuditAction::RotationStart => "rotation.start",
            AuditAction::Scan => "scan",
            AuditAction::SecretLeaked => "secret.leaked",
            AuditAction::SecretRead => "secret.read",
            AuditAction::SecretRemove => "secret.remove",
            AuditAction::SecretRollback => "secret.rollback",
            AuditAction::SecretRotate => "secret.rotate",
            AuditAction::SecretSet => "secret.set",
            AuditAction::ServerStart => "server.start",
            AuditAction::ServerStop => "server.stop",
            AuditAction::TargetAdd => "target.add",
            AuditAction::TargetRemove => "target.remove",
            AuditAction::TokenAttenuate => "token.attenuate",
            AuditAction::TokenMint => "token.mint",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::TokenVerify => "token.verify",
            AuditAction::VaultBackup => "vault.backup",
            AuditAction::VaultInit => "vault.init",
            AuditAction::VaultIntegrityUpgrade => "vault.integrity_upgrade",
            AuditAction::VaultMigrate => "vault.migrate",
            AuditAction::VaultPasswd => "vault.passwd",
            AuditAction::VaultRekey => "vault.rekey",
            AuditAction::VaultRestore => "vault.restore",
        }
    }

    /// The action a stored wire name names, if it is one of this build's.
    pub fn parse(name: &str) -> Option<AuditAction> {
        AuditAction::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == name)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<AuditAction> for str {
    fn eq(&self, other: &AuditAction) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<AuditAction> for String {
    fn eq(&self, other: &AuditAction) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    #[test]
    fn every_wire_name_is_one_actions_and_parses_back() {
        // issue 14, item 3: one name per action, so the chain and the limiter agree
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert!(seen.insert(a.as_str()), "{a} twice");
            assert_eq!(AuditAction::parse(a.as_str()), Some(*a));
        }
        assert_eq!(AuditAction::SecretRead.as_str(), "secret.read");
        assert_eq!(AuditAction::KeyRevokeTokens.as_str(), "key.revoke_tokens");
        assert_eq!(AuditAction::parse("secret.reads"), None);
    }
}
