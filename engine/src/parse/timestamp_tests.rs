//! Tests for [`super`]: known instants both ways, field range checks, and property tests
//! for the format/parse round trip over the whole `i64` range.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn format(ts: UnixNanos) -> String {
    let mut out = Vec::new();
    format_rfc3339_nanos(ts, &mut out);
    String::from_utf8(out).unwrap()
}

fn parse(text: &str) -> Option<UnixNanos> {
    parse_rfc3339_nanos(text.as_bytes())
}

const KNOWN: &[(i64, &str)] = &[
    (0, "1970-01-01T00:00:00.000000000Z"),
    (-1, "1969-12-31T23:59:59.999999999Z"),
    (1, "1970-01-01T00:00:00.000000001Z"),
    (1_763_838_000_123_456_789, "2025-11-22T19:00:00.123456789Z"),
    (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
    (1_709_208_000_500_000_000, "2024-02-29T12:00:00.500000000Z"),
    (-2_208_988_800_000_000_000, "1900-01-01T00:00:00.000000000Z"),
    (-2_203_891_200_000_000_000, "1900-03-01T00:00:00.000000000Z"),
    (i64::MIN, "1677-09-21T00:12:43.145224192Z"),
    (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
];

#[test]
fn known_instants_format_and_parse() {
    for &(ts, text) in KNOWN {
        assert_eq!(format(ts), text, "format({ts})");
        assert_eq!(parse(text), Some(ts), "parse({text})");
    }
}

#[test]
fn format_appends() {
    let mut out = b"ts=".to_vec();
    format_rfc3339_nanos(0, &mut out);
    assert_eq!(out, b"ts=1970-01-01T00:00:00.000000000Z");
}

#[test]
fn short_fractions_and_offsets() {
    let base = 1_763_838_000_000_000_000; // 2025-11-22T19:00:00Z
    assert_eq!(parse("2025-11-22T19:00:00Z"), Some(base));
    assert_eq!(parse("2025-11-22t19:00:00z"), Some(base));
    assert_eq!(parse("2025-11-22T19:00:00.5Z"), Some(base + 500_000_000));
    assert_eq!(parse("2025-11-22T19:00:00.000001Z"), Some(base + 1_000));
    assert_eq!(parse("2025-11-22T20:30:00+01:30"), Some(base));
    assert_eq!(parse("2025-11-22T14:00:00.25-05:00"), Some(base + 250_000_000));
    assert_eq!(parse("2025-11-22T19:00:00+00:00"), Some(base));
    assert_eq!(parse("2025-11-22T19:00:00-00:00"), Some(base));
    // Crossing midnight and the year through an offset.
    assert_eq!(parse("1970-01-01T00:30:00+01:00"), Some(-1_800_000_000_000));
}

#[test]
fn rejects_malformed_and_out_of_range() {
    let rejected = [
        "",
        "2025-11-22",
        "2025-11-22T19:00:00",             // no offset
        "2025-11-22T19:00:00.Z",           // empty fraction
        "2025-11-22T19:00:00.1234567890Z", // 10 fraction digits
        "2025-11-22 19:00:00Z",
        "2025-11-22T19:00:00ZZ",
        "2025-11-22T19:00:00+0100",
        "2025-11-22T19:00:00+24:00",
        "2025-11-22T19:00:00+01:60",
        "2025-13-22T19:00:00Z",
        "2025-00-22T19:00:00Z",
        "2025-11-00T19:00:00Z",
        "2025-11-31T19:00:00Z",
        "2023-02-29T00:00:00Z", // not a leap year
        "1900-02-29T00:00:00Z", // divisible by 100, not by 400
        "2025-11-22T24:00:00Z",
        "2025-11-22T19:60:00Z",
        "2025-11-22T19:00:60Z", // leap second
        "2025-11-22T19:00:00.12345678xZ",
        "2025-1a-22T19:00:00.123456789Z",
        "+025-11-22T19:00:00.123456789Z",
        "1677-09-21T00:12:43.145224191Z", // one below i64::MIN
        "2262-04-11T23:47:16.854775808Z", // one above i64::MAX
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
    ];
    for text in rejected {
        assert_eq!(parse(text), None, "{text:?} should be rejected");
    }
    assert_eq!(parse("2024-02-29T00:00:00Z"), Some(1_709_164_800_000_000_000));
}

#[test]
fn split_timestamp_slices_the_payload() {
    let payload = Bytes::from_static(b"2025-11-22T19:00:00.123456789Z hello world\n");
    let (ts, content) = split_timestamp(&payload).unwrap();
    assert_eq!(ts, 1_763_838_000_123_456_789);
    assert_eq!(&content[..], b"hello world\n");
    // Zero-copy: the content points into the payload.
    assert_eq!(content.as_ptr(), payload[31..].as_ptr());

    let empty_line = Bytes::from_static(b"2025-11-22T19:00:00.123456789Z \n");
    assert_eq!(split_timestamp(&empty_line).unwrap().1, Bytes::from_static(b"\n"));
    let nothing = Bytes::from_static(b"2025-11-22T19:00:00.123456789Z ");
    assert_eq!(split_timestamp(&nothing).unwrap().1, Bytes::new());

    let short = Bytes::from_static(b"2025-11-22T20:00:00+01:00 x");
    assert_eq!(split_timestamp(&short).unwrap(), (1_763_838_000_000_000_000, Bytes::from_static(b"x")));
}

#[test]
fn split_timestamp_errors() {
    let cases: [(&[u8], TimestampError); 6] = [
        (b"", TimestampError::Missing),
        (b"hello world", TimestampError::Invalid),
        (b" leading space", TimestampError::Missing),
        (b"no-space-anywhere-in-the-first-forty-bytes-of-this-line", TimestampError::Missing),
        (b"2025-11-22T19:00:00.123456789Z", TimestampError::Missing),
        (b"2025-11-31T19:00:00.123456789Z x", TimestampError::Invalid),
    ];
    for (payload, error) in cases {
        assert_eq!(split_timestamp(&Bytes::copy_from_slice(payload)), Err(error), "{payload:?}");
    }
}

/// Replaces the `Z` of a formatted instant by a `±hh:mm` offset.
fn with_offset(text: &str, offset_minutes: i32) -> String {
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let magnitude = offset_minutes.unsigned_abs();
    format!("{}{sign}{:02}:{:02}", &text[..text.len() - 1], magnitude / 60, magnitude % 60)
}

const OFFSET_NANOS_MAX: i64 = (23 * 60 + 59) * 60 * NANOS_PER_SECOND;

/// A payload of `ts` with `tail`, with one byte possibly replaced, for the cache test.
fn payload(ts: i64, tail: &[u8], corrupt: Option<(usize, u8)>) -> Bytes {
    let mut bytes = Vec::new();
    format_rfc3339_nanos(ts, &mut bytes);
    bytes.push(b' ');
    bytes.extend_from_slice(tail);
    if let Some((at, byte)) = corrupt {
        let at = at % bytes.len();
        bytes[at] = byte;
    }
    Bytes::from(bytes)
}

#[test]
fn the_cache_reuses_the_second_and_rechecks_everything_else() {
    let mut cache = TimestampCache::default();
    let base = 1_763_838_000_000_000_000;
    for (ts, corrupt) in [
        (base, None),
        (base + 5, None),
        (base + 7, Some((25, b'x'))),
        (base + 9, Some((3, b'x'))),
        (base + 1_000_000_000, None),
    ] {
        assert_cache_agrees(&mut cache, ts, corrupt);
    }
}

/// `cache` parses the entry of `ts` (one byte changed by `corrupt`) as the uncached
/// parser does, and leaves the same payload.
fn assert_cache_agrees(cache: &mut TimestampCache, ts: i64, corrupt: Option<(usize, u8)>) {
    let mut ours = payload(ts, b"line\n", corrupt);
    let mut theirs = ours.clone();
    assert_eq!(cache.take_timestamp(&mut ours), take_timestamp(&mut theirs), "ts {ts} corrupt {corrupt:?}");
    assert_eq!(ours, theirs);
}

#[test]
fn the_cache_reuses_the_day_and_rechecks_the_time_of_day() {
    let mut cache = TimestampCache::default();
    let base = 1_763_838_000_000_000_000;
    let second = 1_000_000_000;
    for (ts, corrupt) in [
        (base, None),
        (base + 61 * second, None),
        (base + 3_601 * second, None),
        // A time of day out of range or not digits, in a day that is cached.
        (base + 2 * second, Some((11, b'3'))),
        (base + 2 * second, Some((14, b'6'))),
        (base + 2 * second, Some((17, b'6'))),
        (base + 2 * second, Some((12, b'x'))),
        (base + 2 * second, Some((18, b'/'))),
        (base + 2 * second, Some((13, b'.'))),
        (base + 2 * second, Some((16, b'.'))),
        // The date itself changed.
        (base + 2 * second, Some((9, b'9'))),
        (base + 86_400 * second, None),
        (base + 3 * second, Some((10, b't'))),
        (base + 4 * second, None),
    ] {
        assert_cache_agrees(&mut cache, ts, corrupt);
    }
}

/// A new cache holds the epoch's first second and day: entries like any other.
#[test]
fn a_new_cache_holds_the_epochs_first_second_and_day() {
    let second = 1_000_000_000;
    for (ts, corrupt) in [
        (5, Some((25, b'x'))),
        (5, Some((18, b'/'))),
        (5, Some((9, b'0'))),
        (0, None),
        (999_999_999, None),
        (61 * second + 5, None),
        (2 * second, Some((11, b'3'))),
        (86_400 * second, None),
    ] {
        assert_cache_agrees(&mut TimestampCache::default(), ts, corrupt);
    }
    let mut cache = TimestampCache::default();
    for ts in [0, 7, 3_601 * second, 3_601 * second + 1, -1] {
        assert_cache_agrees(&mut cache, ts, None);
    }
}

/// Every byte at every place of the fraction, and every pair of bytes at two adjacent
/// places (where a carry out of one byte could reach the next): `nine_digits` is `digits`.
#[test]
fn nine_digits_is_digits_for_every_byte_and_adjacent_pair() {
    let digits_text = *b"123456789";
    for index in 0..9 {
        for byte in 0..=u8::MAX {
            let mut text = digits_text;
            text[index] = byte;
            assert_eq!(nine_digits(&text), digits(&text), "{text:?}");
            if index < 8 {
                for next in 0..=u8::MAX {
                    text[index + 1] = next;
                    assert_eq!(nine_digits(&text), digits(&text), "{text:?}");
                }
            }
        }
    }
}

/// From `start`, each step forward (a byte of the entry replaced by its `corrupt`): one
/// cache parses every entry as [`take_timestamp`] does and leaves the same payload.
fn cache_walk_agrees(start: i64, steps: &[(i64, Option<(usize, u8)>)]) -> Result<(), TestCaseError> {
    let mut cache = TimestampCache::default();
    let mut ts = start;
    for &(step, corrupt) in steps {
        ts = ts.saturating_add(step);
        let mut ours = payload(ts, b"content\n", corrupt);
        let mut theirs = ours.clone();
        prop_assert_eq!(cache.take_timestamp(&mut ours), take_timestamp(&mut theirs));
        prop_assert_eq!(ours, theirs);
    }
    Ok(())
}

proptest! {
    /// Steps of up to two days with a byte of the date and time possibly replaced: the
    /// cached day against the full parse.
    #[test]
    fn the_cache_agrees_with_take_timestamp_across_days(
        steps in proptest::collection::vec(
            (0i64..172_800_000_000_000, proptest::option::of((0usize..19, any::<u8>()))),
            1..40,
        ),
        start in any::<i64>(),
    ) {
        cache_walk_agrees(start, &steps)?;
    }

    #[test]
    fn the_cache_agrees_with_take_timestamp(
        steps in proptest::collection::vec((0i64..3_000_000_000, proptest::option::of((0usize..40, any::<u8>()))), 1..40),
        start in any::<i64>(),
    ) {
        cache_walk_agrees(start, &steps)?;
    }

    #[test]
    fn format_then_parse_round_trips(ts in any::<i64>()) {
        let text = format(ts);
        prop_assert_eq!(text.len(), 30);
        prop_assert_eq!(parse(&text), Some(ts));
    }

    #[test]
    fn format_is_monotonic(a in any::<i64>(), b in any::<i64>()) {
        // Fixed-width text sorts like the instants it names.
        prop_assert_eq!(a.cmp(&b), format(a).cmp(&format(b)));
    }

    #[test]
    fn offsets_shift_local_time(
        ts in (i64::MIN + OFFSET_NANOS_MAX)..(i64::MAX - OFFSET_NANOS_MAX),
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
    ) {
        let local = ts + i64::from(offset_minutes) * 60 * NANOS_PER_SECOND;
        let text = with_offset(&format(local), offset_minutes);
        prop_assert_eq!(parse(&text), Some(ts), "{}", text);
    }

    #[test]
    fn shorter_fractions_truncate(ts in any::<i64>(), kept in 0usize..=9) {
        let full = format(ts);
        let text = if kept == 0 {
            format!("{}Z", &full[..19])
        } else {
            format!("{}Z", &full[..20 + kept])
        };
        let unit = i64::from(POWERS_OF_TEN[9 - kept]);
        let expected = ts - ts.rem_euclid(NANOS_PER_SECOND) % unit;
        prop_assert_eq!(parse(&text), Some(expected), "{}", text);
    }

    #[test]
    fn split_timestamp_any_content(ts in any::<i64>(), content in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut payload = Vec::new();
        format_rfc3339_nanos(ts, &mut payload);
        payload.push(b' ');
        payload.extend_from_slice(&content);
        let (parsed, rest) = split_timestamp(&Bytes::from(payload)).unwrap();
        prop_assert_eq!(parsed, ts);
        prop_assert_eq!(&rest[..], &content[..]);
    }

    #[test]
    fn nine_digits_is_digits(mut text in proptest::collection::vec(b'0'..=b'9', 9), index in 0usize..10, byte in any::<u8>()) {
        if let Some(slot) = text.get_mut(index) {
            *slot = byte;
        }
        prop_assert_eq!(nine_digits(&text), digits(&text), "{:?}", text);
    }

    #[test]
    fn parse_never_panics(text in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = parse_rfc3339_nanos(&text);
        let _ = split_timestamp(&Bytes::from(text));
    }

    #[test]
    fn parse_never_panics_on_near_misses(ts in any::<i64>(), index in 0usize..30, byte in any::<u8>()) {
        let mut text = format(ts).into_bytes();
        text[index] = byte;
        if let Some(parsed) = parse_rfc3339_nanos(&text) {
            // Whatever still parses must format back to the same text (up to `t`/`z` case).
            prop_assert!(format(parsed).as_bytes().eq_ignore_ascii_case(&text), "{:?}", text);
        }
    }
}
