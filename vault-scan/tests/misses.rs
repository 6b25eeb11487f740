//! Issue 18, item 3: secrets in source and transcripts the scanner used to miss, each on a
//! fresh value drawn at test time, found at the line a person opening the file sees.

use vault_scan::redact;

use crate::{fresh, scan_text};

/// Scans `text` as the file `name` and returns the (line, rule) of findings of `secret`.
fn found(name: &str, text: &str, secret: &str) -> Vec<(u64, String)> {
    let r = scan_text(name, text);
    assert!(r.errors.is_empty(), "{name}: {:?}", r.errors);
    let red = redact(secret.as_bytes());
    r.findings
        .into_iter()
        .filter(|f| f.redacted == red)
        .map(|f| (f.line, f.rule))
        .collect()
}

/// Exactly one finding of `secret`, on `line`, by `rule`.
fn assert_one(name: &str, text: &str, secret: &str, line: u64, rule: &str) {
    assert_eq!(
        found(name, text, secret),
        vec![(line, rule.to_owned())],
        "{name}:\n{text}"
    );
}

// issue 18, item 3: Go struct literals, TypeScript annotated constants, object literals.
#[test]
fn generic_secrets_in_go_struct_literals_ts_annotations_and_object_literals_are_found() {
    let v = fresh(32);
    assert_one(
        "client.go",
        &format!(
            "cfg := Config{{\n\tBaseURL:   \"https://api.internal\",\n\tAuthToken: \"{v}\",\n}}\n"
        ),
        &v,
        3,
        "generic.api-key-assignment",
    );
    let v = fresh(32);
    assert_one(
        "config.ts",
        &format!("export const API_KEY: string = \"{v}\";\n"),
        &v,
        1,
        "generic.api-key-assignment",
    );
    let v = format!("{}-{}", fresh(10), fresh(8));
    assert_one(
        "db.ts",
        &format!("const x = 1;\nconst DB_PASSWORD: string = '{v}';\n"),
        &v,
        2,
        "generic.password-assignment",
    );
    let v = fresh(40);
    assert_one(
        "client.js",
        &format!("const client = new Client({{\n  token: \"{v}\",\n}});\n"),
        &v,
        2,
        "generic.token-assignment",
    );
}

// issue 18, item 3: `Authorization: Bearer` with no provider keyword nearby.
#[test]
fn authorization_headers_in_shell_and_js_are_found() {
    let v = fresh(40);
    assert_one(
        "deploy.sh",
        &format!("#!/bin/sh\ncurl -sf -H \"Authorization: Bearer {v}\" https://ci.internal/run\n"),
        &v,
        2,
        "generic.bearer",
    );
    let v = fresh(36);
    assert_one(
        "api.js",
        &format!("await fetch(url, {{\n  headers: {{ 'Authorization': `Bearer {v}` }},\n}});\n"),
        &v,
        2,
        "generic.bearer",
    );
    // A Telegram token with no `bot`/`telegram` nearby is found by the header, once.
    let telegram = format!("123456789:AA{}", fresh(33));
    assert_one(
        "bot.sh",
        &format!("curl -H \"Authorization: Bearer {telegram}\" https://relay.internal\n"),
        &telegram,
        1,
        "generic.bearer",
    );
    // A provider format behind the header is reported once, as that provider's.
    let discord = format!("M{}.{}.{}", fresh(25), fresh(6), fresh(30));
    assert_one(
        "bot.js",
        &format!("const h = {{ Authorization: `Bot {discord}` }};\n"),
        &discord,
        1,
        "discord.bot-token",
    );
}

// issue 18, item 3: a person's own words in a transcript, and a Telegram token inside a
// JSON string of a Claude Code transcript (a tool call's command, escaped quotes).
#[test]
fn prose_and_json_string_secrets_in_claude_code_transcripts_are_found() {
    let v = format!("{}-{}", fresh(6), fresh(10));
    let line2 = format!(
        "{{\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":\"ok, set DB_PASSWORD to {v} and restart the api\"}}}}"
    );
    let text = format!("{{\"type\":\"summary\",\"summary\":\"db\"}}\n{line2}\n");
    assert_one("session.jsonl", &text, &v, 2, "generic.secret-in-prose");
    let telegram = format!("7{}:AA{}", &fresh_digits(9), fresh(33));
    let cmd = format!("echo \\\"TELEGRAM_BOT_TOKEN={telegram}\\\" >> .env");
    let text = format!(
        "{{\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":\"add the bot\"}}}}\n{{\"type\":\"assistant\",\"message\":{{\"role\":\"assistant\",\"content\":[{{\"type\":\"tool_use\",\"name\":\"Bash\",\"input\":{{\"command\":\"{cmd}\"}}}}]}}}}\n"
    );
    assert_one("session.jsonl", &text, &telegram, 2, "telegram.bot-token");
}

// issue 18, item 3: Codex rollouts and OpenAI message arrays, including JSON-in-JSON tool
// arguments, each secret once at its line.
#[test]
fn codex_and_openai_message_transcripts_find_secrets_in_text_and_tool_arguments() {
    let key = format!("sk-proj-{}", fresh(48));
    let pw = format!("{}-{}", fresh(8), fresh(8));
    let codex = format!(
        "{{\"type\":\"session_meta\",\"payload\":{{\"id\":\"x\"}}}}\n\
         {{\"type\":\"response_item\",\"payload\":{{\"type\":\"message\",\"role\":\"user\",\"content\":[{{\"type\":\"input_text\",\"text\":\"my key is {key}\"}}]}}}}\n\
         {{\"type\":\"response_item\",\"payload\":{{\"type\":\"function_call\",\"name\":\"shell\",\"arguments\":\"{{\\\"command\\\":[\\\"bash\\\",\\\"-lc\\\",\\\"export PGPASSWORD='{pw}'\\\"]}}\"}}}}\n"
    );
    assert_one(
        "rollout-2026-12-01.jsonl",
        &codex,
        &key,
        2,
        "openai.project-key",
    );
    assert_eq!(
        found("rollout-2026-12-01.jsonl", &codex, &pw).len(),
        1,
        "{codex}"
    );
    assert_eq!(found("rollout-2026-12-01.jsonl", &codex, &pw)[0].0, 3);
    let tok = fresh(40);
    let openai = format!(
        "[\n  {{\"role\": \"system\", \"content\": \"be brief\"}},\n  {{\"role\": \"user\", \"content\": \"use this: Authorization: Bearer {tok}\"}},\n  {{\"role\": \"assistant\", \"tool_calls\": [{{\"type\": \"function\", \"function\": {{\"name\": \"login\", \"arguments\": \"{{\\\"password\\\": \\\"{pw}\\\"}}\"}}}}]}}\n]\n"
    );
    assert_one("messages.json", &openai, &tok, 3, "generic.bearer");
    let pws = found("messages.json", &openai, &pw);
    assert_eq!(pws.len(), 1, "{openai}\n{pws:?}");
    assert_eq!(pws[0].0, 4);
}

fn fresh_digits(n: usize) -> String {
    fresh(n * 4)
        .bytes()
        .filter(u8::is_ascii_digit)
        .chain(std::iter::repeat(b'7'))
        .take(n)
        .map(char::from)
        .collect()
}

// A value drawn by `fresh(40)` in a CI run that failed: nine changes of character class in
// forty bytes read as a CamelCase name, so the header's token was taken for code.
#[test]
fn a_bearer_token_that_reads_as_a_camelcase_name_is_still_found() {
    let v = "OGthcgxLSVGdyeWbVsbThzBMDMkoDXFSPmhn0et1";
    assert_one(
        "deploy.sh",
        &format!("#!/bin/sh\ncurl -sf -H \"Authorization: Bearer {v}\" https://ci.internal/run\n"),
        v,
        2,
        "generic.bearer",
    );
    // An assignment's value of that shape is still read as a name (`AuthToken: tokenValue`).
    assert_eq!(
        found("client.go", &format!("\tAuthToken: {v},\n"), v),
        vec![]
    );
}
