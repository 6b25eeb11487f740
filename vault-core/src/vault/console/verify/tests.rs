use super::*;
use crate::secret::SecretString;
use crate::store::sql::args;
use crate::{AuditAction, AuditOutcome, KdfParams, PruneCutoff};

const OP: &Principal = &Principal::Operator;

fn vault_with_records(n: usize) -> (tempfile::TempDir, Vault) {
    let dir = tempfile::TempDir::new().unwrap();
    let v = Vault::init(
        &dir.path().join("v"),
        &SecretString::new("verify test passphrase".into()),
        KdfParams::FLOOR,
    )
    .unwrap();
    for i in 0..n {
        v.audit(
            OP,
            None,
            AuditAction::SecretRead,
            Some(&format!("codex/SECRET_{i}")),
            AuditOutcome::Ok,
        )
        .unwrap();
    }
    (dir, v)
}

fn walk(v: &Vault, from: Option<&AuditCheckpoint>, step: usize) -> (usize, VerifyStep) {
    let mut at = from.cloned();
    for steps in 1..=10_000 {
        match v.verify_audit_step(OP, at.as_ref(), step).unwrap() {
            VerifyStep::More(c) => at = Some(c),
            done => return (steps, done),
        }
    }
    panic!("the walk did not end");
}

// issue 17, item 1: a walk in bounded steps finds what the one-call walk
// finds, each step checking at most its share, and only the end of a walk
// from the start can be kept as the vault's checkpoint
#[test]
fn a_walk_in_bounded_steps_agrees_with_the_full_walk_and_only_a_full_walk_is_kept() {
    let (_dir, mut v) = vault_with_records(25);
    let last = match v.verify_audit().unwrap() {
        AuditVerdict::Intact { records } => records,
        other => panic!("{other:?}"),
    };
    let (steps, done) = walk(&v, None, 4);
    assert!(
        steps >= last as usize / 4,
        "{steps} steps for {last} records"
    );
    let VerifyStep::Done(AuditVerdict::Intact { records }, Some(full)) = done else {
        panic!("{done:?}");
    };
    assert_eq!(records, last);
    assert!(full.is_full_walk());
    let kept = v.record_audit_verified(OP, &full).unwrap();
    assert_eq!(v.audit_verified(OP).unwrap(), Some(kept.clone()));
    // a check from the kept checkpoint is incremental, and is not kept
    v.audit(
        OP,
        None,
        AuditAction::SecretRead,
        Some("x"),
        AuditOutcome::Ok,
    )
    .unwrap();
    let (steps, done) = walk(&v, Some(&kept.checkpoint), 4);
    assert_eq!(steps, 1, "one new record is one step");
    let VerifyStep::Done(AuditVerdict::Intact { records }, Some(inc)) = done else {
        panic!("{done:?}");
    };
    assert_eq!(records, last + 1);
    assert!(!inc.is_full_walk());
    assert!(matches!(
        v.record_audit_verified(OP, &inc),
        Err(Error::InvalidInput { .. })
    ));
    // an edited record after the checkpoint is found by a stepped walk too
    v.conn()
        .execute(
            "UPDATE audit_log SET target = 'forged' WHERE seq = ?1",
            args![last + 1],
        )
        .unwrap();
    let (_, done) = walk(&v, Some(&kept.checkpoint), 4);
    assert!(
        matches!(&done, VerifyStep::Done(AuditVerdict::Broken { seq, .. }, None) if *seq == last + 1),
        "{done:?}"
    );
    assert!(v.forget_audit_verified(OP).unwrap());
    assert_eq!(v.audit_verified(OP).unwrap(), None);
}

// issue 17, item 1: the kept checkpoint cannot be moved forward (over
// edited records) or re-dated by someone holding only the file
#[test]
fn a_kept_checkpoint_edited_in_the_file_is_refused() {
    let (_dir, mut v) = vault_with_records(5);
    let (_, done) = walk(&v, None, 100);
    let VerifyStep::Done(_, Some(full)) = done else {
        panic!("{done:?}");
    };
    v.record_audit_verified(OP, &full).unwrap();
    for edit in [
        "UPDATE audit_verified SET through_seq = through_seq + 1",
        "UPDATE audit_verified SET verified_at_ms = verified_at_ms + 86400000",
        "UPDATE audit_verified SET chain = zeroblob(32)",
    ] {
        let kept: (i64, Vec<u8>, i64, Vec<u8>) = v
            .conn()
            .query_one(
                "SELECT through_seq, chain, verified_at_ms, mac FROM audit_verified",
                args![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        v.conn().execute(edit, args![]).unwrap();
        assert!(
            matches!(v.audit_verified(OP), Err(Error::Integrity { .. })),
            "{edit}"
        );
        v.conn()
            .execute(
                "UPDATE audit_verified SET through_seq = ?1, chain = ?2, verified_at_ms = ?3, mac = ?4",
                args![kept.0, &kept.1, kept.2, &kept.3],
            )
            .unwrap();
        assert!(v.audit_verified(OP).unwrap().is_some());
    }
}

// issue 17, item 1: a trail pruned after a checkpoint was made (`vault audit
// prune` while the server runs) is no gap: the check goes on from the prune
// checkpoint, as a walk from the start does; before, it said "record missing"
#[test]
fn a_check_from_a_checkpoint_goes_on_across_a_prune() {
    let (_dir, mut v) = vault_with_records(5);
    let (_, done) = walk(&v, None, 100);
    let VerifyStep::Done(_, Some(cp)) = done else {
        panic!("{done:?}");
    };
    for _ in 0..5 {
        v.audit(
            OP,
            None,
            AuditAction::SecretRead,
            Some("y"),
            AuditOutcome::Ok,
        )
        .unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(2));
    let pruned = v
        .prune_audit(OP, PruneCutoff::Before(crate::store::now_ms()))
        .unwrap();
    let through = pruned.pruned.unwrap().through_seq;
    assert!(through > cp.seq(), "the cut is past the checkpoint");
    let (verdict, _) = v.verify_audit_since(OP, Some(&cp)).unwrap();
    assert_eq!(
        verdict,
        AuditVerdict::Intact {
            records: through + 1
        }
    );
    // a real gap after the cut is still found
    v.conn()
        .execute("DELETE FROM audit_log WHERE seq = ?1", args![through + 1])
        .unwrap();
    let (verdict, _) = v.verify_audit_since(OP, Some(&cp)).unwrap();
    assert!(
        matches!(verdict, AuditVerdict::Broken { .. }),
        "{verdict:?}"
    );
}
