//! Stream definitions read from the object store at cold start: every `*.toml` object under a
//! prefix (Terraform uploads `streams/*.toml` to the lake bucket and sets
//! `SLUICE_STREAMS_PREFIX`), or the built-in definitions when no prefix is configured.

use sluice_core::stream::{DefinitionError, StreamSet};
use thiserror::Error;

use crate::config::optional_env;
use crate::store::{ObjectStore, StoreError};

/// Why the definitions could not be loaded. Neither is fixed by retrying the same deployment
/// except a store failure that says it is retryable.
#[derive(Debug, Error)]
pub enum StreamsError {
    #[error("reading stream definitions: {0}")]
    Store(#[from] StoreError),
    #[error("no *.toml stream definitions under {0:?} (SLUICE_STREAMS_PREFIX)")]
    Empty(String),
    #[error("{0}")]
    Definition(#[from] DefinitionError),
    #[error("stream definition {key} is not UTF-8")]
    NotText { key: String },
}

/// Every `*.toml` object under `prefix`, in key order, as one validated set. Errors name the
/// object (`store_label/key:line:column`).
pub async fn load_from_store(
    store: &dyn ObjectStore,
    store_label: &str,
    prefix: &str,
) -> Result<StreamSet, StreamsError> {
    let mut sources: Vec<(String, String)> = Vec::new();
    for key in store.list(prefix).await? {
        if !key.ends_with(".toml") {
            continue;
        }
        let Some(object) = store.get(&key).await? else {
            continue;
        };
        let text = String::from_utf8(object.body)
            .map_err(|_| StreamsError::NotText { key: key.clone() })?;
        sources.push((format!("{store_label}/{key}"), text));
    }
    if sources.is_empty() {
        return Err(StreamsError::Empty(prefix.to_string()));
    }
    Ok(StreamSet::from_sources(
        sources.iter().map(|(f, t)| (f.as_str(), t.as_str())),
    )?)
}

/// The definitions a function runs with: those under `SLUICE_STREAMS_PREFIX` in `store`, or
/// the built-in ones when the variable is unset or empty.
pub async fn from_env(
    store: &dyn ObjectStore,
    store_label: &str,
) -> Result<StreamSet, StreamsError> {
    match optional_env("SLUICE_STREAMS_PREFIX") {
        None => Ok(StreamSet::builtin()),
        Some(prefix) => load_from_store(store, store_label, &prefix).await,
    }
}

/// [`from_env`] for a Lambda's cold start: the definitions in `s3://{bucket}/` under
/// `SLUICE_STREAMS_PREFIX`, a failure reported as that variable's configuration error.
pub async fn for_cold_start(
    store: &dyn ObjectStore,
    bucket: &str,
) -> Result<StreamSet, crate::config::ConfigError> {
    from_env(store, &format!("s3://{bucket}"))
        .await
        .map_err(|e| {
            let prefix = optional_env("SLUICE_STREAMS_PREFIX").unwrap_or_default();
            crate::config::ConfigError::invalid("SLUICE_STREAMS_PREFIX", &prefix, e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalDirStore;

    const STOCKS: &str = "name = \"stocks\"\nkey = \"Index\"\n[time]\nfield = \"Date\"\nformat = \"%Y-%m-%d %H:%M:%S\"\n[fields.Index]\ntype = \"string\"\n[fields.Close]\ntype = \"double\"\n";

    #[tokio::test]
    async fn definitions_under_a_prefix_load_and_errors_name_the_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDirStore::new(dir.path());
        store
            .put("streams/stocks.toml", STOCKS.into())
            .await
            .unwrap();
        store
            .put("streams/README.md", b"not a definition".to_vec())
            .await
            .unwrap();
        let set = load_from_store(&store, "s3://lake", "streams/")
            .await
            .unwrap();
        assert_eq!(set.names(), ["stocks"]);

        store
            .put("streams/zz.toml", STOCKS.replace("double", "float").into())
            .await
            .unwrap();
        let e = load_from_store(&store, "s3://lake", "streams/")
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with("s3://lake/streams/zz.toml:9:"),
            "{e}"
        );
        let empty = load_from_store(&store, "s3://lake", "nothing/")
            .await
            .unwrap_err();
        assert!(matches!(empty, StreamsError::Empty(_)), "{empty}");
    }
}
