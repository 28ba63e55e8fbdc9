//! Lambda wiring for fetch.
//!
//! | variable | meaning |
//! |---|---|
//! | `SLUICE_BUCKET` | bucket for quarantined responses and items (required) |
//! | `SLUICE_FETCH_URL` | the API to call (required) |
//! | `SLUICE_FETCH_SECRET_ARN` | Secrets Manager secret holding the API key (required) |
//! | `SLUICE_FETCH_AUTH_HEADER` | header the key is sent in (default `Authorization`) |
//! | `SLUICE_FETCH_MAPPING` | the response → event mapping, TOML (required) |
//! | `SLUICE_FETCH_ALLOW_HTTP` | `true` allows a plain `http://` URL (local test servers only; the key would travel in clear) |
//! | `SLUICE_STREAMS_PREFIX` | key prefix of the stream definitions in the bucket; built-in when unset |
//! | `SLUICE_SINK`, `SLUICE_STREAM_NAME`, … | the stream, as for generate |

use std::sync::Arc;

use sluice_infra::config::{ConfigError, aws_config, optional_env, required_env};
use sluice_infra::secret::{SecretSource, SecretsManagerSource};
use sluice_infra::sink::sink_from_env;
use sluice_infra::store::{ObjectStore, S3Store};
use sluice_infra::streams;

use crate::http::{HttpApiSource, HttpPolicy};
use crate::{Deps, HandlerError, Mapper, Mapping};

impl Deps {
    pub async fn from_env() -> Result<Deps, ConfigError> {
        let bucket = required_env("SLUICE_BUCKET")?;
        let url = required_env("SLUICE_FETCH_URL")?;
        let secret_arn = required_env("SLUICE_FETCH_SECRET_ARN")?;
        let header =
            optional_env("SLUICE_FETCH_AUTH_HEADER").unwrap_or_else(|| "Authorization".into());
        let mapping_text = required_env("SLUICE_FETCH_MAPPING")?;
        let mapping: Mapping = toml::from_str(&mapping_text)
            .map_err(|e| ConfigError::invalid("SLUICE_FETCH_MAPPING", "(TOML)", e.message()))?;
        let config = aws_config();
        let store: Arc<dyn ObjectStore> = Arc::new(S3Store::new(&config, &bucket));
        let streams = streams::for_cold_start(store.as_ref(), &bucket).await?;
        let mapper = Mapper::new(&mapping, streams)
            .map_err(|e| ConfigError::invalid("SLUICE_FETCH_MAPPING", "(TOML)", e))?;
        // Read once per cold start; the value never reaches a log line.
        let secrets: Arc<dyn SecretSource> = Arc::new(SecretsManagerSource::new(&config));
        let key = secrets
            .get(&secret_arn)
            .await
            .map_err(|e| ConfigError::invalid("SLUICE_FETCH_SECRET_ARN", &secret_arn, e))?;
        let policy = HttpPolicy {
            allow_http: optional_env("SLUICE_FETCH_ALLOW_HTTP").as_deref() == Some("true"),
            ..HttpPolicy::default()
        };
        let source = HttpApiSource::new(url, Some((header, key)), policy)
            .map_err(|e| ConfigError::invalid("SLUICE_FETCH_URL", "(client)", e))?
            .with_key_source(secrets, secret_arn.clone());
        Ok(Deps {
            source: Arc::new(source),
            sink: sink_from_env(&config).await?,
            store,
            mapper,
            metrics: Default::default(),
        })
    }
}

sluice_infra::lambda_diagnostic!(HandlerError);
