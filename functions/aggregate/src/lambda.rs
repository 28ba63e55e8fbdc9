//! Lambda wiring: settings from the environment and the S3 client, built once per cold start.
//!
//! | variable | meaning |
//! |---|---|
//! | `SLUICE_BUCKET` | lake and state bucket (required) |
//! | `SLUICE_LATENESS` | allowed lateness, e.g. `5s` (default 5s) |
//! | `SLUICE_WINDOWS` | extra window specs for every stream, comma-separated (e.g. `sliding:30s`) |

use std::sync::Arc;

use sluice_infra::config::{ConfigError, aws_config, optional_env, required_env};
use sluice_infra::store::S3Store;

use sluice_core::stream::StreamSet;

use crate::{Deps, HandlerError, Settings, SettingsError};

pub fn settings_from_env() -> Result<Settings, ConfigError> {
    let lateness = optional_env("SLUICE_LATENESS").unwrap_or_else(|| "5s".into());
    let windows = optional_env("SLUICE_WINDOWS").unwrap_or_default();
    let extra: Vec<&str> = windows.split(',').collect();
    // The shipped definitions until definitions are read from the bucket.
    Settings::with_windows(StreamSet::builtin(), &extra, &lateness).map_err(|reason| {
        let (name, value) = match reason {
            SettingsError::Lateness(_) => ("SLUICE_LATENESS", lateness.as_str()),
            _ => ("SLUICE_WINDOWS", windows.as_str()),
        };
        ConfigError::invalid(name, value, reason.to_string())
    })
}

impl Deps {
    pub async fn from_env() -> Result<Deps, ConfigError> {
        let bucket = required_env("SLUICE_BUCKET")?;
        let settings = settings_from_env()?;
        let config = aws_config().await;
        Ok(Deps {
            store: Arc::new(S3Store::new(&config, bucket)),
            settings,
            metrics: Default::default(),
        })
    }
}

sluice_infra::lambda_diagnostic!(HandlerError);
