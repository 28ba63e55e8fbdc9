//! Object storage for the lake and for function state.

mod local;
#[cfg(feature = "aws")]
mod s3;

use async_trait::async_trait;
use thiserror::Error;

pub use local::LocalDirStore;
#[cfg(feature = "aws")]
pub use s3::S3Store;
pub use sluice_core::lake::StagedObject;

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
    /// Neither the staged upload nor a published object exists: the upload was aborted (the
    /// bucket's lifecycle rule aborts incomplete uploads after a day) before anyone published
    /// it. Retrying cannot bring it back.
    #[error("{key}: staged upload {upload_id} is gone and the object was never published")]
    Lost { key: String, upload_id: String },
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
            StoreError::Lost { .. } => false,
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
/// - `list` returns every key under a prefix, sorted; staged objects are not listed.
/// - `stage` writes an object no reader can see (`get` and `list` do not return it);
///   `publish` makes it visible under its key at once, and publishing it again succeeds.
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
    /// Writes `body` for `key` where no reader can see it yet: an S3 multipart upload with one
    /// part, not completed; a file under `.staging/` locally. Retrying is safe: each call stages
    /// a new copy, and copies never published are aborted by the bucket's lifecycle rule.
    async fn stage(&self, key: &str, body: Vec<u8>) -> Result<StagedObject, StoreError>;
    /// Makes a staged object visible under its key, atomically (S3 `CompleteMultipartUpload`;
    /// a rename locally). Idempotent: publishing what is already published succeeds.
    /// [`StoreError::Lost`] when neither the upload nor the object exists.
    async fn publish(&self, staged: &StagedObject) -> Result<(), StoreError>;
    /// Discards a staged object that will never be published (its attempt failed before the
    /// commit). Idempotent; best effort: what is not aborted, the lifecycle rule aborts later.
    async fn abort(&self, staged: &StagedObject) -> Result<(), StoreError>;
    /// Removes an object; removing a missing one succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Where this store is, for messages (e.g. `s3://bucket/`, `/path/to/lake`).
    fn location(&self) -> String;
}

/// Publishing an aborted upload is [`StoreError::Lost`]. Not part of [`conformance`] because
/// moto 5.2 answers `CompleteMultipartUpload` of an unknown upload with a 500 (a `KeyError`),
/// where S3 answers 404 `NoSuchUpload`
/// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html>).
#[cfg(any(test, feature = "conformance"))]
pub async fn conformance_lost(store: &dyn ObjectStore) {
    let staged = store.stage("lost/a.bin", b"gone".to_vec()).await.unwrap();
    store.abort(&staged).await.unwrap();
    let lost = store.publish(&staged).await;
    assert!(
        matches!(lost, Err(StoreError::Lost { .. })),
        "publishing an aborted upload: {lost:?}"
    );
    assert!(store.get("lost/a.bin").await.unwrap().is_none());
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

    let staged = store
        .stage("conformance/d.bin", b"staged".to_vec())
        .await
        .unwrap();
    let abandoned = store
        .stage("conformance/e.bin", b"never".to_vec())
        .await
        .unwrap();
    assert!(
        store.get("conformance/d.bin").await.unwrap().is_none(),
        "a staged object is invisible"
    );
    store.publish(&staged).await.unwrap();
    store.publish(&staged).await.unwrap();
    let got = store.get("conformance/d.bin").await.unwrap().unwrap();
    assert_eq!(got.body, b"staged");
    store.abort(&abandoned).await.unwrap();
    store.abort(&abandoned).await.unwrap();
    assert!(
        store.get("conformance/e.bin").await.unwrap().is_none(),
        "an aborted object is never visible"
    );
    store.put("conformance/g.bin", b"z".to_vec()).await.unwrap();
    store.delete("conformance/g.bin").await.unwrap();
    store.delete("conformance/g.bin").await.unwrap();
    assert!(store.get("conformance/g.bin").await.unwrap().is_none());
    assert_eq!(
        store.list("conformance/").await.unwrap(),
        vec![
            "conformance/a.bin".to_string(),
            "conformance/b.bin".to_string(),
            "conformance/d.bin".to_string()
        ]
    );
}
