//! A server's WAL checkpoints on a connection of their own
//! (store/wal_checkpoint.rs): the writer's commits stop paying for them, the
//! checkpointer copies everything, and the WAL starts over after it.

use tempfile::TempDir;

use super::*;
use crate::crypto::kdf::KdfParams;
use crate::names::SecretPath;
use crate::secret::SecretBytes;

const OP: &Principal = &Principal::Operator;

/// Enough single commits to write well past SQLite's 1,000-page
/// autocheckpoint (each one rewrites the secret's row, its audit record and
/// their indexes' pages).
const COMMITS: usize = 400;

fn write_many(v: &mut Vault) {
    let path = SecretPath::parse("hermes/TOKEN").unwrap();
    for i in 0..COMMITS {
        let value = SecretBytes::from_slice(format!("value {i}").as_bytes());
        v.set_secret(OP, &path, &value).unwrap();
    }
}

/// The WAL's frames and how many of them are copied, as a passive
/// checkpoint on a plain connection of the test's own reports.
fn wal_frames(dir: &TempDir) -> (i64, i64) {
    let conn = rusqlite::Connection::open(dir.path().join("v").join(DB_FILE)).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
    .unwrap()
}

fn new_vault() -> (TempDir, Vault) {
    let dir = TempDir::new().unwrap();
    let pass = SecretString::new("pw".to_owned());
    let mut v = Vault::init(&dir.path().join("v"), &pass, KdfParams::TEST_ONLY).unwrap();
    let hermes = AgentName::parse("hermes").unwrap();
    v.add_agent(OP, &hermes, &crate::Policy::default()).unwrap();
    (dir, v)
}

#[test]
fn by_default_the_writer_checkpoints_and_the_wal_stays_near_a_thousand_pages() {
    // the behaviour the checkpointer replaces, so the test below means something
    let (dir, mut v) = new_vault();
    write_many(&mut v);
    let (frames, _) = wal_frames(&dir);
    assert!(
        frames < 1_200,
        "the writer's own checkpoints restarted the WAL: {frames} frames"
    );
}

#[test]
fn a_vault_that_checkpoints_elsewhere_leaves_the_wal_to_its_checkpointer() {
    let (dir, mut v) = new_vault();
    let checkpointer = v
        .checkpoint_elsewhere()
        .unwrap()
        .expect("a vault file in WAL mode");
    write_many(&mut v);
    let progress = checkpointer.checkpoint().unwrap();
    assert!(
        progress.frames > 1_200,
        "no commit checkpointed by itself: {progress:?}"
    );
    assert!(
        progress.frames < store::WRITER_BACKSTOP_PAGES,
        "below the writer's backstop: {progress:?}"
    );
    assert_eq!(progress.copied, progress.frames, "everything copied back");
    // the next commit starts the WAL over from its beginning
    let path = SecretPath::parse("hermes/TOKEN").unwrap();
    v.set_secret(OP, &path, &SecretBytes::from_slice(b"after"))
        .unwrap();
    let after = checkpointer.checkpoint().unwrap();
    assert!(after.frames < 100, "the WAL started over: {after:?}");
    // nothing was lost on the way: a fresh handle reads the last value
    drop(checkpointer);
    drop(v);
    let pass = SecretString::new("pw".to_owned());
    let v = Vault::unlock(&dir.path().join("v"), &pass).unwrap();
    let (value, _) = v.get_secret(OP, &path).unwrap();
    assert_eq!(value.as_str().unwrap(), "after");
}
