//! Alerts on the terminal, and appended to a JSON-lines outbox file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use sluice_core::rules::Alert;

use super::{Notifier, NotifyError};

/// One line per alert on standard error (standard output stays clean for query results).
pub struct ConsoleNotifier;

#[async_trait]
impl Notifier for ConsoleNotifier {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        eprintln!("ALERT {}", alert.subject());
        Ok(())
    }

    fn describe(&self) -> String {
        "console".into()
    }
}

/// Appends every alert as one JSON object per line: the local stand-in for an SNS topic that
/// tests and scripts can read back.
pub struct OutboxNotifier {
    path: PathBuf,
    lock: Mutex<()>,
}

impl OutboxNotifier {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }
}

#[async_trait]
impl Notifier for OutboxNotifier {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        let fail = |message: String| NotifyError::Failed {
            target: self.describe(),
            message,
        };
        let mut line = serde_json::to_vec(alert).map_err(|e| fail(e.to_string()))?;
        line.push(b'\n');
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| fail(e.to_string()))?;
        f.write_all(&line).map_err(|e| fail(e.to_string()))
    }

    fn describe(&self) -> String {
        format!("outbox {}", self.path.display())
    }
}
