//! Checks on the source itself (issue 14's done-when items that are a grep):
//! vault-core's files stay small enough to read, and no crate of the
//! workspace compares a vocabulary word as a string literal outside the file
//! of the enum that owns it.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap().to_string_lossy();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// The text before the file's unit tests (`#[cfg(test)]` then `mod tests`).
fn without_unit_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    }
}

#[test]
fn no_source_file_of_vault_core_is_over_600_lines() {
    // issue 14, done-when 2
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let long: Vec<String> = files
        .iter()
        .filter(|p| !is_test_file(p))
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).unwrap().lines().count();
            (n > 600).then(|| format!("{}: {n} lines", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn no_vocabulary_word_is_compared_as_a_string_literal_outside_its_enum() {
    // issue 14, done-when 7: denial codes, key states, audit actions (and the
    // approval, rotation words since, and audit outcomes) are compared as
    // enums, never as text
    let mut words: Vec<(&str, &str)> = Vec::new();
    words.extend(
        crate::AuditAction::ALL
            .iter()
            .map(|a| (a.as_str(), "audit_action.rs")),
    );
    words.extend(crate::Denial::ALL.iter().map(|d| (d.as_str(), "denial.rs")));
    for s in [
        crate::KeyStatus::Active,
        crate::KeyStatus::Retiring,
        crate::KeyStatus::Suspended,
        crate::KeyStatus::Expired,
        crate::KeyStatus::Revoked,
    ] {
        words.push((s.as_str(), "named_keys.rs"));
    }
    words.extend(
        crate::ApprovalKind::ALL
            .iter()
            .map(|k| (k.as_str(), "approval_state.rs")),
    );
    words.extend(
        crate::ApprovalState::ALL
            .iter()
            .map(|k| (k.as_str(), "approval_state.rs")),
    );
    words.extend(
        crate::RotationStep::ALL
            .iter()
            .map(|k| (k.as_str(), "rotation_step.rs")),
    );
    words.extend(
        crate::RotationReason::ALL
            .iter()
            .map(|k| (k.as_str(), "rotation_step.rs")),
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() && src.parent().unwrap().join("Cargo.toml").is_file() {
            sources(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "the workspace's sources were not found");
    let patterns: Vec<(Vec<String>, &str)> = words
        .iter()
        .map(|(word, home)| {
            let quoted = format!("\"{word}\"");
            let compared = vec![
                format!("== {quoted}"),
                format!("!= {quoted}"),
                format!("{quoted} =>"),
                format!("{quoted} |"),
                format!("| {quoted}"),
                format!("{quoted} =="),
            ];
            (compared, *home)
        })
        .collect();
    let mut found = Vec::new();
    for path in files.iter().filter(|p| !is_test_file(p)) {
        let name = path.file_name().unwrap().to_string_lossy();
        // SQL inside the store names the column values it stores
        let in_store = path.components().any(|c| c.as_os_str() == "store");
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in without_unit_tests(&text).lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if !code.contains('"') {
                continue;
            }
            for (compared, home) in &patterns {
                if name == *home || in_store {
                    continue;
                }
                if compared.iter().any(|c| code.contains(c.as_str())) {
                    found.push(format!("{}:{}: {code}", path.display(), n + 1));
                }
            }
        }
    }
    // Audit outcomes (issue 14): written as an `AuditOutcome`, read through
    // `OutcomeKind::of`; no `"denied:CODE"` spelled, nor `outcome == "ok"`.
    for path in files.iter().filter(|p| !is_test_file(p)) {
        let name = path.file_name().unwrap().to_string_lossy();
        let in_store = path.components().any(|c| c.as_os_str() == "store");
        if name == "audit_outcome.rs" || in_store {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in without_unit_tests(&text).lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || !code.contains('"') {
                continue;
            }
            let spelled = crate::OutcomeKind::ALL.iter().any(|kind| {
                let literal = format!("\"{}:", kind.as_str());
                code.match_indices(&literal).any(|(at, _)| {
                    let next = code[at + literal.len()..].chars().next();
                    next.is_some_and(|c| c.is_ascii_lowercase())
                        || (next == Some('{') && code.contains("code()"))
                })
            });
            let compared = code.contains("outcome")
                && [
                    "== \"ok\"",
                    "!= \"ok\"",
                    "starts_with(\"ok",
                    "starts_with(\"denied",
                    "starts_with(\"error",
                ]
                .iter()
                .any(|c| code.contains(c));
            if spelled || compared {
                found.push(format!("{}:{}: {code}", path.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
