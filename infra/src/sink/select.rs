//! Which stream producers write to, from `SLUICE_SINK` (shared by generate and fetch).

use std::sync::Arc;

use crate::config::{ConfigError, optional_env, required_env};

use super::{EventSink, KinesisSink};

/// The configured sink. Event Hubs is selected by configuration; this build reports clearly
/// that it is not available rather than silently falling back.
pub fn sink_from_env(config: &aws_config::SdkConfig) -> Result<Arc<dyn EventSink>, ConfigError> {
    match optional_env("SLUICE_SINK").as_deref().unwrap_or("kinesis") {
        "kinesis" => Ok(Arc::new(KinesisSink::new(
            config,
            required_env("SLUICE_STREAM_NAME")?,
        ))),
        "eventhubs" => {
            let namespace = optional_env("SLUICE_EVENTHUBS_NAMESPACE").unwrap_or_default();
            let hub = optional_env("SLUICE_EVENTHUBS_NAME").unwrap_or_default();
            let _secret = optional_env("SLUICE_EVENTHUBS_SECRET_ARN");
            Err(ConfigError::invalid(
                "SLUICE_SINK",
                "eventhubs",
                format!(
                    "the Event Hubs sink ({namespace}/{hub}) is not in this build yet; use kinesis"
                ),
            ))
        }
        other => Err(ConfigError::invalid(
            "SLUICE_SINK",
            other,
            "expected kinesis or eventhubs",
        )),
    }
}
