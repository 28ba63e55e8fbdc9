//! Which stream producers write to, from `SLUICE_SINK` (shared by generate and fetch).

use std::sync::Arc;

use crate::config::{ConfigError, optional_env, required_env};

use super::{EventSink, KinesisSink};

/// The configured sink: Kinesis (`SLUICE_STREAM_NAME`) or, with `SLUICE_SINK=eventhubs`,
/// Event Hubs (`SLUICE_EVENTHUBS_NAMESPACE`, `SLUICE_EVENTHUBS_NAME`, and the send-only connection
/// string in the Secrets Manager secret `SLUICE_EVENTHUBS_SECRET_ARN`; optionally
/// `SLUICE_EVENTHUBS_ENDPOINT`, the address the AMQP socket connects to instead of the namespace,
/// e.g. a proxy).
pub async fn sink_from_env(
    config: &aws_config::SdkConfig,
) -> Result<Arc<dyn EventSink>, ConfigError> {
    match optional_env("SLUICE_SINK").as_deref().unwrap_or("kinesis") {
        "kinesis" => Ok(Arc::new(KinesisSink::new(
            config,
            required_env("SLUICE_STREAM_NAME")?,
        ))),
        "eventhubs" => eventhubs_from_env(config).await,
        other => Err(ConfigError::invalid(
            "SLUICE_SINK",
            other,
            "expected kinesis or eventhubs",
        )),
    }
}

#[cfg(feature = "eventhubs")]
async fn eventhubs_from_env(
    config: &aws_config::SdkConfig,
) -> Result<Arc<dyn EventSink>, ConfigError> {
    use crate::secret::{SecretSource, SecretsManagerSource};
    let namespace = required_env("SLUICE_EVENTHUBS_NAMESPACE")?;
    let hub = required_env("SLUICE_EVENTHUBS_NAME")?;
    let arn = required_env("SLUICE_EVENTHUBS_SECRET_ARN")?;
    let connection = SecretsManagerSource::new(config)
        .get(&arn)
        .await
        .map_err(|e| ConfigError::invalid("SLUICE_EVENTHUBS_SECRET_ARN", &arn, e))?;
    // The connection string names its namespace; a mismatch means the wrong secret.
    let short = namespace.split('.').next().unwrap_or(&namespace);
    if !connection.expose().contains(&format!("sb://{short}.")) {
        return Err(ConfigError::invalid(
            "SLUICE_EVENTHUBS_SECRET_ARN",
            &arn,
            format!("the connection string is not for namespace {namespace}"),
        ));
    }
    let endpoint = optional_env("SLUICE_EVENTHUBS_ENDPOINT");
    let sink = super::EventHubsSink::open(&connection, &hub, endpoint.as_deref())
        .await
        .map_err(|e| ConfigError::invalid("SLUICE_EVENTHUBS_NAME", &hub, e))?;
    Ok(Arc::new(sink))
}

#[cfg(not(feature = "eventhubs"))]
async fn eventhubs_from_env(
    _config: &aws_config::SdkConfig,
) -> Result<Arc<dyn EventSink>, ConfigError> {
    let _ = (
        optional_env("SLUICE_EVENTHUBS_NAMESPACE"),
        optional_env("SLUICE_EVENTHUBS_NAME"),
        optional_env("SLUICE_EVENTHUBS_SECRET_ARN"),
        optional_env("SLUICE_EVENTHUBS_ENDPOINT"),
    );
    Err(ConfigError::invalid(
        "SLUICE_SINK",
        "eventhubs",
        "this build has no Event Hubs support (feature eventhubs)",
    ))
}
