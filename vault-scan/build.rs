//! Embeds every `rules/*.toml` (one file per provider, Nosey Parker's layout) so a rule file
//! added or removed needs no code change. Each file is parsed here and embedded as JSON:
//! the TOML parser took 14 % of the CPU time of a 31 MB scan, at every start (issue 18), and
//! JSON of the same tables parses an order of magnitude faster. A file that is not TOML fails
//! the build, naming it.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read when the script runs, not when it was compiled: a target directory
    // moved to another checkout reuses the compiled script.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("rules");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("vault-scan/rules is readable")
        .map(|e| e.expect("a rules/ entry is readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    // Sorted, so the load order (and `vault scan --rules`) is the same on every machine.
    files.sort();
    let mut out = String::from("&[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let stem = path
            .file_stem()
            .expect("a .toml file has a stem")
            .to_string_lossy();
        let text = std::fs::read_to_string(path).expect("a rules file is readable");
        let table: toml::Table = toml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()));
        let json = serde_json::to_string(&table).expect("TOML values convert to JSON");
        writeln!(out, "    ({stem:?}, {json:?}),").expect("writing to a String");
    }
    out.push_str("]\n");
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("builtin_rules.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}
