//! Loki's JSON push body, and the JSON-lines rendering of the file and stdout sinks.
//!
//! Push body: `{"streams":[{"stream":{labels},"values":[["<ns>","line"],
//! ["<ns>","line",{metadata}]]}]}`, timestamps as decimal nanosecond strings.
//! JSON lines: one `{"ts":"<RFC 3339 nanos>","labels":{...},"line":"..."}` per line, each
//! ending in `'\n'`.
//!
//! Promises:
//! - Encoders write compact JSON by hand (no `fmt`, no serde) straight into one buffer.
//!   Strings are escaped per RFC 8259 (`"`, `\`, and control characters; `\n`, `\r`,
//!   `\t`, `\b`, `\f` by name, others as `\u00XX`); everything else is copied as is.
//! - Lines that are not valid UTF-8 are replaced lossily (U+FFFD) first, as in
//!   [`super::protobuf`]; that is the only copy of a line made.
//! - [`decode_request_json`] (tests and receivers) goes through `serde_json::Value`, so
//!   structured metadata comes back sorted by name: JSON objects are unordered.

use std::collections::BTreeMap;

use serde_json::Value;

use super::protobuf::{render_labels, utf8_or_lossy, PushEntry, PushRequest, PushStream};
pub use super::DecodeError;
use crate::model::Batch;
use crate::parse::timestamp::format_rfc3339_nanos;
use crate::rt::UnixNanos;

/// What the sink sends with a JSON body.
pub const CONTENT_TYPE: &str = "application/json";

/// Loki's JSON push body for `batch`, one stream per batch stream, in batch order.
pub fn encode_batch_json(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + batch.bytes + batch.lines * 32);
    out.extend_from_slice(b"{\"streams\":[");
    for (stream_index, stream) in batch.streams.iter().enumerate() {
        if stream_index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":");
        put_object(&mut out, stream.labels.iter());
        out.extend_from_slice(b",\"values\":[");
        for (line_index, line) in stream.lines.iter().enumerate() {
            if line_index > 0 {
                out.push(b',');
            }
            put_value(&mut out, line.ts, &line.bytes, &[]);
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// Loki's JSON push body for `request`; `labels[i]` are the labels of
/// `request.streams[i]` (whose rendered `labels` text is not used).
///
/// Panics if the two lengths differ.
pub fn encode_request_json(request: &PushRequest, labels: &[BTreeMap<String, String>]) -> Vec<u8> {
    assert_eq!(request.streams.len(), labels.len(), "one label map per stream");
    let mut out = Vec::new();
    out.extend_from_slice(b"{\"streams\":[");
    for (stream_index, (stream, labels)) in request.streams.iter().zip(labels).enumerate() {
        if stream_index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":");
        put_object(&mut out, labels.iter());
        out.extend_from_slice(b",\"values\":[");
        for (entry_index, entry) in stream.entries.iter().enumerate() {
            if entry_index > 0 {
                out.push(b',');
            }
            put_value(&mut out, entry.ts, &entry.line, &entry.structured_metadata);
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    out
}

/// One `{"ts":…,"labels":…,"line":…}` object per line of `batch`, each ending in `'\n'`.
pub fn encode_batch_json_lines(batch: &Batch) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.bytes + batch.lines * 128);
    let mut labels_json = Vec::new();
    for stream in &batch.streams {
        labels_json.clear();
        put_object(&mut labels_json, stream.labels.iter());
        for line in &stream.lines {
            out.extend_from_slice(b"{\"ts\":\"");
            format_rfc3339_nanos(line.ts, &mut out);
            out.extend_from_slice(b"\",\"labels\":");
            out.extend_from_slice(&labels_json);
            out.extend_from_slice(b",\"line\":");
            put_string(&mut out, &utf8_or_lossy(&line.bytes));
            out.extend_from_slice(b"}\n");
        }
    }
    out
}

/// Decodes a JSON push body into the label maps and the request (with rendered labels).
pub fn decode_request_json(bytes: &[u8]) -> Result<(Vec<BTreeMap<String, String>>, PushRequest), DecodeError> {
    let json = |message: &str| DecodeError::Json(message.to_owned());
    let root: Value = serde_json::from_slice(bytes).map_err(|error| DecodeError::Json(error.to_string()))?;
    let streams = root.get("streams").and_then(Value::as_array).ok_or_else(|| json("missing \"streams\" array"))?;
    let mut all_labels = Vec::with_capacity(streams.len());
    let mut request = PushRequest { streams: Vec::with_capacity(streams.len()) };
    for stream in streams {
        let labels = string_map(stream.get("stream").ok_or_else(|| json("missing \"stream\""))?)?;
        let values = stream.get("values").and_then(Value::as_array).ok_or_else(|| json("missing \"values\" array"))?;
        let mut entries = Vec::with_capacity(values.len());
        for value in values {
            let parts = value
                .as_array()
                .filter(|parts| parts.len() == 2 || parts.len() == 3)
                .ok_or_else(|| json("a value is not [ts, line] or [ts, line, metadata]"))?;
            let ts = parts[0]
                .as_str()
                .and_then(|text| text.parse::<UnixNanos>().ok())
                .ok_or_else(|| json("timestamp is not a decimal nanosecond string"))?;
            let line = parts[1].as_str().ok_or_else(|| json("line is not a string"))?;
            let structured_metadata = match parts.get(2) {
                Some(metadata) => string_map(metadata)?.into_iter().collect(),
                None => Vec::new(),
            };
            entries.push(PushEntry { ts, line: line.as_bytes().to_vec(), structured_metadata });
        }
        request.streams.push(PushStream { labels: render_labels(&labels), entries });
        all_labels.push(labels);
    }
    Ok((all_labels, request))
}

fn string_map(value: &Value) -> Result<BTreeMap<String, String>, DecodeError> {
    let object = value.as_object().ok_or_else(|| DecodeError::Json("expected an object".to_owned()))?;
    object
        .iter()
        .map(|(name, value)| match value.as_str() {
            Some(text) => Ok((name.clone(), text.to_owned())),
            None => Err(DecodeError::Json(format!("{name:?} is not a string"))),
        })
        .collect()
}

/// `["<ns>","line"]` or `["<ns>","line",{metadata}]`.
fn put_value(out: &mut Vec<u8>, ts: UnixNanos, line: &[u8], metadata: &[(String, String)]) {
    out.extend_from_slice(b"[\"");
    put_i64(out, ts);
    out.extend_from_slice(b"\",");
    put_string(out, &utf8_or_lossy(line));
    if !metadata.is_empty() {
        out.push(b',');
        put_object(out, metadata.iter().map(|(name, value)| (name, value)));
    }
    out.push(b']');
}

/// `{"name":"value",...}` in the iterator's order.
fn put_object<'a>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (&'a String, &'a String)>) {
    out.push(b'{');
    for (index, (name, value)) in pairs.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        put_string(out, name.as_bytes());
        out.push(b':');
        put_string(out, value.as_bytes());
    }
    out.push(b'}');
}

/// What each byte becomes inside a JSON string: 0 = itself, `u` = `\u00XX`, else `\` + it.
const ESCAPES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[0x08] = b'b';
    table[0x0c] = b'f';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// A quoted JSON string of `text`, which must be valid UTF-8. Unescaped runs are copied
/// whole.
fn put_string(out: &mut Vec<u8>, text: &[u8]) {
    debug_assert!(std::str::from_utf8(text).is_ok());
    out.reserve(text.len() + 2);
    out.push(b'"');
    let mut run_start = 0;
    for (index, &byte) in text.iter().enumerate() {
        let escape = ESCAPES[byte as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&text[run_start..index]);
        if escape == b'u' {
            out.extend_from_slice(b"\\u00");
            out.push(HEX_DIGITS[(byte >> 4) as usize]);
            out.push(HEX_DIGITS[(byte & 0xf) as usize]);
        } else {
            out.push(b'\\');
            out.push(escape);
        }
        run_start = index + 1;
    }
    out.extend_from_slice(&text[run_start..]);
    out.push(b'"');
}

/// Decimal text of `value`, without `fmt`.
fn put_i64(out: &mut Vec<u8>, value: i64) {
    if value < 0 {
        out.push(b'-');
    }
    let mut magnitude = value.unsigned_abs();
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (magnitude % 10) as u8;
        magnitude /= 10;
        if magnitude == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}
