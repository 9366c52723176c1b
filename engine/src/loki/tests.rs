//! Tests for [`super`]: the golden vectors made outside this project (both ways), wire
//! format details, and round-trip properties of both encodings.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::Value;

use super::json::{decode_request_json, encode_batch_json, encode_batch_json_lines, encode_request_json};
use super::protobuf::{decode_request, decode_snappy_request, encode_batch, encode_batch_snappy, encode_request};
use super::*;
use crate::model::{Batch, BatchStream, ContainerId, Line, Position, ResumeKey, SourceId, StdStream};

struct Golden {
    name: &'static str,
    json: &'static [u8],
    pb: &'static [u8],
    pb_snappy: &'static [u8],
}

macro_rules! golden {
    ($name:literal) => {
        Golden {
            name: $name,
            json: include_bytes!(concat!("testdata/", $name, ".json")),
            pb: include_bytes!(concat!("testdata/", $name, ".pb")),
            pb_snappy: include_bytes!(concat!("testdata/", $name, ".pb.snappy")),
        }
    };
}

const GOLDEN: [Golden; 2] = [golden!("push-basic"), golden!("push-metadata-two-streams")];

fn snappy_decompress(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Decoder::new().decompress_vec(bytes).unwrap()
}

fn json_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A batch with the content of `request` (labels given as maps; metadata dropped, which
/// a batch cannot carry).
fn batch_of(labels: &[BTreeMap<String, String>], request: &PushRequest) -> Batch {
    let mut batch = Batch::default();
    for (index, (labels, stream)) in labels.iter().zip(&request.streams).enumerate() {
        let lines: Vec<Line> = stream
            .entries
            .iter()
            .map(|entry| Line {
                ts: entry.ts,
                bytes: Bytes::from(entry.line.clone()),
                position: Position::Container(ResumeKey { ts: entry.ts, seq: 0 }),
            })
            .collect();
        batch.bytes += lines.iter().map(|line| line.bytes.len()).sum::<usize>();
        batch.lines += lines.len();
        batch.streams.push(BatchStream {
            source: SourceId::Container {
                id: ContainerId::new(format!("container-{index}")),
                stream: StdStream::Stdout,
            },
            labels: Arc::new(labels.clone()),
            lines,
        });
    }
    batch
}

fn without_metadata(request: &PushRequest) -> PushRequest {
    let mut request = request.clone();
    for stream in &mut request.streams {
        for entry in &mut stream.entries {
            entry.structured_metadata.clear();
        }
    }
    request
}

#[test]
fn golden_vectors_are_consistent() {
    for golden in &GOLDEN {
        assert_eq!(snappy_decompress(golden.pb_snappy), golden.pb, "{}", golden.name);
    }
}

#[test]
fn golden_decoding_pb_snappy_gives_the_json_content() {
    for golden in &GOLDEN {
        let from_pb = decode_snappy_request(golden.pb_snappy).unwrap();
        let (labels, from_json) = decode_request_json(golden.json).unwrap();
        assert_eq!(from_pb, from_json, "{}", golden.name);
        let parsed: Vec<_> = from_pb.streams.iter().map(|s| parse_labels(&s.labels).unwrap()).collect();
        assert_eq!(parsed, labels, "{}", golden.name);
        assert!(!from_pb.streams.is_empty());
    }
}

#[test]
fn golden_encoding_the_json_content_gives_the_pb_bytes() {
    for golden in &GOLDEN {
        let (_, request) = decode_request_json(golden.json).unwrap();
        assert_eq!(encode_request(&request), golden.pb, "{}", golden.name);
    }
}

#[test]
fn golden_encoding_a_batch_gives_the_pb_bytes() {
    // push-basic has no structured metadata, so a batch carries all of it.
    let basic = &GOLDEN[0];
    let (labels, request) = decode_request_json(basic.json).unwrap();
    let batch = batch_of(&labels, &request);
    assert_eq!(encode_batch(&batch), basic.pb);
    assert_eq!(snappy_decompress(&encode_batch_snappy(&batch)), basic.pb);
    // The other vector, metadata aside, must agree with encode_request.
    let two = &GOLDEN[1];
    let (labels, request) = decode_request_json(two.json).unwrap();
    assert_eq!(encode_batch(&batch_of(&labels, &request)), encode_request(&without_metadata(&request)));
}

#[test]
fn golden_json_encoding_matches_the_json_content() {
    for golden in &GOLDEN {
        let (labels, request) = decode_request_json(golden.json).unwrap();
        assert_eq!(json_value(&encode_request_json(&request, &labels)), json_value(golden.json), "{}", golden.name);
    }
    let basic = &GOLDEN[0];
    let (labels, request) = decode_request_json(basic.json).unwrap();
    assert_eq!(json_value(&encode_batch_json(&batch_of(&labels, &request))), json_value(basic.json));
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

#[test]
fn render_labels_sorts_and_escapes() {
    assert_eq!(render_labels(&BTreeMap::new()), "{}");
    assert_eq!(
        render_labels(&labels(&[("stream", "stdout"), ("container", "a\"b\\c\nd")])),
        r#"{container="a\"b\\c\nd", stream="stdout"}"#
    );
}

#[test]
fn parse_labels_inverts_render_and_rejects_garbage() {
    let map = labels(&[("a", ""), ("b", "x=\"y\", z")]);
    assert_eq!(parse_labels(&render_labels(&map)).unwrap(), map);
    assert_eq!(parse_labels(r#" { a = "1" ,b="\t" } "#).unwrap(), labels(&[("a", "1"), ("b", "\t")]));
    for bad in ["", "{", "a=\"1\"", "{a=\"1\",}", "{a=1}", "{=\"1\"}", "{a=\"1\" b=\"2\"}", "{a=\"\\x\"}", "{a=\"1}"] {
        assert!(parse_labels(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn epoch_and_pre_epoch_timestamps_encode_like_google_timestamp() {
    let request = |ts| PushRequest {
        streams: vec![PushStream {
            labels: String::new(),
            entries: vec![PushEntry { ts, line: Vec::new(), structured_metadata: Vec::new() }],
        }],
    };
    // Epoch: an empty but present timestamp message; empty labels and line omitted.
    assert_eq!(encode_request(&request(0)), [0x0a, 0x04, 0x12, 0x02, 0x0a, 0x00]);
    // -1 ns = seconds -1 (10-byte varint), nanos 999_999_999.
    let bytes = encode_request(&request(-1));
    let mut expected = vec![0x0a, 0x15, 0x12, 0x13, 0x0a, 0x11, 0x08];
    expected.extend_from_slice(&[0xff; 9]);
    expected.push(0x01);
    expected.extend_from_slice(&[0x10, 0xff, 0x93, 0xeb, 0xdc, 0x03]);
    assert_eq!(bytes, expected);
    assert_eq!(decode_request(&bytes).unwrap(), request(-1));
    assert_eq!(decode_request(&encode_request(&request(i64::MIN))).unwrap(), request(i64::MIN));
}

#[test]
fn invalid_utf8_lines_are_replaced_lossily_in_every_encoding() {
    let map = labels(&[("job", "x")]);
    let raw = PushRequest {
        streams: vec![PushStream {
            labels: render_labels(&map),
            entries: vec![
                PushEntry { ts: 1, line: b"ok \xe2\x9c\x93".to_vec(), structured_metadata: vec![] },
                PushEntry { ts: 2, line: b"bad \xff\xfe end".to_vec(), structured_metadata: vec![] },
                PushEntry { ts: 3, line: b"cut \xe2\x9c".to_vec(), structured_metadata: vec![] },
            ],
        }],
    };
    assert!(!is_valid_utf8(&raw.streams[0].entries[1].line));
    let mut fixed = raw.clone();
    fixed.streams[0].entries[1].line = "bad \u{fffd}\u{fffd} end".as_bytes().to_vec();
    fixed.streams[0].entries[2].line = "cut \u{fffd}".as_bytes().to_vec();

    let batch = batch_of(std::slice::from_ref(&map), &raw);
    assert_eq!(decode_request(&encode_batch(&batch)).unwrap(), fixed);
    assert_eq!(decode_request(&encode_request(&raw)).unwrap(), fixed);
    assert_eq!(decode_request_json(&encode_batch_json(&batch)).unwrap().1, fixed);
    assert_eq!(decode_request_json(&encode_request_json(&raw, &[map])).unwrap().1, fixed);
    let lines = String::from_utf8(encode_batch_json_lines(&batch)).unwrap();
    assert!(lines.contains("bad \u{fffd}\u{fffd} end"), "{lines}");
}

#[test]
fn json_lines_rendering() {
    let map = labels(&[("container", "web"), ("stream", "stderr")]);
    let request = PushRequest {
        streams: vec![PushStream {
            labels: render_labels(&map),
            entries: vec![
                PushEntry {
                    ts: 1_763_838_000_123_456_789,
                    line: b"tab\there \"q\"".to_vec(),
                    structured_metadata: vec![],
                },
                PushEntry { ts: -1, line: b"\x01\x1f\\".to_vec(), structured_metadata: vec![] },
            ],
        }],
    };
    let rendered = String::from_utf8(encode_batch_json_lines(&batch_of(&[map], &request))).unwrap();
    assert_eq!(
        rendered,
        concat!(
            r#"{"ts":"2025-11-22T19:00:00.123456789Z","labels":{"container":"web","stream":"stderr"},"line":"tab\there \"q\""}"#,
            "\n",
            r#"{"ts":"1969-12-31T23:59:59.999999999Z","labels":{"container":"web","stream":"stderr"},"line":"\u0001\u001f\\"}"#,
            "\n",
        )
    );
    for line in rendered.lines() {
        json_value(line.as_bytes());
    }
    assert!(encode_batch_json_lines(&Batch::default()).is_empty());
}

#[test]
fn empty_batch_encodes_to_an_empty_request() {
    let empty = Batch::default();
    assert!(encode_batch(&empty).is_empty());
    assert_eq!(decode_snappy_request(&encode_batch_snappy(&empty)).unwrap(), PushRequest::default());
    assert_eq!(encode_batch_json(&empty), br#"{"streams":[]}"#);
}

#[test]
fn decoder_skips_unknown_fields_and_rejects_malformed_input() {
    let golden = &GOLDEN[0];
    let expected = decode_request(golden.pb).unwrap();
    // Unknown fields of every wire type before the real content, at the top level.
    let mut bytes = vec![0x10, 0x96, 0x01, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x22, 0x01, 0xaa, 0x2d, 1, 2, 3, 4];
    bytes.extend_from_slice(golden.pb);
    assert_eq!(decode_request(&bytes).unwrap(), expected);

    assert_eq!(decode_request(&golden.pb[..golden.pb.len() - 1]), Err(DecodeError::Truncated));
    assert_eq!(decode_request(&[0x0a]), Err(DecodeError::Truncated));
    assert_eq!(decode_request(&[0x08, 0x01]), Err(DecodeError::WireType { field: 1, wire_type: 0 }));
    assert_eq!(decode_request(&[0x0b]), Err(DecodeError::WireType { field: 1, wire_type: 3 }));
    assert_eq!(decode_request(&[0x00]), Err(DecodeError::FieldZero));
    assert_eq!(
        decode_request(&[0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        Err(DecodeError::VarintOverflow)
    );
    // Labels must be UTF-8.
    assert_eq!(decode_request(&[0x0a, 0x03, 0x0a, 0x01, 0xff]), Err(DecodeError::InvalidUtf8));
    assert!(matches!(decode_snappy_request(b"\xff\xff\xff"), Err(DecodeError::Snappy(_))));
    assert!(matches!(decode_request_json(b"{\"streams\":[{\"stream\":{}}]}"), Err(DecodeError::Json(_))));
    assert!(matches!(
        decode_request_json(b"{\"streams\":[{\"stream\":{},\"values\":[[\"x\",\"l\"]]}]}"),
        Err(DecodeError::Json(_))
    ));
}

#[test]
fn content_types() {
    assert_eq!(protobuf::CONTENT_TYPE, "application/x-protobuf");
    assert_eq!(json::CONTENT_TYPE, "application/json");
}

fn arb_text() -> impl Strategy<Value = String> {
    // Mostly ASCII, with characters JSON and the label syntax must escape, and some
    // multi-byte ones.
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::range('a', 'z'),
            1 => proptest::sample::select(vec!['"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', ' ', ',', '=', '{', '}']),
            1 => any::<char>(),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn arb_label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map("[a-z_][a-z0-9_]{0,6}", arb_text(), 0..4)
}

fn arb_entry() -> impl Strategy<Value = PushEntry> {
    (
        prop_oneof![any::<i64>(), 0i64..3_000_000_000],
        arb_text(),
        proptest::collection::vec((arb_text(), arb_text()), 0..3),
    )
        .prop_map(|(ts, line, structured_metadata)| PushEntry { ts, line: line.into_bytes(), structured_metadata })
}

fn arb_request() -> impl Strategy<Value = (Vec<BTreeMap<String, String>>, PushRequest)> {
    proptest::collection::vec((arb_label_map(), proptest::collection::vec(arb_entry(), 0..5)), 0..4).prop_map(
        |streams| {
            let labels: Vec<_> = streams.iter().map(|(labels, _)| labels.clone()).collect();
            let request = PushRequest {
                streams: streams
                    .into_iter()
                    .map(|(labels, entries)| PushStream { labels: render_labels(&labels), entries })
                    .collect(),
            };
            (labels, request)
        },
    )
}

proptest! {
    #[test]
    fn protobuf_round_trips((_, request) in arb_request()) {
        let bytes = encode_request(&request);
        prop_assert_eq!(decode_request(&bytes).unwrap(), request.clone());
        prop_assert_eq!(decode_snappy_request(&protobuf::snappy_compress(&bytes)).unwrap(), request);
    }

    #[test]
    fn batch_encoding_equals_request_encoding((labels, request) in arb_request()) {
        let request = without_metadata(&request);
        let batch = batch_of(&labels, &request);
        prop_assert_eq!(encode_batch(&batch), encode_request(&request));
        prop_assert_eq!(json_value(&encode_batch_json(&batch)), json_value(&encode_request_json(&request, &labels)));
    }

    #[test]
    fn json_round_trips((labels, request) in arb_request()) {
        // JSON objects are unordered: metadata comes back sorted by name, last one wins.
        let mut expected = request.clone();
        for entry in expected.streams.iter_mut().flat_map(|stream| &mut stream.entries) {
            let sorted: BTreeMap<_, _> = entry.structured_metadata.drain(..).collect();
            entry.structured_metadata = sorted.into_iter().collect();
        }
        let decoded = decode_request_json(&encode_request_json(&request, &labels)).unwrap();
        prop_assert_eq!(decoded, (labels, expected));
    }

    #[test]
    fn labels_round_trip(labels in arb_label_map()) {
        prop_assert_eq!(parse_labels(&render_labels(&labels)).unwrap(), labels);
    }

    #[test]
    fn any_bytes_as_lines_encode_to_valid_utf8(
        lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..5),
    ) {
        let map = labels(&[("a", "b")]);
        let request = PushRequest {
            streams: vec![PushStream {
                labels: render_labels(&map),
                entries: lines.iter().enumerate().map(|(ts, line)| PushEntry { ts: ts as i64, line: line.clone(), structured_metadata: vec![] }).collect(),
            }],
        };
        let batch = batch_of(&[map], &request);
        let decoded = decode_request(&encode_batch(&batch)).unwrap();
        for (entry, raw) in decoded.streams[0].entries.iter().zip(&lines) {
            let expected = String::from_utf8_lossy(raw);
            prop_assert_eq!(&entry.line[..], expected.as_bytes());
        }
        let json_lines = encode_batch_json_lines(&batch);
        let rendered = std::str::from_utf8(&json_lines).unwrap();
        for (line, raw) in rendered.lines().zip(&lines) {
            let value = json_value(line.as_bytes());
            prop_assert_eq!(value["line"].as_str().unwrap(), String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_request(&bytes);
        let _ = decode_snappy_request(&bytes);
        let _ = decode_request_json(&bytes);
    }
}
