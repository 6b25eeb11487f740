//! vault-demo: the guided tour `vault demo` gives, in a throwaway vault.
//! Each step runs the real `vault` binary as a user would and writes the
//! command and what it showed, so the tour doubles as a smoke test of the
//! main job: a program that installs vault can run [`tour`] to check it.
//!
//! What lives here: the steps, their checks and their narration, written to
//! any [`Write`]. What must not: anything the binary does itself; every step
//! goes through its command line.

#![deny(missing_docs)]

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the tour stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A step did not do what the tour shows it doing.
    #[error("{0}")]
    Failed(String),
    /// A program could not be started or a file written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// What was being done when `source` failed.
    #[error("{context}")]
    Context {
        /// What was being started.
        context: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stops the tour with `message`.
macro_rules! bail {
    ($($arg:tt)*) => { return Err(Error::Failed(format!($($arg)*))) };
}

/// Names what was being started when an I/O error happened.
trait Context<T> {
    fn context(self, context: &'static str) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, context: &'static str) -> Result<T> {
        self.map_err(|source| Error::Context { context, source })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: &'static str) -> Result<T> {
        self.ok_or_else(|| Error::Failed(context.to_owned()))
    }
}

/// A value obviously fake, so the tour can show it without showing anything real.
const DEMO_VALUE: &str = "ghp_DEMOxFAKExTOKENxNOTxREAL0000000000";

struct Tour<'a> {
    out: &'a mut dyn Write,
    exe: PathBuf,
    home: PathBuf,
    passfile: PathBuf,
    step: usize,
    /// Extra environment for the next commands (e.g. an agent's key).
    env: Vec<(String, String)>,
    /// Where the next commands run (a git repository for `scan --staged`).
    cwd: Option<PathBuf>,
}

impl Tour<'_> {
    /// Runs `vault ARGS` with `stdin`, prints it, returns (exit code, stdout).
    fn run(&mut self, title: &str, args: &[&str], stdin: Option<&str>) -> Result<(i32, String)> {
        if !title.is_empty() {
            self.step += 1;
            writeln!(self.out, "\n{}. {title}", self.step)?;
        }
        // A request is shown as it is; a secret value never is.
        let shown_stdin = match stdin {
            Some(request) if request.starts_with('{') => format!("echo '{request}' | "),
            Some(_) => "printf '%s' \"$VALUE\" | ".to_owned(),
            None => String::new(),
        };
        writeln!(self.out, "   $ {shown_stdin}vault {}", args.join(" "))?;
        let mut command = Command::new(&self.exe);
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        }
        let mut child = command
            .args(args)
            .env("VAULT_HOME", &self.home)
            .env("VAULT_PASSPHRASE_FILE", &self.passfile)
            .env_remove("VAULT_AGENT_KEY")
            .env_remove("VAULT_ADDR")
            // the tour's vault is a throwaway SQLite file, never the
            // operator's database (issue 20)
            .env_remove("VAULT_DATABASE_URL")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting vault")?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in stdout
            .lines()
            .chain(String::from_utf8_lossy(&out.stderr).lines())
        {
            writeln!(self.out, "   | {}", redact_credentials(line))?;
        }
        let code = out.status.code().unwrap_or(-1);
        writeln!(self.out, "   (exit {code})")?;
        Ok((code, stdout))
    }

    fn expect(
        &mut self,
        title: &str,
        args: &[&str],
        stdin: Option<&str>,
        want: i32,
    ) -> Result<String> {
        let (code, stdout) = self.run(title, args, stdin)?;
        if code != want {
            bail!("demo step {} expected exit {want}, got {code}", self.step);
        }
        Ok(stdout)
    }
}

/// Runs the tour with the `vault` binary at `exe`, narrating to `out`; with
/// `keep`, the throwaway vault directory is kept and its path returned.
///
/// # Errors
/// A step did not do what the tour shows (its exit code or output), or a
/// program or file could not be used.
pub fn tour(exe: PathBuf, keep: bool, out: &mut dyn Write) -> Result<Option<PathBuf>> {
    let dir = tempfile::Builder::new().prefix("vault-demo-").tempdir()?;
    let home = dir.path().join("vault");
    let passfile = dir.path().join("passphrase");
    write_private(&passfile, "demo passphrase for a throwaway vault\n")?;
    let mut tour = Tour {
        out,
        exe,
        home: home.clone(),
        passfile,
        step: 0,
        env: Vec::new(),
        cwd: None,
    };
    writeln!(
        tour.out,
        "vault demo: a throwaway vault in {}",
        home.display()
    )?;
    writeln!(
        tour.out,
        "(the passphrase comes from VAULT_PASSPHRASE_FILE, never from arguments)"
    )?;

    // The floor parameters keep the tour quick; a real `init` calibrates to ~0.5 s.
    tour.expect(
        "Create the vault (Argon2id at the RFC 9106 floor for speed)",
        &["init", "--kdf-memory-mib", "64", "--kdf-iterations", "3"],
        None,
        0,
    )?;
    tour.expect(
        "Register two agents",
        &["agent", "add", "hermes-marketing"],
        None,
        0,
    )?;
    tour.expect("", &["agent", "add", "hermes-finance"], None, 0)?;
    tour.expect(
        "Store a secret for the marketing agent; the value comes on stdin",
        &["set", "hermes-marketing/GITHUB_TOKEN"],
        Some(DEMO_VALUE),
        0,
    )?;
    tour.expect(
        "Store one for the finance agent",
        &["set", "hermes-finance/STRIPE_KEY"],
        Some("sk_test_DEMO_FAKE_VALUE"),
        0,
    )?;
    tour.expect(
        "Rotate it by hand: a second version",
        &["set", "hermes-marketing/GITHUB_TOKEN"],
        Some("ghp_DEMOxFAKExTOKENxVERSIONxTWO000000000"),
        0,
    )?;
    tour.expect("List: names and versions, never values", &["ls"], None, 0)?;
    tour.expect(
        "History: versions and dates, never values",
        &["history", "hermes-marketing/GITHUB_TOKEN"],
        None,
        0,
    )?;
    let got = tour.expect(
        "Get prints a value only when asked for it by name",
        &["get", "hermes-marketing/GITHUB_TOKEN"],
        None,
        0,
    )?;
    if got.trim_end() != "ghp_DEMOxFAKExTOKENxVERSIONxTWO000000000" {
        bail!("demo: get returned the wrong value");
    }

    let env_file = dir.path().join("marketing.env");
    std::fs::write(
        &env_file,
        "# the marketing agent's env file\nLOG_LEVEL=info\n",
    )?;
    let env_path = env_file.to_string_lossy().into_owned();
    tour.expect(
        "Give the marketing agent its own named key, written straight into its env file",
        &["issue", "hermes-marketing-key", "--write-env", &env_path],
        None,
        0,
    )?;
    let text = std::fs::read_to_string(&env_file)?;
    writeln!(
        tour.out,
        "   the env file keeps its other lines and now has VAULT_AGENT_KEY=avk_… (not shown)"
    )?;
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("VAULT_AGENT_KEY="))
        .context("demo: the key is missing from the env file")?
        .to_owned();
    tour.env = vec![("VAULT_AGENT_KEY".into(), key)];
    tour.expect(
        "The agent turns its key into a 15-minute token that can only read GITHUB_TOKEN",
        &["token", "--scope", "secret:GITHUB_TOKEN", "--ttl", "15m"],
        None,
        0,
    )?;
    tour.env.clear();
    tour.expect(
        "Run the marketing agent with only its own secrets (values masked in piped output)",
        &[
            "run",
            "--agent",
            "hermes-marketing",
            "--",
            "sh",
            "-c",
            "echo \"GITHUB_TOKEN=$GITHUB_TOKEN\"; echo \"STRIPE_KEY=${STRIPE_KEY:-<not set>}\"",
        ],
        None,
        0,
    )?;
    tour.expect("Keys are listed, never shown", &["keys", "ls"], None, 0)?;
    tour.expect(
        "The env file vault wrote is the agent's key's target, so rotations rewrite it",
        &["target", "ls", "--agent", "hermes-marketing"],
        None,
        0,
    )?;
    let before = std::fs::read_to_string(&env_file)?;
    tour.expect(
        "Rotation: successor written to every target holding the key and checked, then the old key revoked",
        &["rotate", "hermes-marketing-key"],
        None,
        0,
    )?;
    let after = std::fs::read_to_string(&env_file)?;
    writeln!(
        tour.out,
        "   the env file's key changed: {}; its other lines are unchanged: {}",
        before != after,
        after.contains("LOG_LEVEL=info")
    )?;
    // The leak: the agent pastes its own key into a chat that is logged.
    let sessions = dir.path().join("sessions");
    std::fs::create_dir(&sessions)?;
    let leaked = std::fs::read_to_string(&env_file)?
        .lines()
        .find_map(|l| l.strip_prefix("VAULT_AGENT_KEY="))
        .context("demo: the key is missing from the env file")?
        .to_owned();
    std::fs::write(
        sessions.join("chat.jsonl"),
        format!("{{\"role\":\"user\",\"content\":\"here is my key: {leaked}\"}}\n"),
    )?;
    let sessions_path = sessions.to_string_lossy().into_owned();
    tour.expect(
        "The agent pastes its key into a logged chat; the watcher finds it (exit 0: it acted)",
        &["watch", &sessions_path, "--once"],
        None,
        0,
    )?;
    let now = std::fs::read_to_string(&env_file)?;
    let replaced = !now.contains(&leaked);
    writeln!(
        tour.out,
        "   the leaked key was rotated away and the env file holds its successor: {replaced}"
    )?;
    if !replaced {
        bail!("demo: the leaked key was not rotated");
    }
    tour.env = vec![("VAULT_AGENT_KEY".into(), leaked)];
    tour.expect(
        "The leaked key no longer works (exit 3)",
        &["token"],
        None,
        3,
    )?;
    tour.env.clear();

    // The server: the agent needs only its (new) key, not the passphrase.
    let current = std::fs::read_to_string(&env_file)?
        .lines()
        .find_map(|l| l.strip_prefix("VAULT_AGENT_KEY="))
        .context("demo: the key is missing from the env file")?
        .to_owned();
    let admin = dir.path().join("admin-token");
    let mut server = Command::new(&tour.exe)
        .args(["server", "--listen", "127.0.0.1:0", "--admin-token-file"])
        .arg(&admin)
        .args(["--broker", "127.0.0.1:0"])
        .env("VAULT_HOME", &home)
        .env("VAULT_PASSPHRASE_FILE", &tour.passfile)
        .env_remove("VAULT_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting vault server")?;
    // The API's and the broker's lines, in either order; the reader is kept
    // until the server stops, so its later writes never meet a closed pipe.
    let mut reader = server.stdout.take().map(std::io::BufReader::new);
    let (mut api, mut broker) = (None, None);
    for _ in 0..2 {
        let mut line = String::new();
        if let Some(r) = reader.as_mut() {
            std::io::BufRead::read_line(r, &mut line)?;
        }
        let line = line.trim();
        if let Some(b) = line.strip_prefix("broker listening on ") {
            broker = Some(b.to_owned());
        } else if let Some(a) = line.strip_prefix("listening on ") {
            api = Some(a.to_owned());
        }
    }
    let (Some(addr), Some(broker)) = (api, broker) else {
        let _ = server.kill();
        let _ = server.wait();
        bail!("demo: the server did not start");
    };
    tour.step += 1;
    writeln!(tour.out,
        "\n{}. Start the server on a free loopback port, with the egress broker\n   $ vault server --listen 127.0.0.1:0 --admin-token-file FILE --broker 127.0.0.1:0\n   | listening on {addr}\n   | broker listening on {broker}",
        tour.step
    )?;
    tour.env = vec![
        ("VAULT_ADDR".into(), addr),
        ("VAULT_AGENT_KEY".into(), current),
    ];
    let served = tour.run(
        "The marketing agent fetches its env over HTTP with only its key (no passphrase)",
        &["env", "--format", "json"],
        None,
    );
    let resolved = tour.run(
        "OpenClaw's exec provider asks for two ids as the marketing agent: its own, and the finance agent's",
        &["resolve", "--openclaw"],
        Some(r#"{"protocolVersion": 1, "provider": "vault", "ids": ["GITHUB_TOKEN", "hermes-finance/STRIPE_KEY"]}"#),
    );
    // Brokered egress: the finance agent's Stripe key is attached by the
    // broker; the agent itself gets only a placeholder and a key of its own.
    tour.env.clear();
    let egress = dir.path().join("finance-egress.toml");
    std::fs::write(
        &egress,
        "[[egress]]\nservice = \"stripe\"\nsecret = \"STRIPE_KEY\"\n",
    )?;
    let egress_path = egress.to_string_lossy().into_owned();
    let brokered = tour
        .expect(
            "Broker the finance agent's Stripe key: an egress rule for api.stripe.com",
            &["agent", "set-policy", "hermes-finance", "--policy", &egress_path],
            None,
            0,
        )
        .and_then(|_| {
            tour.env = vec![("VAULT_BROKER".into(), broker.clone())];
            tour.run(
                "Run the agent through the broker: it holds a placeholder, never the key",
                &[
                    "run", "--broker", "--agent", "hermes-finance", "--", "sh", "-c",
                    "echo STRIPE_KEY=$STRIPE_KEY; case $HTTPS_PROXY in http://agent:avt_*@*) echo HTTPS_PROXY: the broker, with an egress token whose key is revoked when this exits;; esac",
                ],
                None,
            )
        });
    tour.env.clear();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = server.wait();
    drop(reader);
    let (code, json) = served?;
    if code != 0 || !json.contains("GITHUB_TOKEN") || json.contains("STRIPE_KEY") {
        bail!("demo: the env over HTTP was not the marketing agent's alone");
    }
    writeln!(
        tour.out,
        "   only the marketing agent's secrets came back; the finance agent's did not"
    )?;
    let (code, answer) = resolved?;
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
    if code != 0
        || !answer["values"]["GITHUB_TOKEN"].is_string()
        || answer["errors"]["hermes-finance/STRIPE_KEY"]["code"] != "NOT_FOUND"
    {
        bail!("demo: the OpenClaw resolver did not answer as the marketing agent alone");
    }
    writeln!(tour.out, "   the resolver answered GITHUB_TOKEN and NOT_FOUND for the finance agent's secret, exactly like a missing one")?;
    let (code, out) = brokered?;
    if code != 0 || !out.contains("STRIPE_KEY=vault-brokered") || out.contains("sk_test_") {
        bail!("demo: the brokered run did not hold only the placeholder");
    }
    writeln!(tour.out, "   the broker would attach the real key to requests for api.stripe.com; the agent never saw it")?;

    // A commit about to carry the finance agent's stored secret in a config file.
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo)?;
    let git = |args: &[&str]| -> Result<()> {
        let status = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running git")?;
        if !status.success() {
            bail!("demo: git {} failed", args.join(" "));
        }
        Ok(())
    };
    git(&["init", "-q"])?;
    std::fs::write(
        repo.join("settings.py"),
        "DEBUG = False\nSTRIPE_KEY = \"sk_test_DEMO_FAKE_VALUE\"\n",
    )?;
    git(&["add", "settings.py"])?;
    tour.cwd = Some(repo);
    tour.expect(
        "A staged file holds the finance agent's stored secret: the pre-commit scan names it (exit 1)",
        &["scan", "--staged"],
        None,
        1,
    )?;
    tour.cwd = None;

    tour.expect("Usage per key, from the audit trail", &["usage"], None, 0)?;
    tour.expect(
        "The hash-chained audit trail is intact",
        &["audit", "verify"],
        None,
        0,
    )?;
    let policy = dir.path().join("finance.toml");
    std::fs::write(
        &policy,
        "secrets = [\"*\", \"hermes-marketing/*\"]\nmax_token_ttl = \"8h\"\n",
    )?;
    let policy_path = policy.to_string_lossy().into_owned();
    tour.expect(
        "Give the finance agent a sloppy policy (a wildcard grant, 8-hour tokens)",
        &[
            "agent",
            "set-policy",
            "hermes-finance",
            "--policy",
            &policy_path,
        ],
        None,
        0,
    )?;
    tour.expect(
        "vault doctor finds it, with the fix for each finding",
        &["doctor"],
        None,
        0,
    )?;

    tour.step += 1;
    writeln!(
        tour.out,
        "\n{}. The database file never holds a value in clear",
        tour.step
    )?;
    for file in std::fs::read_dir(&home)? {
        let path = file?.path();
        let bytes = std::fs::read(&path)?;
        let found = bytes
            .windows(DEMO_VALUE.len())
            .any(|w| w == DEMO_VALUE.as_bytes());
        writeln!(
            tour.out,
            "   {}: {} bytes, plaintext present: {found}",
            path.display(),
            bytes.len()
        )?;
        if found {
            bail!("demo: plaintext found in {}", path.display());
        }
    }

    write_private(&tour.passfile, "not the passphrase\n")?;
    tour.expect(
        "A wrong passphrase is refused with exit 3",
        &["ls"],
        None,
        3,
    )?;
    tour.expect(
        "A bad name is refused with the rule (exit 2)",
        &["agent", "add", "Bad_Name"],
        None,
        2,
    )?;

    writeln!(
        tour.out,
        "\nDone. Next: `vault init` for a real vault (VAULT_HOME, default ~/.local/share/vault)."
    )?;
    Ok(keep.then(|| dir.keep()))
}

/// The tour is in a throwaway vault, but it still shows credentials the way
/// findings do: prefix, first two and last four characters.
fn redact_credentials(line: &str) -> String {
    line.split(' ')
        .map(|word| {
            if (word.starts_with("avt_") || word.starts_with("avk_")) && word.len() > 12 {
                format!("{}…{}", &word[..6], &word[word.len() - 4..])
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
