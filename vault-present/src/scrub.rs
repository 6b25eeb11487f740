//! What `vault scrub` did to each file: files and counts, never values.

use serde_json::{json, Value};
use vault_guard::scrub::{Outcome, Status};

/// The `--json` body: `{"files": [...], "replaced": N}`.
pub fn json(outcomes: &[Outcome]) -> Value {
    let files: Vec<_> = outcomes
        .iter()
        .map(|o| {
            let (status, message) = match &o.status {
                Status::Clean => ("clean", None),
                Status::Scrubbed => ("scrubbed", None),
                Status::Refused(m) => ("refused", Some(m.as_str())),
                Status::Failed(m) => ("error", Some(m.as_str())),
            };
            let mut v = json!({
                "path": o.path, "kind": o.kind, "status": status, "replaced": o.replaced,
            });
            if let Some(b) = &o.backup {
                v["backup"] = json!(b);
            }
            if let Some(m) = message {
                v["message"] = json!(m);
            }
            v
        })
        .collect();
    let total: usize = outcomes.iter().map(|o| o.replaced).sum();
    json!({"files": files, "replaced": total})
}

/// One line per file for a person.
pub fn line(o: &Outcome) -> String {
    let p = o.path.display();
    match &o.status {
        Status::Clean => format!("{p}: nothing to scrub"),
        Status::Scrubbed => match &o.backup {
            Some(b) => format!(
                "{p}: replaced {} value(s) (backup {})",
                o.replaced,
                b.display()
            ),
            None => format!("{p}: replaced {} value(s)", o.replaced),
        },
        Status::Refused(m) => format!("{p}: refused: {m}"),
        Status::Failed(m) => format!("{p}: error: {m}"),
    }
}
