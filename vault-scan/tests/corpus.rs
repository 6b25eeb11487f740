//! The project's labelled corpus: every class of issue 18 (provider formats, generic
//! assignments in source, headers, prose, transcripts; hard negatives from real code and
//! documentation), drawn fresh at test time. Its precision and recall are printed and held
//! to the goals (>= 0.97 / >= 0.95). Run with `--nocapture` to see the figures.

use vault_scan::{crc32_base62, redact};

use crate::{fresh, scan_text};

fn upper_digits(n: usize) -> String {
    fresh(n * 3)
        .bytes()
        .filter(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        .chain(std::iter::repeat(b'Q'))
        .take(n)
        .map(char::from)
        .collect()
}

fn ghp() -> String {
    let body = fresh(30);
    format!(
        "ghp_{body}{}",
        String::from_utf8_lossy(&crc32_base62(body.as_bytes()))
    )
}

/// (file name, text, the secrets planted in it). Negatives plant none.
type Case = (&'static str, String, Vec<String>);

fn positives() -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    let mut add =
        |name: &'static str, text: String, secrets: Vec<String>| out.push((name, text, secrets));
    for _ in 0..3 {
        let (g, o, a) = (
            ghp(),
            format!("sk-proj-{}", fresh(56)),
            format!("AKIA{}", upper_digits(16)),
        );
        add(
            ".env",
            format!("GH_TOKEN={g}\nOPENAI_API_KEY={o}\nAWS_ACCESS_KEY_ID={a}\n"),
            vec![g, o, a],
        );
        let s = format!("xoxb-{}-{}-{}", fresh(11), fresh(12), fresh(24));
        let an = format!("sk-ant-api03-{}", fresh(95));
        add(
            "config.yaml",
            format!("slack:\n  token: {s}\nanthropic_key: {an}\n"),
            vec![s, an],
        );
        let gl = format!("glpat-{}", fresh(20));
        add(
            "ci.sh",
            format!("git clone https://oauth2:{gl}@gitlab.com/x/y.git\n"),
            vec![gl],
        );
        let pw = format!("{}-{}", fresh(10), fresh(8));
        add(
            "src/settings.py",
            format!("DATABASES = {{'default': {{'PASSWORD': '{pw}'}}}}\n"),
            vec![pw],
        );
        let db = fresh(18);
        add(
            "docker-compose.yml",
            format!("  DATABASE_URL: postgres://app:{db}@db.internal:5432/app\n"),
            vec![db],
        );
        let k = fresh(32);
        add(
            "client.go",
            format!("c := Client{{\n\tAuthToken: \"{k}\",\n}}\n"),
            vec![k],
        );
        let k = fresh(32);
        add(
            "config.ts",
            format!("export const API_KEY: string = \"{k}\";\n"),
            vec![k],
        );
        let k = fresh(40);
        add(
            "app.js",
            format!("const c = new Api({{ token: \"{k}\" }});\n"),
            vec![k],
        );
        let k = fresh(40);
        add(
            "deploy.sh",
            format!("curl -H \"Authorization: Bearer {k}\" https://ci.internal\n"),
            vec![k],
        );
        let pw = format!("{}-{}", fresh(6), fresh(10));
        add(
            "session.jsonl",
            format!("{{\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":\"set DB_PASSWORD to {pw} please\"}}}}\n"),
            vec![pw],
        );
        let t = format!("7123456789:AA{}", fresh(33));
        add(
            "session.jsonl",
            format!("{{\"type\":\"user\",\"message\":{{\"role\":\"user\",\"content\":\"TELEGRAM_BOT_TOKEN={t}\\nthanks\"}}}}\n"),
            vec![t],
        );
        let pw = format!("{}{}", fresh(12), "!7");
        add(
            "rollout.jsonl",
            format!("{{\"type\":\"response_item\",\"payload\":{{\"type\":\"function_call\",\"arguments\":\"{{\\\"cmd\\\":\\\"export DB_PASSWORD={pw}\\\"}}\"}}}}\n"),
            vec![pw],
        );
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----",
            fresh(64),
            fresh(64)
        );
        add("deploy/id_app.pem", format!("{pem}\n"), vec![pem]);
    }
    out
}

fn negatives() -> Vec<Case> {
    let k = fresh(32);
    let bad = {
        let g = ghp();
        let last = if g.ends_with('A') { 'B' } else { 'A' };
        format!("{}{last}", &g[..g.len() - 1])
    };
    let texts: Vec<(&'static str, String)> = vec![
        ("crypto.py", "private_key = rsa.PrivateKey.load_pkcs1(data)\npassword = self.encrypted_password\n".into()),
        ("types.py", "private_key: x25519.X25519PrivateKey = make_key()\napi_key: Optional[str] = None\n".into()),
        ("lib.rs", "let password = password_hash::Error::Algorithm;\nlet pw = rpassword::read_password()?;\n".into()),
        ("policy.json", "{\"PasswordPolicy\": \"arn:aws:iam::aws:policy/IAMUserChangePassword\", \"PasswordLastUsed\": \"2016-06-13T18:32:04Z\"}\n".into()),
        (".env", format!("GH_TOKEN={bad}\nDB_PASSWORD=${{DB_PASSWORD}}\nAPI_KEY=<your-api-key>\n")),
        ("app.py", "DATABASE_URL = 'postgres://user:pass@localhost:5432/app'\nredis = 'redis://:password@127.0.0.1:6379'\n".into()),
        ("auth.js", "const jwt = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';\n".into()),
        ("tests/fixtures/key.pem", format!("-----BEGIN PRIVATE KEY-----\n{}\n{}\n-----END PRIVATE KEY-----\n", fresh(64), fresh(64))),
        ("docs/setup.md", format!("Set it like this:\n\n    API_KEY={k}\n")),
        ("README.md", format!("export GITLAB_TOKEN=glpat-{}\n", fresh(20))),
        ("run.sh", "curl -H \"Authorization: Bearer $TOKEN\" https://x.internal\nset DB_PASSWORD to the one in 1Password\n".into()),
        ("gen.py", "token = generate_token_for_user(user)\nsecret = os.environ['APP_SECRET']\n".into()),
    ];
    texts.into_iter().map(|(n, t)| (n, t, Vec::new())).collect()
}

// issue 18, "Proven": the labelled corpus's precision and recall, printed and held to goal.
#[test]
fn labelled_corpus_precision_and_recall_meet_the_goal() {
    let (mut tp, mut fp, mut fal_neg) = (0usize, 0usize, 0usize);
    let mut misses = Vec::new();
    let mut false_alarms = Vec::new();
    for (name, text, secrets) in positives().into_iter().chain(negatives()) {
        let r = scan_text(name, &text);
        let reds: Vec<String> = secrets.iter().map(|s| redact(s.as_bytes())).collect();
        for (s, red) in secrets.iter().zip(&reds) {
            let n = r.findings.iter().filter(|f| &f.redacted == red).count();
            if n == 0 {
                fal_neg += 1;
                misses.push(format!("{name}: {s}"));
            } else {
                tp += 1;
                // One value, one finding: a second report of it is a false alarm.
                fp += n - 1;
                if n > 1 {
                    let rules: Vec<&str> = r
                        .findings
                        .iter()
                        .filter(|f| &f.redacted == red)
                        .map(|f| f.rule.as_str())
                        .collect();
                    false_alarms.push(format!("{name}: reported {n} times: {rules:?}"));
                }
            }
        }
        for f in r.findings.iter().filter(|f| !reds.contains(&f.redacted)) {
            fp += 1;
            false_alarms.push(format!("{name}:{} {} {}", f.line, f.rule, f.redacted));
        }
    }
    let precision = tp as f64 / (tp + fp).max(1) as f64;
    let recall = tp as f64 / (tp + fal_neg).max(1) as f64;
    println!("labelled corpus: {tp} found, {fp} false alarms, {fal_neg} missed: precision {precision:.3}, recall {recall:.3}");
    assert!(
        precision >= 0.97 && recall >= 0.95,
        "precision {precision:.3}, recall {recall:.3}\nmissed:\n{}\nfalse alarms:\n{}",
        misses.join("\n"),
        false_alarms.join("\n")
    );
}
