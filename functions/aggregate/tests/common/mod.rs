#![allow(dead_code)] // each test binary uses part of it
//! The object store the aggregate's integration tests fail on purpose: the real local store,
//! whose chosen write fails, and which may serve stale ETags for state.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use sluice_infra::store::{
    ETag, LocalDirStore, Object, ObjectStore, Precondition, StagedObject, StoreError,
};

/// How an armed write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The request fails and nothing is written (a throttled `PutObject`, a refused upload).
    Before,
    /// The write happens but its response is lost (a timeout, a crash right after it): the
    /// caller sees an error for something that took effect.
    ResponseLost,
}

/// The real local store. Every write (put, conditional put, stage, publish) is counted; the
/// armed one fails once. Reads, listing and conditions are the local store's own.
pub struct FaultyStore {
    inner: LocalDirStore,
    _dir: tempfile::TempDir,
    pub writes: AtomicUsize,
    fail_at: Mutex<Option<(usize, Failure)>>,
    /// List state as it was before the newest generation of each shard was committed, as if
    /// another writer had committed since this one read.
    pub stale_state: AtomicBool,
}

impl Default for FaultyStore {
    fn default() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            inner: LocalDirStore::new(dir.path()),
            _dir: dir,
            writes: AtomicUsize::new(0),
            fail_at: Mutex::new(None),
            stale_state: AtomicBool::new(false),
        }
    }
}

impl FaultyStore {
    pub fn root(&self) -> &Path {
        self.inner.root()
    }

    /// Fails the `n`-th write from now (0 = the next one), once.
    pub fn arm(&self, at: Option<usize>, how: Failure) {
        let now = self.writes.load(Ordering::SeqCst);
        *self.fail_at.lock().unwrap() = at.map(|n| (n + now, how));
    }

    /// `Some(how)` when this write is the armed one.
    fn fails(&self) -> Option<Failure> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        let mut armed = self.fail_at.lock().unwrap();
        match *armed {
            Some((at, how)) if at == n => {
                *armed = None;
                Some(how)
            }
            _ => None,
        }
    }

    async fn write<T>(
        &self,
        key: &str,
        op: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let injected = || StoreError::Backend {
            key: key.to_string(),
            message: "injected: SlowDown".into(),
            retryable: true,
        };
        match self.fails() {
            None => op.await,
            Some(Failure::Before) => Err(injected()),
            Some(Failure::ResponseLost) => op.await.and_then(|_| Err(injected())),
        }
    }

    /// Every visible object, key → bytes.
    pub async fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for key in self.inner.list("").await.unwrap() {
            if let Some(object) = self.inner.get(&key).await.unwrap() {
                out.insert(key, object.body);
            }
        }
        out
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<ETag, StoreError> {
        self.write(key, self.inner.put(key, body)).await
    }

    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Precondition,
    ) -> Result<ETag, StoreError> {
        self.write(key, self.inner.put_if(key, body, condition))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = self.inner.list(prefix).await?;
        if self.stale_state.load(Ordering::SeqCst) && prefix.starts_with("state/") {
            // Generations are `<shard dir>/<20 digits>.json`: drop the newest of each dir.
            let mut newest: BTreeMap<String, String> = BTreeMap::new();
            for k in keys.iter().filter(|k| k.ends_with(".json")) {
                if let Some((dir, _)) = k.rsplit_once('/') {
                    let e = newest.entry(dir.to_string()).or_default();
                    if *k > *e {
                        *e = k.clone();
                    }
                }
            }
            keys.retain(|k| !newest.values().any(|n| n == k));
        }
        Ok(keys)
    }

    async fn stage(&self, key: &str, body: Vec<u8>) -> Result<StagedObject, StoreError> {
        self.write(key, self.inner.stage(key, body)).await
    }

    async fn publish(&self, staged: &StagedObject) -> Result<(), StoreError> {
        self.write(&staged.key, self.inner.publish(staged)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.write(key, self.inner.delete(key)).await
    }

    async fn abort(&self, staged: &StagedObject) -> Result<(), StoreError> {
        self.write(&staged.key, self.inner.abort(staged)).await
    }

    fn location(&self) -> String {
        format!("{} (fault injection)", self.inner.location())
    }
}
