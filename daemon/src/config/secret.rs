//! Secrets (passwords, tokens): where the config says to find them, and the value once
//! read at start.
//!
//! Promise: a [`Secret`] never prints. Its `Debug` and `Display` both write `***`, so a
//! secret inside any struct that is logged or formatted with `{:?}` stays hidden. The
//! only way to the bytes is [`Secret::expose`], called where the HTTP header is built.
//! The config file itself never holds a secret: it names a file or an environment
//! variable, read once by [`SecretSource::read`].

use std::fmt;
use std::path::PathBuf;

/// A secret value. Prints as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    #[cfg(test)]
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself. Use only to build the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret comes from: exactly one of a file or an environment variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

impl SecretSource {
    /// Read the secret. A file's trailing newline (`\n` or `\r\n`) is not part of it.
    /// The error names the file or variable, never the value.
    pub fn read(&self) -> Result<Secret, String> {
        let value = match self {
            SecretSource::File(path) => std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read secret file {}: {error}", path.display()))?,
            SecretSource::Env(name) => {
                std::env::var(name).map_err(|_| format!("environment variable {name} is not set (or not UTF-8)"))?
            }
        };
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err(match self {
                SecretSource::File(path) => format!("secret file {} is empty", path.display()),
                SecretSource::Env(name) => format!("environment variable {name} is empty"),
            });
        }
        Ok(Secret(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn file_secret_strips_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(SecretSource::File(path.clone()).read().unwrap().expose(), "abc");
        std::fs::write(&path, "").unwrap();
        assert!(SecretSource::File(path).read().unwrap_err().contains("is empty"));
        let missing = SecretSource::File(dir.path().join("nope")).read().unwrap_err();
        assert!(missing.starts_with("cannot read secret file"), "{missing}");
    }
}
