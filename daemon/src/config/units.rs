//! Human-friendly units in the config file: durations (`"500ms"`, `"5s"`, `"5m"`, `"1h"`)
//! and byte sizes (`"64MiB"`, `"256KiB"`, `"1MB"` or a plain integer of bytes).
//!
//! Both parse strictly: a number (decimals allowed) immediately followed by one unit, no
//! spaces, nothing else. A value that does not parse is an error that quotes it and says
//! what was expected; the caller adds the key path.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written as `<number><unit>` with unit `ms`, `s`, `m` or `h`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(secs: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(secs))
    }

    pub const fn millis(millis: u64) -> HumanDuration {
        HumanDuration(Duration::from_millis(millis))
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?}: expected a number followed by ms, s, m or h");
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let value: f64 = parse_number(number).ok_or_else(invalid)?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(invalid()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

/// A byte size: an integer, or `<number><unit>` with unit `B`, `KiB`, `MiB`, `GiB`
/// (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size {text:?}: expected a number of bytes, or a number followed by B, KiB, MiB, GiB, KB, MB or GB"
        )
    };
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = parse_number(number).ok_or_else(invalid)?;
    let multiplier: f64 = match unit {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return Err(invalid()),
    };
    let bytes = value * multiplier;
    if !(0.0..=(u64::MAX as f64)).contains(&bytes) {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

fn parse_number(text: &str) -> Option<f64> {
    if text.is_empty() || text.starts_with('.') || text.ends_with('.') {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"5s\", \"5m\" or \"1h\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
                parse_duration(text).map(HumanDuration).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!("invalid duration {value}: expected a string with a unit, e.g. \"{value}s\"")))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 1048576, \"256KiB\" or \"64MiB\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                parse_size(text).map(ByteSize).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ByteSize, E> {
                u64::try_from(value)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {value}: must not be negative")))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(value))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in ["5 mins", "5", "s", "", "-1s", "5d", "1.s", ".5s", "5sec", " 5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("256KiB"), Ok(256 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10B"), Ok(10));
        for bad in ["64 MiB", "MiB", "", "-1", "1TiB", "1mib"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
