//! Where alerts go.

mod console;
#[cfg(feature = "smtp")]
mod smtp;
#[cfg(feature = "aws")]
mod sns;

use std::sync::Arc;

use async_trait::async_trait;
use sluice_core::rules::Alert;
use thiserror::Error;

pub use console::{ConsoleNotifier, OutboxNotifier};
#[cfg(feature = "smtp")]
pub use smtp::{SmtpConfig, SmtpNotifier};
#[cfg(feature = "aws")]
pub use sns::{SnsNotifier, sns_message, sns_subject};

#[derive(Debug, Error)]
pub enum NotifyError {
    #[error("{target}: {message}")]
    Failed { target: String, message: String },
    #[error("bad notifier configuration: {0}")]
    Config(String),
}

/// Delivers one alert.
///
/// Contract: `Ok` means the alert was handed to the channel (printed, written, accepted by the
/// SMTP server or SNS). On `Err` it may or may not have been delivered; the alert function
/// treats that as "retry later", so channels see at-least-once delivery.
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError>;
    fn describe(&self) -> String;
}

/// Sends to every notifier; fails if any fails (after trying all of them).
pub struct Fanout(pub Vec<Arc<dyn Notifier>>);

#[async_trait]
impl Notifier for Fanout {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        let mut failures = Vec::new();
        for n in &self.0 {
            if let Err(e) = n.notify(alert).await {
                failures.push(e.to_string());
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(NotifyError::Failed {
                target: self.describe(),
                message: failures.join("; "),
            })
        }
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|n| n.describe())
            .collect::<Vec<_>>()
            .join(" + ")
    }
}
