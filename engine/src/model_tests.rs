//! Tests of the model types: a container id orders and compares exactly as its text; a resume key as its (timestamp, count).

use proptest::prelude::*;

use super::*;

fn id(text: &str) -> ContainerId {
    ContainerId::new(text)
}

#[test]
fn ids_order_as_their_text() {
    let texts = ["", "a", "ab", "abcdefgh", "abcdefgh0", "abcdefgi", "abcdefg", "b", "ABCDEFGHIJ", "abcdefgh1"];
    for ours in texts {
        for theirs in texts {
            assert_eq!(id(ours).cmp(&id(theirs)), ours.cmp(theirs), "{ours:?} vs {theirs:?}");
            assert_eq!(id(ours) == id(theirs), ours == theirs, "{ours:?} vs {theirs:?}");
        }
    }
    let shared = id("0123456789abcdef");
    assert_eq!(shared, shared.clone());
}

proptest! {
    #[test]
    fn any_ids_order_as_their_text(ours in "[0-9a-f]{0,20}", theirs in "[0-9a-f]{0,20}") {
        prop_assert_eq!(id(&ours).cmp(&id(&theirs)), ours.cmp(&theirs));
        prop_assert_eq!(id(&ours) == id(&theirs), ours == theirs);
    }
}

#[test]
fn resume_keys_order_as_their_timestamp_then_their_count() {
    let keys: Vec<ResumeKey> = [(-1, 0), (-1, 3), (0, 0), (0, 1), (0, u32::MAX), (5, 0), (5, 2)]
        .into_iter()
        .map(|(ts, seq)| ResumeKey { ts, seq })
        .collect();
    for a in &keys {
        for b in &keys {
            let tuples = (a.ts, a.seq).cmp(&(b.ts, b.seq));
            assert_eq!(a.cmp(b), tuples, "{a:?} {b:?}");
            assert_eq!(a.partial_cmp(b), Some(tuples));
            assert_eq!(a < b, tuples.is_lt());
            assert_eq!(a > b, tuples.is_gt());
            assert_eq!(a <= b, tuples.is_le());
            assert_eq!(a >= b, tuples.is_ge());
        }
    }
}
