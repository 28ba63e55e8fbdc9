//! A directory standing in for S3. Keys are relative paths; writes are atomic (temp file +
//! rename), so readers never see half an object.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use md5::{Digest, Md5};
use tokio::sync::mpsc::UnboundedSender;

use super::{ETag, Object, ObjectStore, Precondition, StagedObject, StoreError};

/// Directory under the root holding staged objects; hidden (a leading dot), so never listed.
const STAGING: &str = ".staging";

pub struct LocalDirStore {
    root: PathBuf,
    /// Serialises conditional puts. Only guards writers in this process: the local pipeline
    /// runs every function in one process; concurrent processes must use S3.
    conditional: Mutex<()>,
    /// Like S3 event notifications: every key written is sent here.
    notify: Option<UnboundedSender<String>>,
    /// Makes staging names unique within this process.
    staged: AtomicU64,
}

fn etag_of(bytes: &[u8]) -> ETag {
    let digest = Md5::digest(bytes);
    ETag(digest.iter().map(|b| format!("{b:02x}")).collect())
}

impl LocalDirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            conditional: Mutex::new(()),
            notify: None,
            staged: AtomicU64::new(0),
        }
    }

    /// Sends every written key to `sender` after the write is complete.
    pub fn with_notifications(mut self, sender: UnboundedSender<String>) -> Self {
        self.notify = Some(sender);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let bad = key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|part| part == ".." || part == "." || part.is_empty());
        if bad {
            return Err(StoreError::Backend {
                key: key.to_string(),
                message: "invalid key: empty, absolute, or containing '.', '..' or '//'".into(),
                retryable: false,
            });
        }
        Ok(self.root.join(key))
    }

    fn read(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(body) => Ok(Some(Object {
                etag: etag_of(&body),
                body,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                key: key.to_string(),
                source,
            }),
        }
    }

    fn write(&self, key: &str, body: &[u8]) -> Result<ETag, StoreError> {
        let path = self.path(key)?;
        let io = |source| StoreError::Io {
            key: key.to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, body).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        self.notify(key);
        Ok(etag_of(body))
    }

    fn notify(&self, key: &str) {
        if let Some(tx) = &self.notify {
            // The receiver going away (pipeline shutting down) is not the writer's problem.
            let _ = tx.send(key.to_string());
        }
    }
}

#[async_trait]
impl ObjectStore for LocalDirStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.read(key)
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<ETag, StoreError> {
        self.write(key, &body)
    }

    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Precondition,
    ) -> Result<ETag, StoreError> {
        let _guard = self.conditional.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.read(key)?;
        let holds = match (&condition, &current) {
            (Precondition::DoesNotExist, None) => true,
            (Precondition::Matches(want), Some(obj)) => *want == obj.etag,
            _ => false,
        };
        if !holds {
            return Err(StoreError::PreconditionFailed {
                key: key.to_string(),
            });
        }
        self.write(key, &body)
    }

    async fn stage(&self, key: &str, body: Vec<u8>) -> Result<StagedObject, StoreError> {
        self.path(key)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let n = self.staged.fetch_add(1, Ordering::Relaxed);
        let upload_id = format!("{nanos}-{}-{n}", std::process::id());
        let io = |source| StoreError::Io {
            key: key.to_string(),
            source,
        };
        let dir = self.root.join(STAGING);
        std::fs::create_dir_all(&dir).map_err(io)?;
        std::fs::write(dir.join(&upload_id), &body).map_err(io)?;
        Ok(StagedObject {
            key: key.to_string(),
            upload_id,
            part_etag: etag_of(&body).0,
        })
    }

    async fn publish(&self, staged: &StagedObject) -> Result<(), StoreError> {
        let key = staged.key.as_str();
        let path = self.path(key)?;
        let io = |source| StoreError::Io {
            key: key.to_string(),
            source,
        };
        let from = self.root.join(STAGING).join(&staged.upload_id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        match std::fs::rename(&from, &path) {
            Ok(()) => {
                self.notify(key);
                Ok(())
            }
            // Published before (the rename happened): nothing left to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.exists() => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::Lost {
                key: key.to_string(),
                upload_id: staged.upload_id.clone(),
            }),
            Err(source) => Err(io(source)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
                key: key.to_string(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    async fn abort(&self, staged: &StagedObject) -> Result<(), StoreError> {
        match std::fs::remove_file(self.root.join(STAGING).join(&staged.upload_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
                key: staged.key.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(StoreError::Io {
                        key: prefix.to_string(),
                        source,
                    });
                }
            };
            for entry in entries {
                let entry = entry.map_err(|source| StoreError::Io {
                    key: prefix.to_string(),
                    source,
                })?;
                let path = entry.path();
                let name = entry.file_name();
                if name.to_string_lossy().starts_with('.') {
                    continue; // temp files of in-flight writes
                }
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if key.starts_with(prefix) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms() {
        let dir = tempfile::tempdir().unwrap();
        super::super::conformance(&LocalDirStore::new(dir.path())).await;
        let dir = tempfile::tempdir().unwrap();
        super::super::conformance_lost(&LocalDirStore::new(dir.path())).await;
    }

    #[tokio::test]
    async fn rejects_escaping_keys_and_notifies_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let store = LocalDirStore::new(dir.path()).with_notifications(tx);
        assert!(store.put("../evil", vec![]).await.is_err());
        assert!(store.put("a//b", vec![]).await.is_err());
        store.put("windows/x.parquet", vec![1]).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), "windows/x.parquet");
    }
}
