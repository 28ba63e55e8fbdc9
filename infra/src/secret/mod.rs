//! API keys and other secrets. Values are never logged: [`Secret`]'s `Debug` hides them.

use async_trait::async_trait;
use thiserror::Error;

#[cfg(feature = "aws")]
mod secrets_manager;
#[cfg(feature = "aws")]
pub use secrets_manager::SecretsManagerSource;

/// A secret value that does not print itself.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("secret {name:?} not found: {hint}")]
    NotFound { name: String, hint: String },
    #[error("reading secret {name:?}: {message}")]
    Backend { name: String, message: String },
}

/// Contract: `get` returns the current value or an error that names the secret (never its
/// value). Callers read once at start-up and cache. `refresh` reads the store again, bypassing
/// any cache (after the value was rotated: an API answering 401 to the cached key).
#[async_trait]
pub trait SecretSource: Send + Sync {
    async fn get(&self, name: &str) -> Result<Secret, SecretError>;

    async fn refresh(&self, name: &str) -> Result<Secret, SecretError> {
        self.get(name).await
    }
}

/// Secrets from environment variables: the local stand-in for a secret store.
pub struct EnvSecretSource;

#[async_trait]
impl SecretSource for EnvSecretSource {
    async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ => Err(SecretError::NotFound {
                name: name.to_string(),
                hint: format!("set the environment variable {name}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        assert_eq!(
            format!("{:?}", Secret::new("hunter2".into())),
            "Secret(***)"
        );
    }
}
