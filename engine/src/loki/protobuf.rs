//! Loki's `logproto.PushRequest` in protobuf, hand-written, plus snappy block compression.
//!
//! Schema (wire-compatible with Loki's `push.proto`):
//!
//! ```text
//! PushRequest      { repeated StreamAdapter streams = 1; }
//! StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//! EntryAdapter     { google.protobuf.Timestamp timestamp = 1; string line = 2;
//!                    repeated LabelPairAdapter structuredMetadata = 3; }
//! LabelPairAdapter { string name = 1; string value = 2; }
//! Timestamp        { int64 seconds = 1; int32 nanos = 2; }
//! ```
//!
//! Promises:
//! - Output is canonical: fields in number order, zero scalars and empty strings omitted,
//!   the timestamp message always present (as Loki's non-nullable gogoproto field is),
//!   `hash` never written. Byte-identical to Google's protobuf runtime on the golden
//!   vectors.
//! - [`encode_batch`] sizes everything first and writes once into an exactly-sized
//!   buffer; lines are copied only into that buffer, except a line that is not valid UTF-8,
//!   which is first replaced lossily (U+FFFD) — the only extra copy, and only for such
//!   lines. [`encode_request`] applies the same rule.
//! - Timestamps before 1970 encode as Google's `Timestamp` does: negative `seconds`,
//!   `nanos` in `0..1e9`.
//! - [`decode_request`] accepts any valid encoding (unknown fields skipped, repeated
//!   timestamp fields merged), copies lines as raw bytes and rejects labels or metadata
//!   that are not UTF-8. It is for tests and receivers, not the hot path.

use std::borrow::Cow;
use std::collections::BTreeMap;

pub use super::DecodeError;
use crate::model::Batch;
use crate::rt::UnixNanos;

/// What the sink sends with a protobuf body ([`encode_batch_snappy`]).
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// An owned push request: what tests build and receivers decode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushRequest {
    pub streams: Vec<PushStream>,
}

/// One stream of a push request; `labels` is the rendered selector (see [`render_labels`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushStream {
    pub labels: String,
    pub entries: Vec<PushEntry>,
}

/// One entry; `line` is raw bytes (encoders replace invalid UTF-8 lossily).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushEntry {
    pub ts: UnixNanos,
    pub line: Vec<u8>,
    pub structured_metadata: Vec<(String, String)>,
}

/// Whether `bytes` can go into a protobuf/JSON string as is. Callers count the lines for
/// which it is false: the encoders replace their invalid sequences with U+FFFD.
#[inline]
pub fn is_valid_utf8(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
}

/// `{a="x", b="y"}`: sorted by name (the map's order), values quoted with `\\`, `\"` and
/// `\n` escaped. An empty map renders as `{}`.
pub fn render_labels(labels: &BTreeMap<String, String>) -> String {
    let mut text =
        String::with_capacity(2 + labels.iter().map(|(name, value)| name.len() + value.len() + 5).sum::<usize>());
    text.push('{');
    for (index, (name, value)) in labels.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        text.push_str(name);
        text.push_str("=\"");
        for character in value.chars() {
            match character {
                '\\' => text.push_str("\\\\"),
                '"' => text.push_str("\\\""),
                '\n' => text.push_str("\\n"),
                other => text.push(other),
            }
        }
        text.push('"');
    }
    text.push('}');
    text
}

/// The inverse of [`render_labels`] (also accepts `\t`, `\r` escapes and any spacing
/// around separators), for receivers that need the label map back.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, DecodeError> {
    let invalid = || DecodeError::InvalidLabels(text.to_owned());
    let inner = text.trim().strip_prefix('{').and_then(|rest| rest.strip_suffix('}')).ok_or_else(invalid)?;
    let mut labels = BTreeMap::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let equals = rest.find('=').ok_or_else(invalid)?;
        let name = rest[..equals].trim();
        if name.is_empty() || name.contains(|c: char| c == '"' || c == ',' || c.is_whitespace()) {
            return Err(invalid());
        }
        rest = rest[equals + 1..].trim_start().strip_prefix('"').ok_or_else(invalid)?;
        let mut value = String::new();
        let mut characters = rest.char_indices();
        let end = loop {
            match characters.next().ok_or_else(invalid)? {
                (index, '"') => break index,
                (_, '\\') => match characters.next().ok_or_else(invalid)?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    _ => return Err(invalid()),
                },
                (_, other) => value.push(other),
            }
        };
        labels.insert(name.to_owned(), value);
        rest = rest[end + 1..].trim_start();
        if let Some(after_comma) = rest.strip_prefix(',') {
            rest = after_comma.trim_start();
            if rest.is_empty() {
                return Err(invalid());
            }
        } else if !rest.is_empty() {
            return Err(invalid());
        }
    }
    Ok(labels)
}

// ---------------------------------------------------------------------------------------
// Encoding.

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Bytes of `value` as a varint.
#[inline]
fn varint_len(value: u64) -> usize {
    // 1 byte per started group of 7 bits; `| 1` makes zero take one byte.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Single-byte key: every field number here is below 16.
#[inline]
fn put_key(out: &mut Vec<u8>, field: u8, wire_type: u8) {
    debug_assert!(field < 16);
    out.push(field << 3 | wire_type);
}

/// Bytes of a length-delimited field of `len` bytes, key included.
#[inline]
fn len_field_len(len: usize) -> usize {
    1 + varint_len(len as u64) + len
}

/// Bytes of a string field, omitted when empty (proto3 zero value).
#[inline]
fn string_field_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        len_field_len(len)
    }
}

#[inline]
fn put_len_header(out: &mut Vec<u8>, field: u8, len: usize) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, len as u64);
}

#[inline]
fn put_string_field(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_len_header(out, field, bytes.len());
        out.extend_from_slice(bytes);
    }
}

/// `google.protobuf.Timestamp` fields of `ts`: `nanos` is always in `0..1e9`.
#[inline]
fn timestamp_parts(ts: UnixNanos) -> (i64, i32) {
    (ts.div_euclid(NANOS_PER_SECOND), ts.rem_euclid(NANOS_PER_SECOND) as i32)
}

#[inline]
fn timestamp_body_len(ts: UnixNanos) -> usize {
    let (seconds, nanos) = timestamp_parts(ts);
    let seconds_len = if seconds == 0 { 0 } else { 1 + varint_len(seconds as u64) };
    let nanos_len = if nanos == 0 { 0 } else { 1 + varint_len(nanos as u64) };
    seconds_len + nanos_len
}

fn metadata_pair_body_len(name: &str, value: &str) -> usize {
    string_field_len(name.len()) + string_field_len(value.len())
}

/// Bytes of an `EntryAdapter` body whose line (after any lossy replacement) is `line_len`.
#[inline]
fn entry_body_len(ts: UnixNanos, line_len: usize, metadata: &[(String, String)]) -> usize {
    let mut len = len_field_len(timestamp_body_len(ts)) + string_field_len(line_len);
    for (name, value) in metadata {
        len += len_field_len(metadata_pair_body_len(name, value));
    }
    len
}

/// Writes one `entries` field (key, length and `EntryAdapter` body) of a stream.
#[inline]
fn put_entry(out: &mut Vec<u8>, ts: UnixNanos, line: &[u8], metadata: &[(String, String)]) {
    put_len_header(out, 2, entry_body_len(ts, line.len(), metadata));
    let (seconds, nanos) = timestamp_parts(ts);
    put_len_header(out, 1, timestamp_body_len(ts));
    if seconds != 0 {
        put_key(out, 1, WIRE_VARINT);
        put_varint(out, seconds as u64);
    }
    if nanos != 0 {
        put_key(out, 2, WIRE_VARINT);
        put_varint(out, nanos as u64);
    }
    put_string_field(out, 2, line);
    for (name, value) in metadata {
        put_len_header(out, 3, metadata_pair_body_len(name, value));
        put_string_field(out, 1, name.as_bytes());
        put_string_field(out, 2, value.as_bytes());
    }
}

/// `bytes` as valid UTF-8: borrowed when it already is, a lossy copy otherwise.
#[inline]
pub(crate) fn utf8_or_lossy(bytes: &[u8]) -> Cow<'_, [u8]> {
    match String::from_utf8_lossy(bytes) {
        Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
        Cow::Owned(text) => Cow::Owned(text.into_bytes()),
    }
}

/// Protobuf bytes of `request`.
pub fn encode_request(request: &PushRequest) -> Vec<u8> {
    let lines: Vec<Vec<Cow<'_, [u8]>>> = request
        .streams
        .iter()
        .map(|stream| stream.entries.iter().map(|entry| utf8_or_lossy(&entry.line)).collect())
        .collect();
    let stream_body_lens: Vec<usize> = request
        .streams
        .iter()
        .zip(&lines)
        .map(|(stream, lines)| {
            let entries: usize = stream
                .entries
                .iter()
                .zip(lines)
                .map(|(entry, line)| len_field_len(entry_body_len(entry.ts, line.len(), &entry.structured_metadata)))
                .sum();
            string_field_len(stream.labels.len()) + entries
        })
        .collect();
    let total: usize = stream_body_lens.iter().map(|&len| len_field_len(len)).sum();

    let mut out = Vec::with_capacity(total);
    for ((stream, lines), &body_len) in request.streams.iter().zip(&lines).zip(&stream_body_lens) {
        put_len_header(&mut out, 1, body_len);
        put_string_field(&mut out, 1, stream.labels.as_bytes());
        for (entry, line) in stream.entries.iter().zip(lines) {
            put_entry(&mut out, entry.ts, line, &entry.structured_metadata);
        }
    }
    debug_assert_eq!(out.len(), total);
    out
}

/// Protobuf bytes of `batch`, one `StreamAdapter` per batch stream, in batch order.
pub fn encode_batch(batch: &Batch) -> Vec<u8> {
    // Pass 1: sizes. UTF-8 is checked once per line here; replacements for the rare
    // invalid lines are kept, in line order, for pass 2.
    let mut replacements: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut plans: Vec<(String, usize)> = Vec::with_capacity(batch.streams.len());
    let mut line_index = 0;
    for stream in &batch.streams {
        let labels = render_labels(&stream.labels);
        let mut body_len = string_field_len(labels.len());
        for line in &stream.lines {
            let line_len = if is_valid_utf8(&line.bytes) {
                line.bytes.len()
            } else {
                let replaced = String::from_utf8_lossy(&line.bytes).into_owned().into_bytes();
                let len = replaced.len();
                replacements.push((line_index, replaced));
                len
            };
            body_len += len_field_len(entry_body_len(line.ts, line_len, &[]));
            line_index += 1;
        }
        plans.push((labels, body_len));
    }
    let total: usize = plans.iter().map(|(_, body_len)| len_field_len(*body_len)).sum();

    // Pass 2: write into an exactly-sized buffer.
    let mut out = Vec::with_capacity(total);
    let mut replacements = replacements.into_iter().peekable();
    let mut line_index = 0;
    for (stream, (labels, body_len)) in batch.streams.iter().zip(&plans) {
        put_len_header(&mut out, 1, *body_len);
        put_string_field(&mut out, 1, labels.as_bytes());
        for line in &stream.lines {
            match replacements.next_if(|(index, _)| *index == line_index) {
                Some((_, replaced)) => put_entry(&mut out, line.ts, &replaced, &[]),
                None => put_entry(&mut out, line.ts, &line.bytes, &[]),
            }
            line_index += 1;
        }
    }
    debug_assert_eq!(out.len(), total);
    debug_assert!(replacements.next().is_none());
    out
}

/// [`encode_batch`] compressed in snappy block format: the body the sink sends.
pub fn encode_batch_snappy(batch: &Batch) -> Vec<u8> {
    snappy_compress(&encode_batch(batch))
}

/// Snappy block format, as Loki expects for protobuf pushes.
pub fn snappy_compress(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).expect("snappy compresses any input that fits in memory")
}

// ---------------------------------------------------------------------------------------
// Decoding.

/// A cursor over one protobuf message.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for (index, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte < 0x80 {
                self.bytes = &self.bytes[index + 1..];
                return Ok(value);
            }
        }
        if self.bytes.len() >= 10 {
            Err(DecodeError::VarintOverflow)
        } else {
            Err(DecodeError::Truncated)
        }
    }

    fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| DecodeError::VarintOverflow)?;
        if field == 0 {
            return Err(DecodeError::FieldZero);
        }
        Ok((field, (key & 7) as u8))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        self.take(len)
    }

    fn skip(&mut self, field: u32, wire_type: u8) -> Result<(), DecodeError> {
        match wire_type {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_LEN => self.len_delimited().map(drop),
            WIRE_FIXED32 => self.take(4).map(drop),
            _ => Err(DecodeError::WireType { field, wire_type }),
        }
    }

    /// The payload of a length-delimited field, after checking its wire type.
    fn expect_len(&mut self, field: u32, wire_type: u8) -> Result<&'a [u8], DecodeError> {
        if wire_type != WIRE_LEN {
            return Err(DecodeError::WireType { field, wire_type });
        }
        self.len_delimited()
    }

    fn expect_varint(&mut self, field: u32, wire_type: u8) -> Result<u64, DecodeError> {
        if wire_type != WIRE_VARINT {
            return Err(DecodeError::WireType { field, wire_type });
        }
        self.varint()
    }
}

fn utf8_string(bytes: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| DecodeError::InvalidUtf8)
}

/// Decodes protobuf `PushRequest` bytes (not compressed).
pub fn decode_request(bytes: &[u8]) -> Result<PushRequest, DecodeError> {
    let mut reader = Reader { bytes };
    let mut request = PushRequest::default();
    while !reader.is_empty() {
        match reader.key()? {
            (1, wire_type) => {
                let body = reader.expect_len(1, wire_type)?;
                request.streams.push(decode_stream(body)?);
            }
            (field, wire_type) => reader.skip(field, wire_type)?,
        }
    }
    Ok(request)
}

/// Decodes a snappy-compressed (block format) `PushRequest`, as Loki receives it.
pub fn decode_snappy_request(bytes: &[u8]) -> Result<PushRequest, DecodeError> {
    let raw =
        snap::raw::Decoder::new().decompress_vec(bytes).map_err(|error| DecodeError::Snappy(error.to_string()))?;
    decode_request(&raw)
}

fn decode_stream(bytes: &[u8]) -> Result<PushStream, DecodeError> {
    let mut reader = Reader { bytes };
    let mut stream = PushStream::default();
    while !reader.is_empty() {
        match reader.key()? {
            (1, wire_type) => stream.labels = utf8_string(reader.expect_len(1, wire_type)?)?,
            (2, wire_type) => stream.entries.push(decode_entry(reader.expect_len(2, wire_type)?)?),
            (field, wire_type) => reader.skip(field, wire_type)?,
        }
    }
    Ok(stream)
}

fn decode_entry(bytes: &[u8]) -> Result<PushEntry, DecodeError> {
    let mut reader = Reader { bytes };
    let mut entry = PushEntry::default();
    // Repeated occurrences of the timestamp message merge, as protobuf requires.
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while !reader.is_empty() {
        match reader.key()? {
            (1, wire_type) => {
                let mut timestamp = Reader { bytes: reader.expect_len(1, wire_type)? };
                while !timestamp.is_empty() {
                    match timestamp.key()? {
                        (1, wire_type) => seconds = timestamp.expect_varint(1, wire_type)? as i64,
                        (2, wire_type) => nanos = timestamp.expect_varint(2, wire_type)? as i32,
                        (field, wire_type) => timestamp.skip(field, wire_type)?,
                    }
                }
            }
            (2, wire_type) => entry.line = reader.expect_len(2, wire_type)?.to_vec(),
            (3, wire_type) => {
                let mut pair = Reader { bytes: reader.expect_len(3, wire_type)? };
                let (mut name, mut value) = (String::new(), String::new());
                while !pair.is_empty() {
                    match pair.key()? {
                        (1, wire_type) => name = utf8_string(pair.expect_len(1, wire_type)?)?,
                        (2, wire_type) => value = utf8_string(pair.expect_len(2, wire_type)?)?,
                        (field, wire_type) => pair.skip(field, wire_type)?,
                    }
                }
                entry.structured_metadata.push((name, value));
            }
            (field, wire_type) => reader.skip(field, wire_type)?,
        }
    }
    entry.ts = i64::try_from(i128::from(seconds) * i128::from(NANOS_PER_SECOND) + i128::from(nanos))
        .map_err(|_| DecodeError::TimestampOutOfRange)?;
    Ok(entry)
}
