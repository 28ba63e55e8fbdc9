//! Function configuration from environment variables, read once at cold start. A missing or
//! malformed variable is an error that names it, so a bad deployment fails at init with a
//! message that says what to fix rather than at the first event.

use std::str::FromStr;

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("environment variable {0} is required but not set")]
    Missing(String),
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    pub fn invalid(name: &str, value: &str, reason: impl std::fmt::Display) -> Self {
        ConfigError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// A variable that must be set to a non-empty value.
pub fn required_env(name: &str) -> Result<String, ConfigError> {
    optional_env(name).ok_or_else(|| ConfigError::Missing(name.to_string()))
}

/// A variable that may be absent; empty counts as absent (Terraform sets optional ones to "").
pub fn optional_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Parses a value read from `name`, naming the variable on failure.
pub fn parse_value<T: FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Invalid {
        name: name.to_string(),
        value: value.to_string(),
        reason: e.to_string(),
    })
}

/// Shared AWS configuration for the SDK clients, built once per cold start from what Lambda puts
/// in a function's environment: the region (`AWS_REGION`, else `AWS_DEFAULT_REGION`), the
/// execution role's credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, read by the SDK's environment provider) and, for emulators such as moto,
/// `AWS_ENDPOINT_URL`; standard retries (3 attempts, the SDK's default).
///
/// Not the SDK's default chain (`aws_config::defaults`): profile files, web identity, SSO, ECS
/// and IMDS never apply inside Lambda (see "Lambda runtime environment variables" in the Lambda
/// developer guide), and leaving their code out keeps about 0.3 MB out of every zip
/// (`bench/lambda-sizes.md`). Per-service endpoint variables (`AWS_ENDPOINT_URL_S3`, …) are not
/// read.
#[cfg(feature = "aws")]
pub fn aws_config() -> aws_config::SdkConfig {
    let region = optional_env("AWS_REGION").or_else(|| optional_env("AWS_DEFAULT_REGION"));
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(region.map(aws_config::Region::new))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
        )
        .retry_config(aws_config::retry::RetryConfig::standard());
    if let Some(url) = optional_env("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable() {
        // Through a variable: the Terraform contract test reads literal `required_env("…")` calls.
        let name = "SLUICE_TEST_SURELY_UNSET";
        let missing = required_env(name).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "environment variable SLUICE_TEST_SURELY_UNSET is required but not set"
        );
        let bad = parse_value::<f64>("SLUICE_RATE", "fast").unwrap_err();
        assert!(
            bad.to_string()
                .starts_with("environment variable SLUICE_RATE=\"fast\" is invalid")
        );
        assert_eq!(parse_value::<u64>("SLUICE_SEED", "7"), Ok(7));
    }
}
