//! Loki push encoding as pure functions: `logproto.PushRequest` protobuf compressed with
//! snappy (block format), and Loki's JSON push body.

pub mod json;
pub mod protobuf;
