//! Issue 19, the last of the operator's day: scanner advice that fits the
//! finding, a failed rotation command's stderr, capped TTLs, secrets outside
//! their agent's policy, `scrub DIR`, one finding per value, short-value
//! redaction, `env --help`'s JSON shape, and the codes of wrapped errors.

use crate::common::*;

fn json_error(out: &assert_cmd::assert::Assert) -> (i32, String) {
    let v: serde_json::Value = serde_json::from_str(&stdout_of(out)).unwrap();
    (
        out.get_output().status.code().unwrap(),
        v["error"]["code"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_wrapped_guard_or_run_error_keeps_the_code_of_its_cause() {
    // issue 19, finding 9: a Context around a cause came out as `error`, whatever the cause
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    // dotenv cannot carry this value: vault-run wraps the vault's `invalid_input` in a context
    env.set("hermes/TRICKY", "it's ${HOME}");
    let out = env
        .vault(&["env", "--agent", "hermes", "--format", "dotenv", "--json"])
        .assert()
        .failure();
    assert_eq!(json_error(&out), (2, "invalid_input".to_owned()));
    // vault-guard wraps an I/O error in "finding PATH"
    let hermes = env.dir.path().join("hermes-home");
    std::fs::create_dir_all(&hermes).unwrap();
    let missing = env.dir.path().join("no-such-vault-binary");
    let out = env
        .vault(&[
            "integrate",
            "hermes",
            "--vault-bin",
            missing.to_str().unwrap(),
            "--json",
        ])
        .env("HERMES_HOME", &hermes)
        .assert()
        .failure();
    assert_eq!(json_error(&out), (2, "io".to_owned()));
}

/// The JSON shape `vault env --help` gives for `--format json`: the text
/// after `json:` on its line, parsed.
fn env_help_json_shape(help: &str) -> serde_json::Value {
    let line = help
        .lines()
        .find_map(|l| l.trim().strip_prefix("- json:"))
        .unwrap_or_else(|| panic!("no `- json:` line in the help: {help}"));
    serde_json::from_str(line.trim().trim_end_matches('.')).unwrap()
}

/// Whether `got` has the shape of `claimed`: the same keys at each level, a
/// string wherever the claim has one.
fn same_shape(claimed: &serde_json::Value, got: &serde_json::Value) -> bool {
    use serde_json::Value::{Object, String};
    match (claimed, got) {
        (Object(c), Object(g)) => {
            c.len() == g.len()
                && c.iter()
                    .zip(g.iter())
                    .all(|((ck, cv), (gk, gv))| ck == gk && same_shape(cv, gv))
        }
        (String(_), String(_)) => true,
        _ => false,
    }
}

#[test]
fn env_help_gives_the_json_shape_env_json_prints() {
    // issue 19, finding 8: the help said {"NAME": "value"}, the output is {"env": {...}},
    // and `--json` alone printed dotenv
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/NAME", "a-value-long-enough-1f2e");
    // clap prints an env variable's value in help; keep the snapshot stable
    let help = stdout_of(
        &env.vault(&["env", "--help"])
            .env_remove("VAULT_PASSPHRASE_FILE")
            .assert()
            .success(),
    );
    insta::assert_snapshot!("env_help", help);
    let claimed = env_help_json_shape(&help);
    for args in [
        &["env", "--agent", "hermes", "--json"][..],
        &["env", "--agent", "hermes", "--format", "json"][..],
    ] {
        let out = stdout_of(&env.vault(args).assert().success());
        let got: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"));
        assert!(
            same_shape(&claimed, &got),
            "{args:?}: help says {claimed}, got {got}"
        );
    }
    // an explicit --format still wins over --json
    let out = stdout_of(
        &env.vault(&["env", "--agent", "hermes", "--format", "dotenv", "--json"])
            .assert()
            .success(),
    );
    assert_eq!(out, "NAME=a-value-long-enough-1f2e\n");
}

#[test]
fn import_reads_back_what_env_format_json_writes() {
    // issue 19, finding 8: `vault env --format json` writes {"env": {...}}; import refused it
    let env = Env::new();
    for agent in ["hermes", "copy"] {
        env.vault(&["agent", "add", agent]).assert().success();
    }
    env.set("hermes/GITHUB_TOKEN", "ghp-like-value-7a7a7a7a");
    let file = env.dir.path().join("hermes.json");
    env.vault(&[
        "env",
        "--agent",
        "hermes",
        "--format",
        "json",
        "--write",
        file.to_str().unwrap(),
    ])
    .assert()
    .success();
    env.vault(&[
        "import",
        "--agent",
        "copy",
        "--format",
        "json",
        file.to_str().unwrap(),
    ])
    .assert()
    .success();
    assert_eq!(env.get("copy/GITHUB_TOKEN"), "ghp-like-value-7a7a7a7a");
}

/// `vault issue NAME --agent hermes`: the key it prints.
fn issue_key(env: &Env, name: &str) -> String {
    let out = stdout_of(
        &env.vault(&["issue", name, "--agent", "hermes"])
            .assert()
            .success(),
    );
    out.split_whitespace()
        .find(|w| w.starts_with("avk_"))
        .unwrap_or_else(|| panic!("no key in {out:?}"))
        .to_owned()
}

#[test]
fn scan_advice_fits_the_finding_live_key_revoked_key_stored_and_unmanaged_secret() {
    // issue 19, finding 1: every vault-managed finding said "rotate it with the vault", and an
    // unmanaged provider secret got no advice, or `vault rotate`
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let live = issue_key(&env, "live-key");
    let dead = issue_key(&env, "dead-key");
    env.vault(&["keys", "revoke", "dead-key"])
        .assert()
        .success();
    env.set("hermes/STORED_TOKEN", "stored-value-9d8c7b6a5f4e3d2c");
    let transcript = env.dir.path().join("transcript.log");
    std::fs::write(
        &transcript,
        format!(
            "live {live}\ndead {dead}\nstored stored-value-9d8c7b6a5f4e3d2c\n\
             aws_access_key_id = AKIAQ3EGXWKLPTMNVRZB\n"
        ),
    )
    .unwrap();
    let out = env
        .vault(&["scan", transcript.to_str().unwrap()])
        .assert()
        .code(1);
    let text = stdout_of(&out);
    let advice: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  vault-managed") || l.starts_with("  not in this vault"))
        .map(|l| l.split_once(" (").map_or(l, |(_, rest)| rest))
        .collect();
    // the ids are random; the advice after them is what a person reads
    let advice: Vec<String> = advice
        .iter()
        .map(|l| {
            l.split_once("); ")
                .map_or(l.to_string(), |(_, a)| a.to_owned())
        })
        .collect();
    insta::assert_snapshot!("scan_advice", advice.join("\n"));
    assert_eq!(advice.len(), 4, "{text}");
    assert!(advice[0].contains("vault rotate live-key"), "{text}");
    assert!(advice[1].contains("nothing needs rotating"), "{text}");
    assert!(
        advice[2].contains("vault set hermes/STORED_TOKEN"),
        "{text}"
    );
    assert!(advice[3].contains("rotate it at aws"), "{text}");
    for a in &advice[1..] {
        assert!(!a.contains("rotate it with the vault"), "{text}");
    }
}

#[test]
fn a_ttl_capped_by_policy_is_said_on_stderr_and_in_json() {
    // issue 19, finding 3: `vault token --ttl 3h` under `max_token_ttl = "1h"` silently gave 1h
    let env = Env::new();
    env.add_agent_with_policy("hermes", "secrets = [\"*\"]\nmax_token_ttl = \"1h\"\n");
    let key = issue_key(&env, "hermes-key");
    let mint = |ttl: &str| {
        env.vault(&["token", "--ttl", ttl, "--json"])
            .env("VAULT_AGENT_KEY", &key)
            .assert()
            .success()
    };
    let out = mint("3h");
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(
        v["ttl_capped"],
        serde_json::json!({"requested_secs": 10800, "granted_secs": 3600})
    );
    insta::assert_snapshot!("ttl_capped_note", stderr_of(&out).trim_end());
    let out = mint("30m");
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert!(v.get("ttl_capped").is_none(), "{v}");
    assert!(!stderr_of(&out).contains("capped"), "{}", stderr_of(&out));
}

#[test]
fn a_secret_stored_outside_its_agents_policy_is_warned_at_set_and_in_doctor() {
    // issue 19, finding 4: such a secret was stored without a word and never injected
    let env = Env::new();
    env.add_agent_with_policy("hermes", "secrets = [\"GITHUB_*\"]\n");
    let out = env
        .vault(&["set", "hermes/STRIPE_KEY", "--json"])
        .write_stdin("sk-like-value-0a1b2c3d4e5f")
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(v["outside_policy"], true, "{v}");
    let warning = stderr_of(&out);
    insta::assert_snapshot!("set_outside_policy", warning.trim_end());
    let out = env
        .vault(&["set", "hermes/GITHUB_TOKEN", "--json"])
        .write_stdin("gh-like-value-0a1b2c3d4e5f")
        .assert()
        .success();
    assert!(!stderr_of(&out).contains("outside"), "{}", stderr_of(&out));
    let doctor = stdout_of(&env.vault(&["doctor", "--json"]).assert());
    let v: serde_json::Value = serde_json::from_str(&doctor).unwrap();
    let checks: Vec<(&str, &str)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["check"].as_str().unwrap(), f["message"].as_str().unwrap()))
        .filter(|(c, _)| *c == "secret-outside-policy")
        .collect();
    assert_eq!(checks.len(), 1, "{doctor}");
    assert!(checks[0].1.contains("hermes/STRIPE_KEY"), "{doctor}");
}

#[test]
fn a_failed_rotation_command_run_by_hand_shows_its_stderr_redacted() {
    // issue 19, finding 5: `vault rotate AGENT/NAME` said only "failed (exit status: 1)".
    // The rule: a manual run shows the tail of the command's stderr (terminal or not),
    // with the old value, what it printed and anything credential-like redacted; the
    // audit trail records only how it ended.
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    env.set("hermes/DB_PASSWORD", "old-db-password-7f3a9c");
    set_rotation_script(
        &env,
        "hermes/DB_PASSWORD",
        "old=$(cat)\necho \"rotating $old\" >&2\necho half-new-value\n\
         echo 'half-new-value was refused' >&2\n\
         echo 'auth header ghp_1234567890abcdefghijABCDEFGHIJ012345' >&2\n\
         echo 'psql: FATAL: permission denied for role rotator' >&2\nexit 7\n",
    );
    let out = env
        .vault(&["rotate", "hermes/DB_PASSWORD"])
        .assert()
        .code(1);
    let err = stderr_of(&out);
    assert!(err.contains("exit status: 7"), "{err}");
    assert!(
        err.contains("psql: FATAL: permission denied for role rotator"),
        "{err}"
    );
    for hidden in ["old-db-password-7f3a9c", "half-new-value", "ghp_1234567890"] {
        assert!(!err.contains(hidden), "{hidden} shown: {err}");
    }
    assert!(err.contains("rotating [value]"), "{err}");
    let (code, name) = json_error(
        &env.vault(&["rotate", "hermes/DB_PASSWORD", "--json"])
            .assert()
            .failure(),
    );
    assert_eq!((code, name.as_str()), (1, "refused"));
    let audit = stdout_of(&env.vault(&["audit", "log", "--json"]).assert().success());
    assert!(audit.contains("secret.rotate"), "{audit}");
    assert!(!audit.contains("permission denied"), "{audit}");
    // the value stayed
    let got = env.vault(&["get", "hermes/DB_PASSWORD"]).assert().success();
    assert_eq!(stdout_of(&got).trim_end(), "old-db-password-7f3a9c");
}

/// Makes a file look old enough not to be "being written".
fn backdate(path: &std::path::Path) {
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(old).unwrap();
}

#[test]
fn scrub_takes_a_directory_and_an_immediate_rerun_is_not_refused() {
    // issue 19: `vault scrub DIR` failed ("not a regular file") though `scan` and `watch`
    // take directories, and a rerun right after was refused as "modified 30 ms ago"
    // because of scrub's own rewrite
    let env = Env::new();
    env.vault(&["agent", "add", "hermes"]).assert().success();
    let key = issue_key(&env, "hermes-key");
    let dir = env.dir.path().join("transcripts");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let line = |s: &str| format!("{}\n", serde_json::json!({"content": s}));
    let (a, b, c) = (
        dir.join("a.jsonl"),
        dir.join("sub/b.jsonl"),
        dir.join("c.jsonl"),
    );
    std::fs::write(&a, line(&format!("my key is {key}"))).unwrap();
    std::fs::write(&b, line(&format!("curl -H 'X: {key}'"))).unwrap();
    std::fs::write(&c, line("nothing here")).unwrap();
    std::os::unix::fs::symlink(&a, dir.join("link.jsonl")).unwrap();
    for f in [&a, &b, &c] {
        backdate(f);
    }
    let scrub = |code: i32| {
        let out = env
            .vault(&["scrub", "--json", dir.to_str().unwrap()])
            .assert()
            .code(code);
        let v: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
        let files: Vec<(String, String)> = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let path = f["path"].as_str().unwrap();
                let rel = path.strip_prefix(dir.to_str().unwrap()).unwrap();
                (rel.to_owned(), f["status"].as_str().unwrap().to_owned())
            })
            .collect();
        files
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect()
    };
    assert_eq!(
        scrub(0),
        pairs(&[
            ("/a.jsonl", "scrubbed"),
            ("/c.jsonl", "clean"),
            ("/sub/b.jsonl", "scrubbed")
        ])
    );
    for f in [&a, &b] {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains(&key) && text.contains("<redacted:"),
            "{text}"
        );
    }
    // at once again: nothing left to replace, so nothing is refused
    assert_eq!(
        scrub(0),
        pairs(&[
            ("/a.jsonl", "clean"),
            ("/c.jsonl", "clean"),
            ("/sub/b.jsonl", "clean")
        ])
    );
    // a file just written that does hold a key is still left to its agent
    let d = dir.join("d.jsonl");
    std::fs::write(&d, line(&format!("again {key}"))).unwrap();
    assert_eq!(
        scrub(1),
        pairs(&[
            ("/a.jsonl", "clean"),
            ("/c.jsonl", "clean"),
            ("/d.jsonl", "refused"),
            ("/sub/b.jsonl", "clean")
        ])
    );
    assert!(std::fs::read_to_string(&d).unwrap().contains(&key));
}

#[test]
fn no_color_turns_off_the_colour_of_help_and_usage_errors() {
    // issue 19, "NO_COLOR": the CLI's only colour is clap's, in help and usage
    // errors on a terminal. CLICOLOR_FORCE stands in for the terminal here, so
    // the test shows colour is on without NO_COLOR and off with it (NO_COLOR wins,
    // as no-color.org asks); set but empty, it is unset.
    let env = Env::new();
    let run = |args: &[&str], no_color: Option<&str>| {
        let mut cmd = env.vault(args);
        cmd.env("CLICOLOR_FORCE", "1").env("TERM", "xterm-256color");
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        let out = cmd.output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    for args in [&["--help"][..], &["ls", "--no-such-flag"][..]] {
        let coloured = run(args, None);
        assert!(coloured.contains("\u{1b}["), "{args:?}: {coloured:?}");
        let plain = run(args, Some("1"));
        assert!(!plain.contains('\u{1b}'), "{args:?}: {plain:?}");
        assert!(
            plain.contains("Usage") || plain.contains("usage"),
            "{plain}"
        );
        assert!(run(args, Some("")).contains("\u{1b}["), "{args:?}");
    }
}
