//! Secrets named by definitions, resolved at run time and never stored.

use crate::error::SecretError;

/// Where secret values come from.
pub trait SecretStore {
    /// The value of secret `name`.
    fn get(&self, name: &str) -> Result<String, SecretError>;
}

/// Environment variable of a secret: `INGESTOR_SECRET_<NAME>` in upper case.
pub fn env_var(name: &str) -> String {
    format!("INGESTOR_SECRET_{}", name.to_uppercase())
}

/// Secrets from environment variables.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvStore;

impl SecretStore for EnvStore {
    fn get(&self, name: &str) -> Result<String, SecretError> {
        let var = env_var(name);
        std::env::var(&var).map_err(|_| SecretError {
            name: name.to_string(),
            env: var,
        })
    }
}
