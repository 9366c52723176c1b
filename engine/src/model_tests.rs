//! Tests of the model types: a container id orders and compares exactly as its text.

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
