//! Lambda wiring for generate.
//!
//! | variable | meaning |
//! |---|---|
//! | `SLUICE_BUCKET` | bucket for generator state and ground truth (required) |
//! | `SLUICE_SINK` | `kinesis` (default) or `eventhubs` |
//! | `SLUICE_STREAM_NAME` | Kinesis stream (required for `kinesis`) |
//! | `SLUICE_SCENARIOS` | comma list of trades, telemetry, clickstream (default all) |
//! | `SLUICE_RATE` | events per second per scenario (default 100) |
//! | `SLUICE_SEED` | seed of the synthetic streams (default 42) |
//! | `SLUICE_STREAMS_PREFIX` | key prefix of the stream definitions in the bucket: every scenario generated must be one of them (built-in when unset) |
//! | `SLUICE_EVENTHUBS_NAMESPACE`, `SLUICE_EVENTHUBS_NAME`, `SLUICE_EVENTHUBS_SECRET_ARN` | Event Hubs target (for `eventhubs`) |

use std::sync::Arc;

use sluice_core::event::Scenario;
use sluice_infra::config::{ConfigError, aws_config, optional_env, parse_value, required_env};
use sluice_infra::sink::sink_from_env;
use sluice_infra::store::{ObjectStore, S3Store};
use sluice_infra::streams;

use crate::{Deps, HandlerError, Settings};

pub fn settings_from_env() -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    if let Some(list) = optional_env("SLUICE_SCENARIOS") {
        settings.scenarios = Scenario::parse_list(&list)
            .map_err(|e| ConfigError::invalid("SLUICE_SCENARIOS", &list, e))?;
    }
    if let Some(rate) = optional_env("SLUICE_RATE") {
        settings.rate_per_s = parse_value("SLUICE_RATE", &rate)?;
        if !(settings.rate_per_s > 0.0 && settings.rate_per_s <= 1e6) {
            return Err(ConfigError::invalid(
                "SLUICE_RATE",
                &rate,
                "must be in (0, 1000000]",
            ));
        }
    }
    if let Some(seed) = optional_env("SLUICE_SEED") {
        settings.seed = parse_value("SLUICE_SEED", &seed)?;
    }
    Ok(settings)
}

impl Deps {
    pub async fn from_env() -> Result<Deps, ConfigError> {
        let bucket = required_env("SLUICE_BUCKET")?;
        let settings = settings_from_env()?;
        let config = aws_config();
        let store: Arc<dyn ObjectStore> = Arc::new(S3Store::new(&config, &bucket));
        // Events of a scenario no definition describes would all be quarantined downstream.
        let streams = streams::for_cold_start(store.as_ref(), &bucket).await?;
        if let Some(s) = settings
            .scenarios
            .iter()
            .find(|s| streams.get(s.as_str()).is_none())
        {
            return Err(ConfigError::invalid(
                "SLUICE_SCENARIOS",
                s.as_str(),
                format!(
                    "no stream definition named {s} is loaded (loaded: {})",
                    streams.names().join(", ")
                ),
            ));
        }
        Ok(Deps {
            sink: sink_from_env(&config).await?,
            store,
            settings,
            metrics: Default::default(),
        })
    }
}

sluice_infra::lambda_diagnostic!(HandlerError);
