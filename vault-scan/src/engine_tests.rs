//! Unit tests of `engine`, kept beside it so the module stays readable.

use super::*;

/// The interleaved walk finds exactly what one walk finds, whatever straddles a cut:
/// every keyword is planted at every offset around each of the three cuts.
#[test]
fn lanes_find_what_one_walk_finds() {
    let scanner = Scanner::builtin().unwrap();
    let len = 4 * LANE_MIN * 2;
    let cuts = [len / 4, len / 2, 3 * len / 4];
    let filler: Vec<u8> = b"def handle(request): return x  # plain text\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect();
    let sorted = |mut v: Vec<(usize, usize)>| {
        v.sort_unstable();
        v
    };
    let mut checked = 0;
    for (kw, _) in &scanner.keyword_rules {
        for cut in cuts {
            for at in cut.saturating_sub(kw.len() + 1)..=cut + 1 {
                let mut data = filler.clone();
                data[at..at + kw.len()].copy_from_slice(kw);
                let one = sorted(scanner.keywords_in_lanes(&data, 1));
                let four = sorted(scanner.keywords_in_lanes(&data, LANES));
                assert_eq!(
                    one,
                    four,
                    "keyword {:?} at {at}",
                    String::from_utf8_lossy(kw)
                );
                assert!(one.iter().any(|&(s, _)| s == at));
                checked += 1;
            }
        }
    }
    assert!(checked > 1000);
}
