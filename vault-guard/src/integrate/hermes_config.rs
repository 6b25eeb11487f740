//! Editing a Hermes profile's `config.yaml` as text, line by line, so
//! comments and the user's layout survive: `vault` joins `plugins.enabled`
//! and the `secrets.vault` section is added. A shape this cannot edit safely
//! is refused with the lines to add by hand.

use std::path::Path;

/// The `secrets.vault` section, indented for its place under `secrets:`.
/// Values are double-quoted YAML with `\` and `"` escaped; none is a secret.
pub(super) fn vault_section(addr: Option<&str>, bin: &Path, key_env: &str) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("  vault:\n    enabled: true\n");
    out.push_str(&format!("    vault_bin: {}\n", q(&bin.to_string_lossy())));
    out.push_str(&format!("    agent_key_env: {key_env}\n"));
    if let Some(a) = addr {
        out.push_str(&format!("    addr: {}\n", q(a)));
    }
    out
}

/// Adds `vault` to `plugins.enabled` and the `secrets.vault` section to a
/// block-style config.yaml, leaving every other line as it was. `Err` names a
/// shape it will not guess at.
pub(super) fn edit_hermes_config(
    text: &str,
    section: &str,
) -> std::result::Result<(String, Vec<String>), String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut notes = Vec::new();
    // plugins.enabled
    match top_key(&lines, "plugins")? {
        None => {
            lines.extend(["plugins:", "  enabled:", "  - vault"].map(String::from));
        }
        Some(at) => {
            let end = block_end(&lines, at);
            let indent = child_indent(&lines, at, end).unwrap_or_else(|| "  ".into());
            let enabled = (at + 1..end).find(|&i| {
                lines[i].starts_with(&indent)
                    && lines[i][indent.len()..].starts_with("enabled:")
                    && !lines[i][indent.len()..].starts_with(' ')
            });
            match enabled {
                None => {
                    lines.insert(at + 1, format!("{indent}enabled:"));
                    lines.insert(at + 2, format!("{indent}- vault"));
                }
                Some(e) => {
                    let value = strip_comment(&lines[e][indent.len() + "enabled:".len()..]);
                    if value.is_empty() || value == "null" || value == "~" {
                        // block list items follow, at the key's indent or deeper
                        let mut last = e;
                        let mut has = false;
                        for (i, line) in lines.iter().enumerate().take(end).skip(e + 1) {
                            let t = line.trim_start();
                            let item_indent = line.len() - t.len();
                            if t.starts_with("- ") && item_indent >= indent.len() {
                                has |= strip_comment(&t[2..]).trim_matches(['"', '\'']) == "vault";
                                last = i;
                            } else if !t.is_empty() && !t.starts_with('#') {
                                break;
                            }
                        }
                        if has {
                            notes.push("vault was already in plugins.enabled".into());
                        } else {
                            if value == "null" || value == "~" {
                                lines[e] = format!("{indent}enabled:");
                            }
                            lines.insert(last + 1, format!("{indent}- vault"));
                        }
                    } else if value.starts_with('[') && value.ends_with(']') {
                        let items: Vec<String> = value[1..value.len() - 1]
                            .split(',')
                            .map(|s| s.trim().trim_matches(['"', '\'']).to_owned())
                            .filter(|s| !s.is_empty())
                            .collect();
                        if items.iter().any(|i| i == "vault") {
                            notes.push("vault was already in plugins.enabled".into());
                        } else {
                            let mut all = items;
                            all.push("vault".into());
                            lines[e] = format!("{indent}enabled: [{}]", all.join(", "));
                        }
                    } else {
                        return Err("plugins.enabled is not a list".into());
                    }
                }
            }
        }
    }
    // secrets.vault
    match top_key(&lines, "secrets")? {
        None => {
            lines.push("secrets:".into());
            lines.extend(section.lines().map(String::from));
        }
        Some(at) => {
            let end = block_end(&lines, at);
            let indent = child_indent(&lines, at, end).unwrap_or_else(|| "  ".into());
            let exists = (at + 1..end).any(|i| {
                lines[i].starts_with(&indent) && lines[i][indent.len()..].starts_with("vault:")
            });
            if exists {
                notes.push("secrets.vault already exists and was left as it is".into());
            } else {
                // after the block's last content line
                let mut insert_at = end;
                while insert_at > at + 1 && lines[insert_at - 1].trim().is_empty() {
                    insert_at -= 1;
                }
                let reindented: Vec<String> = section
                    .lines()
                    .map(|l| {
                        let t = l.trim_start();
                        let depth = (l.len() - t.len()) / 2;
                        format!("{}{t}", indent.repeat(depth))
                    })
                    .collect();
                for (k, l) in reindented.into_iter().enumerate() {
                    lines.insert(insert_at + k, l);
                }
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok((out, notes))
}

/// The line of a top-level `key:` with a block value, `None` if absent.
fn top_key(lines: &[String], key: &str) -> std::result::Result<Option<usize>, String> {
    let prefix = format!("{key}:");
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix(&prefix) {
            if !strip_comment(rest).is_empty() {
                return Err(format!("{key}: is written inline (flow style)"));
            }
            return Ok(Some(i));
        }
    }
    if lines
        .iter()
        .any(|l| l.trim_start().starts_with('{') || l.starts_with("---") && lines.len() > 1)
    {
        return Err("the file is not a plain block-style mapping".into());
    }
    Ok(None)
}

/// One past the last line of the block that starts at `at`.
fn block_end(lines: &[String], at: usize) -> usize {
    (at + 1..lines.len())
        .find(|&i| {
            let l = &lines[i];
            !l.is_empty() && !l.starts_with([' ', '\t', '#', '-'])
        })
        .unwrap_or(lines.len())
}

/// The indentation of the first mapping key inside a block.
fn child_indent(lines: &[String], at: usize, end: usize) -> Option<String> {
    (at + 1..end).find_map(|i| {
        let t = lines[i].trim_start();
        (!t.is_empty() && !t.starts_with('#') && !t.starts_with('-'))
            .then(|| lines[i][..lines[i].len() - t.len()].to_owned())
    })
}

fn strip_comment(s: &str) -> &str {
    let s = s.trim();
    match s.find(" #") {
        Some(i) => s[..i].trim_end(),
        None if s.starts_with('#') => "",
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section() -> String {
        vault_section(None, Path::new("/usr/bin/vault"), "VAULT_AGENT_KEY")
    }

    #[test]
    fn an_empty_config_gets_both_blocks() {
        let (out, _) = edit_hermes_config("", &section()).unwrap();
        assert_eq!(
            out,
            "plugins:\n  enabled:\n  - vault\nsecrets:\n  vault:\n    enabled: true\n    \
             vault_bin: \"/usr/bin/vault\"\n    agent_key_env: VAULT_AGENT_KEY\n"
        );
    }

    #[test]
    fn existing_blocks_are_extended_in_place_and_twice_is_once() {
        let text = "# my config\nmodel:\n  default: x\nplugins:\n  enabled:\n  - disk-cleanup\n  \
                    disabled: []\nsecrets:\n  bitwarden:\n    enabled: false\n\nterminal:\n  \
                    backend: local\n";
        let (out, _) = edit_hermes_config(text, &section()).unwrap();
        assert!(out.starts_with("# my config\nmodel:\n  default: x\nplugins:\n  enabled:\n  - disk-cleanup\n  - vault\n  disabled: []\n"), "{out}");
        assert!(
            out.contains(
                "secrets:\n  bitwarden:\n    enabled: false\n  vault:\n    enabled: true\n"
            ),
            "{out}"
        );
        assert!(out.ends_with("\nterminal:\n  backend: local\n"), "{out}");
        let (again, notes) = edit_hermes_config(&out, &section()).unwrap();
        assert_eq!(again, out);
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn flow_lists_and_inline_blocks() {
        let (out, _) = edit_hermes_config("plugins:\n  enabled: [a, b]\n", &section()).unwrap();
        assert!(
            out.starts_with("plugins:\n  enabled: [a, b, vault]\n"),
            "{out}"
        );
        let (out, _) = edit_hermes_config("plugins:\n  enabled: []\n", &section()).unwrap();
        assert!(out.starts_with("plugins:\n  enabled: [vault]\n"), "{out}");
        assert!(edit_hermes_config("plugins: {enabled: [a]}\n", &section()).is_err());
        assert!(edit_hermes_config("secrets: {}\n", &section()).is_err());
        assert!(edit_hermes_config("plugins:\n  enabled: yes\n", &section()).is_err());
    }
}
