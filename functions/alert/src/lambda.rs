//! Lambda wiring for alert.
//!
//! | variable | meaning |
//! |---|---|
//! | `SLUICE_BUCKET` | lake bucket: objects to evaluate, cooldown state, the rules file (required) |
//! | `SLUICE_TOPIC_ARN` | SNS topic alerts are published to (required) |
//! | `SLUICE_RULES_KEY` | key of a rules TOML in the bucket; the built-in rules when unset |
//! | `SLUICE_STREAMS_PREFIX` | key prefix of the stream definitions rules are checked against; built-in when unset |

use std::sync::Arc;

use sluice_infra::config::{ConfigError, aws_config, optional_env, required_env};
use sluice_infra::notify::SnsNotifier;
use sluice_infra::store::{ObjectStore, S3Store};
use sluice_infra::streams;

use crate::{Deps, HandlerError, STATE_KEY, load_rules};

impl Deps {
    pub async fn from_env() -> Result<Deps, ConfigError> {
        let bucket = required_env("SLUICE_BUCKET")?;
        let topic = required_env("SLUICE_TOPIC_ARN")?;
        let config = aws_config();
        let store: Arc<dyn ObjectStore> = Arc::new(S3Store::new(&config, &bucket));
        let streams = streams::for_cold_start(store.as_ref(), &bucket).await?;
        let rules = match optional_env("SLUICE_RULES_KEY") {
            None => load_rules(None, &streams),
            Some(key) => {
                let object = store
                    .get(&key)
                    .await
                    .map_err(|e| ConfigError::invalid("SLUICE_RULES_KEY", &key, e))?
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "SLUICE_RULES_KEY",
                            &key,
                            format!("no such object in s3://{bucket}/"),
                        )
                    })?;
                let text = String::from_utf8_lossy(&object.body).into_owned();
                load_rules(Some((&text, &format!("s3://{bucket}/{key}"))), &streams)
            }
        }
        .map_err(|e| ConfigError::invalid("SLUICE_RULES_KEY", "rules", e))?;
        Ok(Deps {
            store,
            notifier: Arc::new(SnsNotifier::new(&config, topic)),
            rules,
            state_key: STATE_KEY.into(),
            metrics: Default::default(),
        })
    }
}

sluice_infra::lambda_diagnostic!(HandlerError);
