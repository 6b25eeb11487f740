//! `.vaultignore` is honoured wherever paths come from (issue 5): walked directories, the
//! directories above a walked root, files named explicitly, and `--staged` paths.

use std::path::Path;
use std::process::Command;

use vault_scan::{scan_paths, scan_staged, Report, ScanOptions};

use crate::scanner;

const TOKEN: &str = "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";

/// root/.vaultignore excludes `secret.env` and `private/`; root/sub/.vaultignore re-includes
/// `secret.env` there. Every file holds the fake token.
fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::create_dir_all(p.join("private")).unwrap();
    std::fs::create_dir_all(p.join("sub")).unwrap();
    std::fs::write(p.join(".vaultignore"), "secret.env\nprivate/\n").unwrap();
    std::fs::write(p.join("sub/.vaultignore"), "!secret.env\n").unwrap();
    for f in [
        "ok.env",
        "secret.env",
        "private/a.env",
        "sub/secret.env",
        "sub/b.env",
    ] {
        std::fs::write(p.join(f), format!("T={TOKEN}\n")).unwrap();
    }
    d
}

fn found(root: &Path, r: &Report) -> Vec<String> {
    let mut v: Vec<String> = r
        .findings
        .iter()
        .map(|f| {
            let p = Path::new(&f.path);
            p.strip_prefix(root).unwrap_or(p).display().to_string()
        })
        .collect();
    v.sort();
    v
}

fn scan(paths: &[&Path], respect_ignore: bool) -> Report {
    let opts = ScanOptions {
        respect_ignore,
        ..ScanOptions::default()
    };
    let paths: Vec<_> = paths.iter().map(|p| p.to_path_buf()).collect();
    scan_paths(scanner(), None, &paths, &opts)
}

#[test]
fn directory_walks_honour_it_with_and_without_gitignore() {
    let d = tree();
    for respect in [true, false] {
        let r = scan(&[d.path()], respect);
        assert_eq!(
            found(d.path(), &r),
            ["ok.env", "sub/b.env", "sub/secret.env"],
            "respect_ignore={respect}"
        );
    }
}

#[test]
fn a_walked_root_below_a_vaultignore_honours_it() {
    // Scanning root/private or root/sub directly: the rules of root/.vaultignore still hold,
    // even with --no-ignore (which turns off .gitignore, never .vaultignore).
    let d = tree();
    for respect in [true, false] {
        let r = scan(&[&d.path().join("private")], respect);
        assert!(r.findings.is_empty(), "{r:?}");
        assert!(r.skipped[0].reason.contains(".vaultignore"), "{r:?}");
        let r = scan(&[&d.path().join("sub")], respect);
        assert_eq!(found(d.path(), &r), ["sub/b.env", "sub/secret.env"]);
    }
}

#[test]
fn explicitly_named_files_honour_it() {
    let d = tree();
    let p = d.path();
    let r = scan(
        &[
            &p.join("secret.env"),
            &p.join("private/a.env"),
            &p.join("ok.env"),
            &p.join("sub/secret.env"),
        ],
        true,
    );
    assert_eq!(found(p, &r), ["ok.env", "sub/secret.env"]);
    let skipped: Vec<&str> = r.skipped.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped[0].ends_with("secret.env") && skipped[1].ends_with("private/a.env"));
    assert!(r
        .skipped
        .iter()
        .all(|s| s.reason == "excluded by .vaultignore"));
    // The same through a relative path with `..` (resolved as the walker would).
    let rel = p.join("sub/../secret.env");
    assert!(scan(&[&rel], false).findings.is_empty());
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .env_remove("GIT_INDEX_FILE")
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

#[test]
fn staged_paths_honour_the_repository_vaultignore() {
    let d = tree();
    let p = d.path();
    git(p, &["init", "-q", "-b", "main"]);
    // The rules apply once committed: they are read from HEAD, never from the change being
    // checked (issue 13, finding 4).
    git(p, &["add", "-f", ".vaultignore", "sub/.vaultignore"]);
    git(
        p,
        &[
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "ignore rules",
        ],
    );
    git(p, &["add", "-f", "."]);
    // From the top and from a subdirectory: the paths are the index's, the rules the top's.
    for from in [p.to_path_buf(), p.join("sub")] {
        let r = scan_staged(scanner(), None, &from, &ScanOptions::default());
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            found(p, &r),
            ["ok.env", "sub/b.env", "sub/secret.env"],
            "from {}",
            from.display()
        );
        let mut skipped: Vec<&str> = r.skipped.iter().map(|s| s.path.as_str()).collect();
        skipped.sort();
        assert_eq!(skipped, ["private/a.env", "secret.env"]);
    }
}
