//! Secrets named by definitions, resolved at run time and never stored.
//!
//! A definition names a secret (`secret = "bank_token"`); its value comes from the
//! environment variable `INGESTOR_SECRET_BANK_TOKEN`, else from the OS keyring (Secret
//! Service on Linux, Keychain on macOS, Credential Manager on Windows) under the service
//! `ingestor` and the secret's name. There is no plain-text fallback: when neither has it,
//! the error says which variable to set, and why the keyring did not answer.
//!
//! Values travel as `Secret`, whose `Debug` and `Display` print `***`: a secret that ends
//! up in a message, a log or a `{:?}` shows nothing.

use std::collections::HashMap;

use crate::error::SecretError;

/// The keyring service every ingestor secret is stored under.
pub const KEYRING_SERVICE: &str = "ingestor";

/// A secret's value. It prints as `***` in every format; `expose` is the one way out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send it (a header, a key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where secret values come from.
pub trait SecretStore: Sync {
    /// The value of secret `name`.
    fn get(&self, name: &str) -> Result<Secret, SecretError>;
}

/// Environment variable of a secret: `INGESTOR_SECRET_<NAME>` in upper case.
pub fn env_var(name: &str) -> String {
    format!("INGESTOR_SECRET_{}", name.to_uppercase())
}

/// Whether `name` can name a secret: letters, digits and `_` (so that its environment
/// variable is one a shell can set).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Secrets from environment variables only.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvStore;

impl SecretStore for EnvStore {
    fn get(&self, name: &str) -> Result<Secret, SecretError> {
        from_env(name).ok_or_else(|| SecretError::missing(name, None))
    }
}

/// Whether the environment sets secret `name` (a blank variable does not).
pub fn in_env(name: &str) -> bool {
    from_env(name).is_some()
}

/// The environment's value; an empty (or blank) variable is no value (`X= ingestor sync`
/// unsets): an empty secret is a missing one.
fn from_env(name: &str) -> Option<Secret> {
    std::env::var(env_var(name))
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(Secret)
}

/// The resolution every command uses: the environment variable, then the OS keyring.
#[derive(Debug, Default, Clone, Copy)]
pub struct Secrets;

impl SecretStore for Secrets {
    fn get(&self, name: &str) -> Result<Secret, SecretError> {
        locate(name).map(|(secret, _)| secret)
    }
}

/// Where a secret's value was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Env,
    Keyring,
}

impl Origin {
    /// How `secret get` and `secret list` name it.
    pub fn describe(self, name: &str) -> String {
        match self {
            Origin::Env => format!("environment ({})", env_var(name)),
            Origin::Keyring => "OS keyring".into(),
        }
    }
}

/// Resolve `name` as `Secrets` does, saying where the value came from.
pub fn locate(name: &str) -> Result<(Secret, Origin), SecretError> {
    if let Some(s) = from_env(name) {
        return Ok((s, Origin::Env));
    }
    match Keyring::get(name) {
        Ok(Some(s)) => Ok((s, Origin::Keyring)),
        Ok(None) => Err(SecretError::missing(name, None)),
        Err(why) => Err(SecretError::missing(name, Some(why))),
    }
}

/// The OS keyring, through the `keyring` crate's platform store. Its errors are text that
/// says why the keyring did not answer (no D-Bus session, a locked collection…).
pub struct Keyring;

impl Keyring {
    fn entry(name: &str) -> Result<keyring::Entry, String> {
        keyring::Entry::new(KEYRING_SERVICE, name).map_err(|e| describe(&e))
    }

    /// The value stored for `name`, `None` when the keyring has none.
    pub fn get(name: &str) -> Result<Option<Secret>, String> {
        match Self::entry(name)?.get_password() {
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => Ok(Some(Secret(v))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Store `value` as `name`, replacing what was there.
    pub fn set(name: &str, value: &Secret) -> Result<(), String> {
        Self::entry(name)?
            .set_password(value.expose())
            .map_err(|e| describe(&e))
    }

    /// Remove `name`; whether it was there.
    pub fn remove(name: &str) -> Result<bool, String> {
        match Self::entry(name)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Names stored under the `ingestor` service, sorted. Not every platform's store can
    /// search: then the error says so.
    pub fn names() -> Result<Vec<String>, String> {
        // Creating an entry sets up the platform's store as keyring-core's default.
        Self::entry("_")?;
        let spec = HashMap::from([("service", KEYRING_SERVICE)]);
        let found = keyring_core::Entry::search(&spec).map_err(|e| describe(&e))?;
        let mut names: Vec<String> = found
            .iter()
            .filter_map(|e| e.get_specifiers())
            .filter(|(service, _)| service == KEYRING_SERVICE)
            .map(|(_, user)| user)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// A keyring error as a user reads it; it never holds a secret's value.
fn describe(e: &keyring::Error) -> String {
    match e {
        keyring::Error::NoDefaultStore => {
            "no OS keyring is available (on Linux: no Secret Service on the D-Bus session)".into()
        }
        keyring::Error::PlatformFailure(inner) | keyring::Error::NoStorageAccess(inner) => {
            format!("the OS keyring did not answer: {inner}")
        }
        keyring::Error::NotSupportedByStore(what) => {
            format!("the OS keyring cannot do this: {what}")
        }
        // The other variants carry the stored bytes or entries; name the kind only.
        keyring::Error::BadEncoding(_) | keyring::Error::BadDataFormat(..) => {
            "the OS keyring holds a value that is not text".into()
        }
        other => format!("the OS keyring refused: {}", kind(other)),
    }
}

fn kind(e: &keyring::Error) -> &'static str {
    match e {
        keyring::Error::TooLong(..) => "a name or value too long for it",
        keyring::Error::Invalid(..) => "an invalid name",
        keyring::Error::Ambiguous(_) => "more than one entry matches",
        keyring::Error::BadStoreFormat(_) => "its store is damaged",
        _ => "an error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_its_value() {
        let s = Secret::new("hunter2-token");
        let shown = format!("{s} {s:?} {:?} {:#?}", Some(&s), vec![s.clone()]);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(s.expose(), "hunter2-token");
    }

    #[test]
    fn names_are_those_a_shell_can_export() {
        assert!(valid_name("bank_token"));
        assert!(valid_name("PW2"));
        assert!(!valid_name(""));
        assert!(!valid_name("bank-token"));
        assert!(!valid_name("a b"));
        assert_eq!(env_var("bank_token"), "INGESTOR_SECRET_BANK_TOKEN");
    }
}
