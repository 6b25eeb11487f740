//! A key rotation's outcome for a person or a script: what was written
//! where, and the new key only when no target received it.

use std::io::{self, Write};

use serde_json::Value;
use vault_core::view::RotationReportView;
use vault_core::RotationReport;

use crate::text::{file_name, safe};

/// The `--json` body of `vault rotate`: the report's view, with `new_key`
/// when no target holds it (the only time it is shown).
pub fn report_json(r: &RotationReport) -> Value {
    let mut body = serde_json::to_value(RotationReportView::from(r)).unwrap_or_default();
    if let Some(k) = &r.new_key {
        body["new_key"] = Value::String(k.expose_secret().to_owned());
    }
    body
}

/// `vault rotate`'s human answer: sentences on `err`, and on `out` the new
/// key alone, when no target received it.
pub fn write_report(
    r: &RotationReport,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    let state = RotationReportView::from(r).state;
    writeln!(
        err,
        "rotation {} of {} ({}): {}; old key {} -> new key {}",
        r.rotation_id, r.key_name, r.agent, state, r.old_key_id, r.new_key_id
    )?;
    for w in &r.written {
        writeln!(err, "  wrote the new key to {}", safe(w.display()))?;
    }
    for e in &r.errors {
        writeln!(err, "  could not write: {}", safe(e))?;
    }
    if let Some(k) = &r.new_key {
        writeln!(out, "{}", k.expose_secret())?;
        out.flush()?;
        writeln!(
            err,
            "  no target is registered, so the new key is shown once above"
        )?;
    }
    if let Some(f) = &r.key_file {
        let f = safe(f.display());
        writeln!(
            err,
            "  no target is registered; the new key is in {f} (mode 0600)"
        )?;
    }
    Ok(())
}

/// What any command says on stderr about a rotation a crash interrupted and
/// unlocking finished. Never the key itself, nor the path to it: this may be
/// any command's stderr (a hook's, a log's); core kept it in a 0600 file.
pub fn resumed_lines(r: &RotationReport) -> Vec<String> {
    let mut lines = vec![format!(
        "vault: finished interrupted rotation {} of {} ({}): {:?}, new key {}",
        r.rotation_id, r.key_name, r.agent, r.state, r.new_key_id
    )];
    if let Some(file) = &r.key_file {
        lines.push(format!(
            "vault: no target holds the new key; it is in the vault directory, {}",
            safe(file_name(file))
        ));
    }
    lines
}

/// What `vault target add` says once the file is registered.
pub fn target_registered_line(t: &vault_core::TargetInfo) -> String {
    let holds = match &t.key_name {
        Some(k) => format!("key {k}"),
        None => "whichever of its keys the file holds".into(),
    };
    let (path, id, var) = (safe(t.path.display()), t.target_id, safe(&t.key_var));
    format!(
        "registered {path} (target {id}) for {}; {holds} goes in {var}",
        t.agent
    )
}

/// `vault rotation show` for a person: the journal's columns, then what went
/// wrong on the way (`-` for nothing).
pub fn shown_lines(view: &vault_core::view::RotationView) -> String {
    let error = safe(view.error.as_deref().unwrap_or("-"));
    format!("{}\n    {error}", crate::text::columns(view))
}
