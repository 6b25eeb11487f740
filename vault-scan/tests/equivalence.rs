//! The same findings whether input arrives whole, split at every byte boundary, or line by
//! line (ripgrep's SearcherTester idea).

use vault_scan::testing::scan_chunks;

use crate::{data, scanner};

fn corpus() -> Vec<Vec<u8>> {
    let mut out = vec![
        b"a=1\nGH_TOKEN=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\nx\n\
          -----BEGIN PRIVATE KEY-----\nFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKEDEMO\n\
          -----END PRIVATE KEY-----\nDATABASE_URL=postgres://app:FAKE-pg-pass-7c41e2-DEMO@db:5432/x\n\
          caf\xc3\xa9 AKIAFAKE00000000DEMO"
            .to_vec(),
    ];
    out.push(std::fs::read(data("samples/openai-chat/messages.json")).unwrap());
    // found by fuzz/scan_stream_chunks: a rule whose keyword is context within
    // `keyword_distance` (Telegram's `bot`) names a value on the line before
    // it, so the value is known only once a later line arrives
    out.push(
        b"the token for the new channel: 1234567890:FAKEfakeFAKEfakeFAKEfakeFAKEfakDEMO, \n\
          keep it: the support bot uses it\n"
            .to_vec(),
    );
    out
}

#[test]
fn whole_chunked_and_line_by_line_agree() {
    for text in corpus() {
        let whole = scan_chunks(scanner(), None, &[&text]);
        assert!(!whole.is_empty());
        for cut in 0..=text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(
                scan_chunks(scanner(), None, &[a, b]),
                whole,
                "split at {cut}"
            );
        }
        let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(scan_chunks(scanner(), None, &lines), whole, "line by line");
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(scan_chunks(scanner(), None, &bytes), whole, "byte by byte");
    }
}
