//! Secrets from AWS Secrets Manager, read once and cached for the life of the process.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use super::{Secret, SecretError, SecretSource};

pub struct SecretsManagerSource {
    client: Client,
    cache: Mutex<HashMap<String, Secret>>,
}

impl SecretsManagerSource {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: Client::new(config),
            cache: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn get(&self, name: &str) -> Result<Secret, SecretError> {
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(hit.clone());
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| {
                let not_found = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception());
                let message = format!("{}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e));
                if not_found {
                    SecretError::NotFound {
                        name: name.to_string(),
                        hint: message,
                    }
                } else {
                    SecretError::Backend {
                        name: name.to_string(),
                        message,
                    }
                }
            })?;
        let value = out.secret_string().ok_or_else(|| SecretError::Backend {
            name: name.to_string(),
            message: "the secret has no string value (binary secrets are not supported)".into(),
        })?;
        let secret = Secret::new(value.to_string());
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), secret.clone());
        Ok(secret)
    }

    async fn refresh(&self, name: &str) -> Result<Secret, SecretError> {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.get(name).await
    }
}
