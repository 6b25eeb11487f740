//! Issue 2's speed figures: unlock at real parameters, `get` after unlock, and
//! opening a vault that holds 10,000 secrets. Run with
//! `cargo bench -p vault-core --bench vault`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use vault_core::{AgentName, KdfParams, Principal, SecretBytes, SecretPath, SecretString, Vault};

const OP: &Principal = &Principal::Operator;

fn fixture(secrets: usize, kdf: KdfParams) -> (tempfile::TempDir, SecretString) {
    let dir = tempfile::TempDir::new().unwrap();
    let pass = SecretString::new("benchmark passphrase".into());
    let mut vault = Vault::init(&dir.path().join("v"), &pass, kdf).unwrap();
    vault
        .add_agent(
            OP,
            &AgentName::parse("hermes").unwrap(),
            &Default::default(),
        )
        .unwrap();
    let value = SecretBytes::from_slice(&[b'x'; 40]);
    for i in 0..secrets {
        let path = SecretPath::parse(&format!("hermes/S{i}")).unwrap();
        vault.set_secret(OP, &path, &value).unwrap();
    }
    (dir, pass)
}

fn benches(c: &mut Criterion) {
    let calibrated = KdfParams::calibrate(Duration::from_millis(500), 1024 * 1024).unwrap();
    eprintln!("calibrated parameters on this machine: {calibrated:?}");

    let mut group = c.benchmark_group("unlock");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for (label, kdf) in [
        ("floor_64MiB_t3", KdfParams::FLOOR),
        ("calibrated_default", calibrated),
    ] {
        let (dir, pass) = fixture(0, kdf);
        let home = dir.path().join("v");
        group.bench_function(label, |b| b.iter(|| Vault::unlock(&home, &pass).unwrap()));
    }
    group.finish();

    let (dir, pass) = fixture(100, KdfParams::FLOOR);
    let vault = Vault::unlock(&dir.path().join("v"), &pass).unwrap();
    let path = SecretPath::parse("hermes/S42").unwrap();
    c.bench_function("get_after_unlock", |b| {
        b.iter(|| vault.get_secret(OP, &path).unwrap())
    });

    // Not a criterion loop: building 10,000 secrets takes a while and one open
    // is what a user waits for.
    let (dir, pass) = fixture(10_000, calibrated);
    let home = dir.path().join("v");
    let mut runs: Vec<Duration> = (0..5)
        .map(|_| {
            let start = Instant::now();
            let vault = Vault::unlock(&home, &pass).unwrap();
            let listed = vault.list_secrets(OP, None).unwrap();
            assert_eq!(listed.len(), 10_000);
            start.elapsed()
        })
        .collect();
    runs.sort();
    eprintln!(
        "open + unlock + list 10,000 secrets (calibrated KDF): median {:?} of 5",
        runs[2]
    );
}

criterion_group!(vault_benches, benches);
criterion_main!(vault_benches);
