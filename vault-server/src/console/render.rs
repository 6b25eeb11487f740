//! The console's HTML, written with maud: every interpolated value is
//! escaped by the template engine itself, so a secret name, an agent name or
//! an audit target holding markup shows as text. No inline script or style
//! (the CSP forbids both); the one stylesheet and the one script are
//! embedded files served from `/ui/assets/`.

use maud::{html, Markup, DOCTYPE};
use vault_core::view::ApprovalView;
use vault_core::AuditVerdict;
use vault_core::{ApprovalKind, ApprovalState, KeyStatus};

use super::chain::{ChainView, Checked};
use super::chart;
use super::data::{Approvals, Audit, Leak, Overview, Spend};
use super::spend::{dollars, Bucket, SpendLine};

/// Which page is showing (for the navigation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Spend,
    Approvals,
    Leaks,
    Audit,
    Doctor,
    None,
}

const NAV: &[(Nav, &str, &str)] = &[
    (Nav::Overview, "/ui/", "Overview"),
    (Nav::Spend, "/ui/spend", "Spend"),
    (Nav::Approvals, "/ui/approvals", "Approvals"),
    (Nav::Leaks, "/ui/leaks", "Leaks"),
    (Nav::Audit, "/ui/audit", "Audit"),
    (Nav::Doctor, "/ui/doctor", "Doctor"),
];

/// A whole page. `csrf` is `None` when nobody is signed in (no navigation,
/// no logout button).
pub(crate) fn page(title: &str, nav: Nav, csrf: Option<&str>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · vault console" }
                link rel="stylesheet" href="/ui/assets/console.css";
                link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml";
                script src="/ui/assets/console.js" defer {}
            }
            body data-refresh=[(nav != Nav::None && csrf.is_some()).then_some("30")] {
                header {
                    span.brand { "vault" }
                    @if let Some(token) = csrf {
                        nav {
                            @for (item, href, label) in NAV {
                                a href=(href) aria-current=[(*item == nav).then_some("page")] { (label) }
                            }
                        }
                        form.logout method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(token);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer { "Values, keys and tokens are never shown here: names, ids and versions only." }
            }
        }
    }
    .into_string()
}

/// A short page saying something (signed out, refused, not found).
pub(crate) fn message(text: &str, hint: Option<&str>) -> Markup {
    html! {
        p.message { (text) }
        @if let Some(h) = hint { p { code { (h) } } }
    }
}

/// The pill colour of a key's state.
fn key_class(status: KeyStatus) -> &'static str {
    match status {
        KeyStatus::Active => "good",
        KeyStatus::Suspended | KeyStatus::Retiring => "warn",
        KeyStatus::Expired | KeyStatus::Revoked => "bad",
    }
}

/// The pill colour of an approval's state.
fn approval_class(state: ApprovalState) -> &'static str {
    match state {
        ApprovalState::Done => "good",
        ApprovalState::Pending | ApprovalState::Approved => "warn",
        ApprovalState::Denied | ApprovalState::Expired | ApprovalState::Failed => "bad",
    }
}

fn money(v: Option<i64>) -> String {
    v.map(dollars).unwrap_or_else(|| "—".into())
}

pub(crate) fn overview(o: &Overview) -> Markup {
    html! {
        section.cards {
            div.card { span.big { (o.agents.len()) } " agents" }
            div.card {
                a href="/ui/approvals" { span.big { (o.open_approvals) } " open approvals" }
            }
            div.card {
                @match &o.last_leak {
                    Some(l) => { a href="/ui/leaks" { "Last leak: " (l.what) " · " (l.at) } }
                    None => { "No leak recorded" }
                }
            }
        }
        table.agents {
            thead { tr {
                th { "Agent" } th { "Keys" } th.num { "Tokens today" }
                th.num { "Spend today" } th.num { "Spend this month" } th { "Secrets (version)" }
            } }
            tbody {
                @for a in &o.agents {
                    tr.agent {
                        td { strong { (a.name) } br; small { "since " (a.created_at) } }
                        td {
                            @if a.keys.is_empty() { small { "no keys" } }
                            @for k in &a.keys {
                                div.key {
                                    code { (k.name) } " "
                                    small.id { (k.key_id) } " "
                                    span class=(format!("pill {}", key_class(k.status))) { (k.status) }
                                    br;
                                    small {
                                        "created " (k.created_at) " · last used "
                                        (k.last_used_at.as_deref().unwrap_or("never"))
                                    }
                                }
                            }
                        }
                        td.num { (a.tokens_today) }
                        td.num { (money(a.spend.today)) }
                        td.num { (money(a.spend.month)) }
                        td {
                            @for (name, version, _) in &a.secrets {
                                div.secret { code { (name) } " " span.version { "v" (version) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn spend_table(title: &str, lines: &[SpendLine]) -> Markup {
    html! {
        table.spend {
            caption { (title) }
            thead { tr { th { "" } th.num { "Requests" } th.num { "Tokens" } th.num { "Spend" } } }
            tbody {
                @for l in lines {
                    tr { td { (l.label) } td.num { (l.requests) } td.num { (l.tokens) } td.num { (dollars(l.cost_micros)) } }
                }
            }
        }
    }
}

pub(crate) fn spend(s: &Spend) -> Markup {
    let r = &s.report;
    let series = |lines: &[SpendLine]| -> Vec<(String, f64)> {
        lines
            .iter()
            .take(20)
            .map(|l| (l.label.clone(), l.cost_micros as f64 / 1e6))
            .collect()
    };
    let usd = |v: f64| dollars((v * 1e6) as i64);
    let range = match s.bucket {
        Bucket::Hour => "the last 24 hours, by hour",
        Bucket::Day => "the last 30 days, by day",
    };
    html! {
        p.controls {
            "Group by: "
            @for b in [Bucket::Hour, Bucket::Day] {
                a href=(format!("/ui/spend?bucket={}", b.as_str())) aria-current=[(b == s.bucket).then_some("true")] { (b.as_str()) } " "
            }
            " · " (range) " · prices as of " (r.prices_as_of)
        }
        @if !r.recorded {
            p.notice { "No brokered request is recorded in " (range) ". Spend is counted for agents run with "
                code { "vault run --broker" } " (the broker reads each answer's token usage)." }
        } @else {
            @if !r.unpriced.is_empty() {
                p.notice.bad { "No price for: " (r.unpriced.join(", ")) " (add them to VAULT_HOME/prices.toml); their cost is not in these sums." }
            }
            div.pair { (chart::bars("Spend over time", &series(&r.over_time), usd)) (spend_table("Over time", &r.over_time)) }
            @let (agents, keys) = match s.bucket {
                Bucket::Hour => ("By agent", "By key"),
                // the per-key rollup is by calendar month (schema 016)
                Bucket::Day => ("By agent, this month (UTC)", "By key, this month (UTC)"),
            };
            div.pair { (chart::bars("Spend by agent", &series(&r.by_agent), usd)) (spend_table(agents, &r.by_agent)) }
            div.pair { (chart::bars("Spend by key", &series(&r.by_key), usd)) (spend_table(keys, &r.by_key)) }
            div.pair { (chart::bars("Spend by host", &series(&r.by_host), usd)) (spend_table("By host", &r.by_host)) }
            div.pair { (chart::bars("Spend by model", &series(&r.by_model), usd)) (spend_table("By model", &r.by_model)) }
        }
        h2 { "Tokens minted today (audit trail)" }
        div.pair {
            (chart::bars(
                "Tokens minted today",
                &s.activity.iter().map(|(a, m)| (a.clone(), *m as f64)).collect::<Vec<_>>(),
                chart::count,
            ))
            table {
                thead { tr { th { "Agent" } th.num { "Tokens minted" } } }
                tbody {
                    @for (a, m) in &s.activity { tr { td { (a) } td.num { (m) } } }
                }
            }
        }
    }
}

fn kind_label(kind: ApprovalKind) -> String {
    match kind {
        ApprovalKind::RotateSecret => "Rotate a leaked secret".into(),
        ApprovalKind::ReinstateKey => "Reinstate a suspended key".into(),
        other => other.as_str().replace('_', " "),
    }
}

fn approval_card(a: &ApprovalView, actions: bool) -> Markup {
    html! {
        article.approval id=(format!("approval-{}", a.id)) data-kind=(a.kind) {
            h3 { (kind_label(a.kind)) " · " code { (a.agent) "/" (a.subject) } }
            p { (a.summary) }
            p.meta {
                "id " code { (a.id) } " · "
                span class=(format!("pill {}", approval_class(a.state))) { (a.state) }
                " · opened " (a.created_at) " · expires " (a.expires_at)
            }
            @if let Some(r) = &a.result { p.result { "Result: " (r) } }
            @if actions {
                p.actions {
                    a.button.approve href=(format!("/ui/approvals/{}/confirm?decision=approve", a.id)) { "Approve…" }
                    " "
                    a.button.deny href=(format!("/ui/approvals/{}/confirm?decision=deny", a.id)) { "Deny…" }
                }
            }
        }
    }
}

pub(crate) fn approvals(a: &Approvals) -> Markup {
    html! {
        @if a.pending.is_empty() { p.empty { "Nothing is waiting for approval." } }
        @for p in &a.pending { (approval_card(p, true)) }
        @if !a.decided.is_empty() {
            h2 { "Decided" }
            @for p in &a.decided { (approval_card(p, false)) }
        }
    }
}

/// The confirmation step: says what will happen, then a plain form.
pub(crate) fn confirm(a: &ApprovalView, approve: bool, csrf: &str) -> Markup {
    html! {
        (approval_card(a, false))
        form.confirm method="post" action=(format!("/ui/approvals/{}/decide", a.id)) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="decision" value=(if approve { "approve" } else { "deny" });
            p { @if approve { "Approving carries out what is described above, now." } @else { "Denying means none of it happens." } }
            button.approve[approve].deny[!approve] type="submit" {
                @if approve { "Yes, approve" } @else { "Yes, deny" }
            }
            " "
            a href="/ui/approvals" { "Cancel" }
        }
    }
}

/// The outcome of a decision.
pub(crate) fn decided(a: Option<&ApprovalView>, refusal: Option<&str>) -> Markup {
    html! {
        @if let Some(r) = refusal { p.notice.bad id="outcome" { (r) } }
        @if let Some(a) = a {
            p.notice id="outcome" { "Approval " code { (a.id) } " is now " strong { (a.state) } "." }
            (approval_card(a, false))
        }
        p { a href="/ui/approvals" { "Back to approvals" } }
    }
}

pub(crate) fn leaks(list: &[Leak]) -> Markup {
    html! {
        @if list.is_empty() {
            p.empty { "No leak recorded. The watcher, the pre-commit hook, vault scan, the server's scan and the broker report here." }
        } @else {
            table.leaks {
                thead { tr { th { "When" } th { "Agent" } th { "What" } th { "Where" } th { "What the vault did" } th { "Reported by" } } }
                tbody {
                    @for l in list {
                        tr { td { (l.at) } td { (l.agent) } td { (l.what) } td { (l.place) } td { (l.did) } td { small { (l.reported_by) } } }
                    }
                }
            }
        }
    }
}

fn when(ms: i64) -> String {
    vault_core::view::rfc3339(ms / 1000)
}

/// The chain's state in words that say what was verified, how and when: a
/// walk from a checkpoint does not re-check the records before it.
fn chain_status(c: &ChainView, csrf: &str) -> Markup {
    html! {
        div id="chain" {
            @match &c.last {
                Some(Checked { verdict: AuditVerdict::Intact { records }, at_ms, from_seq, full }) => {
                    p.notice.good {
                        "Chain verified through record #" (records) " at " (when(*at_ms)) ". "
                        @if *full {
                            "A full walk: every record from the start chained and authenticated, and every row tag checked."
                        } @else {
                            @if records > from_seq {
                                "Records #" (from_seq + 1) " to #" (records) " were chained from the checkpoint at #"
                                (from_seq) " and authenticated"
                            } @else {
                                "No record was added since the checkpoint at #" (from_seq)
                            }
                            ", and every row tag was checked. Records up to #" (from_seq)
                            " were verified earlier; an edit of those since shows on the next full walk."
                        }
                    }
                }
                Some(Checked { verdict: AuditVerdict::Broken { seq, reason }, at_ms, .. }) => {
                    p.notice.bad {
                        "Chain BROKEN"
                        @if *seq > 0 { " at record #" (seq) }
                        ": " (reason) " (found at " (when(*at_ms))
                        "). This stays shown until a full walk finds the chain intact."
                    }
                }
                None => {
                    p.notice { "The chain has not been verified yet by this server." }
                }
            }
            p {
                @if let Some((through, at)) = c.full_walk {
                    "Last full walk from the start: through record #" (through) ", finished at " (when(at)) "."
                } @else {
                    "No full walk from the start has finished yet."
                }
            }
            @if let Some(r) = &c.running {
                p.notice.running {
                    @if r.full { "A full walk of the chain from the start" }
                    @else { "A check of the records after #" (r.from_seq) }
                    " is running in the background (started " (when(r.started_ms))
                    ", through #" (r.at_seq) " so far). This page shows its result when it is done."
                }
            } @else {
                form.inline method="post" action="/ui/audit/verify" {
                    input type="hidden" name="csrf" value=(csrf);
                    button type="submit" { "Verify all again" }
                    " walks every record from the start, in the background."
                }
            }
        }
    }
}

pub(crate) fn audit(a: &Audit, agent: Option<&str>, action: Option<&str>, csrf: &str) -> Markup {
    html! {
        (chain_status(&a.chain, csrf))
        form.filter method="get" action="/ui/audit" {
            label { "Agent " select name="agent" {
                option value="" { "any" }
                @for n in &a.agents { option value=(n) selected[agent == Some(n.as_str())] { (n) } }
            } }
            " "
            label { "Action " select name="action" {
                option value="" { "any" }
                @for n in &a.actions { option value=(n) selected[action == Some(n.as_str())] { (n) } }
            } }
            " "
            button type="submit" { "Filter" }
        }
        table.audit {
            thead { tr { th.num { "#" } th { "When" } th { "Actor" } th { "Key" } th { "Action" } th { "Target" } th { "Outcome" } th { "Origin" } } }
            tbody {
                @for r in &a.records {
                    tr {
                        td.num { (r.seq) }
                        td { (vault_core::view::rfc3339(r.at_ms / 1000)) }
                        td { (r.actor) }
                        td { small { (r.key_id.as_deref().unwrap_or("")) } }
                        td { code { (r.action) } }
                        td { (r.target.as_deref().unwrap_or("")) }
                        td class=(if r.outcome == vault_core::AuditOutcome::Ok.as_str() { "good" } else { "bad" }) { (r.outcome) }
                        td { small { (r.origin.as_deref().unwrap_or("")) } }
                    }
                }
            }
        }
        @if let Some(last) = a.records.last().filter(|_| a.records.len() >= super::data::PAGE_ROWS) {
            p { a href=(audit_next(agent, action, last.seq)) { "Older records" } }
        }
    }
}

fn audit_next(agent: Option<&str>, action: Option<&str>, before: i64) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(a) = agent {
        q.append_pair("agent", a);
    }
    if let Some(a) = action {
        q.append_pair("action", a);
    }
    q.append_pair("before", &before.to_string());
    format!("/ui/audit?{}", q.finish())
}

pub(crate) fn doctor(findings: &[vault_core::doctor::Finding]) -> Markup {
    html! {
        @if findings.is_empty() {
            p.notice.good { "No findings: every agent holds only its own secrets, keys are fresh, files are private." }
        } @else {
            p { "The vault's least-privilege review (the same checks as " code { "vault doctor" } "; env files and hooks are checked by the CLI)." }
            table.doctor {
                thead { tr { th { "Severity" } th { "Check" } th { "Finding" } th { "Fix" } } }
                tbody {
                    @for f in findings {
                        tr {
                            td { span class=(format!("pill sev-{}", f.severity.as_str())) { (f.severity.as_str()) } }
                            td { code { (f.check) } }
                            td { (f.message) }
                            td { code { (f.fix) } }
                        }
                    }
                }
            }
        }
    }
}

/// After login: our own page moves on to the console, so the navigation
/// that carries the new SameSite=Strict cookie starts on this site.
pub(crate) fn signed_in() -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content="0; url=/ui/";
                title { "Signed in · vault console" }
                link rel="stylesheet" href="/ui/assets/console.css";
                link rel="icon" href="/ui/assets/favicon.svg" type="image/svg+xml";
            }
            body { main { p.message { "Signed in. " a href="/ui/" { "Open the console" } } } }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use vault_core::view::ApprovalView;

    // issue 17: approvals render by kind, so a kind added later (held egress
    // requests) shows with its text and the approve/deny buttons
    #[test]
    fn an_approval_without_its_own_label_shows_its_kind_and_buttons() {
        let a = ApprovalView {
            id: vault_core::ApprovalId::parse("ab12cd34").unwrap(),
            kind: vault_core::ApprovalKind::EgressRequest,
            agent: "codex-ci".into(),
            subject: "POST api.example.com/v1/send".into(),
            summary: "A held request <b>waits</b>.".into(),
            state: vault_core::ApprovalState::Pending,
            result: None,
            created_at: "2026-12-01T00:00:00Z".into(),
            expires_at: "2026-12-02T00:00:00Z".into(),
        };
        let html = super::approvals(&super::Approvals {
            pending: vec![a],
            decided: vec![],
        })
        .into_string();
        assert!(html.contains("egress request"), "{html}");
        assert!(html.contains("&lt;b&gt;waits&lt;/b&gt;"), "{html}");
        assert!(html.contains("/ui/approvals/ab12cd34/confirm?decision=approve"));
        assert!(html.contains("/ui/approvals/ab12cd34/confirm?decision=deny"));
    }
}
