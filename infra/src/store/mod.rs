//! Object storage for the lake and for function state.

mod local;
#[cfg(feature = "aws")]
mod s3;

use async_trait::async_trait;
use thiserror::Error;

pub use local::LocalDirStore;
#[cfg(feature = "aws")]
pub use s3::S3Store;

/// Opaque version tag of an object's content (S3's ETag; an MD5 of the bytes locally).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(pub String);

#[derive(Debug, Clone)]
pub struct Object {
    pub body: Vec<u8>,
    pub etag: ETag,
}

/// Condition for [`ObjectStore::put_if`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Only create: fail if the key exists (S3 `If-None-Match: *`).
    DoesNotExist,
    /// Only replace this exact version (S3 `If-Match`).
    Matches(ETag),
}

#[derive(Debug, Error)]
pub enum StoreError {
    /// Someone else wrote the object since it was read: reload and retry, never overwrite.
    #[error("{key}: precondition failed (written concurrently)")]
    PreconditionFailed { key: String },
    #[error("{key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    /// Any other backend failure; `retryable` says whether trying again can help.
    #[error("{key}: {message}")]
    Backend {
        key: String,
        message: String,
        retryable: bool,
    },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::PreconditionFailed { .. } | StoreError::Io { .. } => true,
            StoreError::Backend { retryable, .. } => *retryable,
        }
    }
}

/// A flat key → bytes store with conditional writes.
///
/// Contract every backend follows (checked by the shared conformance tests):
/// - `get` of a missing key is `Ok(None)`, not an error.
/// - `put` is idempotent: writing the same bytes to the same key twice leaves one identical
///   object. On `Err`, the object may or may not have been written; retrying is safe.
/// - `put_if` writes only when the precondition holds and otherwise returns
///   `StoreError::PreconditionFailed` without touching the object. The caller should reload
///   the object, merge or redo its work, and try again.
/// - `list` returns every key under a prefix, sorted.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError>;
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<ETag, StoreError>;
    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Precondition,
    ) -> Result<ETag, StoreError>;
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Where this store is, for messages (e.g. `s3://bucket/`, `/path/to/lake`).
    fn location(&self) -> String;
}

/// The shared conformance suite: every backend's tests call this.
#[cfg(any(test, feature = "conformance"))]
pub async fn conformance(store: &dyn ObjectStore) {
    let key = "conformance/a.bin";
    assert!(
        store.get(key).await.unwrap().is_none(),
        "missing key is None"
    );
    let e1 = store
        .put_if(key, b"one".to_vec(), Precondition::DoesNotExist)
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_if(key, b"two".to_vec(), Precondition::DoesNotExist)
            .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    let e2 = store
        .put_if(key, b"two".to_vec(), Precondition::Matches(e1.clone()))
        .await
        .unwrap();
    assert!(matches!(
        store
            .put_if(key, b"three".to_vec(), Precondition::Matches(e1))
            .await,
        Err(StoreError::PreconditionFailed { .. })
    ));
    let got = store.get(key).await.unwrap().unwrap();
    assert_eq!((got.body.as_slice(), got.etag), (b"two".as_slice(), e2));
    store.put("conformance/b.bin", b"x".to_vec()).await.unwrap();
    store.put("conformance/b.bin", b"x".to_vec()).await.unwrap();
    store.put("other/c.bin", b"y".to_vec()).await.unwrap();
    assert_eq!(
        store.list("conformance/").await.unwrap(),
        vec![
            "conformance/a.bin".to_string(),
            "conformance/b.bin".to_string()
        ]
    );
}
