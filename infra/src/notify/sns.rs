//! Alerts published to an SNS topic (email subscriptions, SQS, chat hooks). Message attributes
//! `severity`, `scenario` and `key` let subscribers filter with a filter policy.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use sluice_core::rules::Alert;

use super::{Notifier, NotifyError};

/// SNS limits: subject ≤ 100 printable ASCII characters, message ≤ 256 KiB.
const MAX_SUBJECT: usize = 100;
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    pub fn new(config: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            topic_arn: topic_arn.into(),
        }
    }
}

/// An email subject SNS accepts: printable ASCII, no line breaks, at most 100 characters.
pub fn sns_subject(text: &str) -> String {
    let mut s: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    s.truncate(MAX_SUBJECT);
    s
}

/// The message body cut to SNS's size limit at a character boundary.
pub fn sns_message(text: &str) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text.to_string();
    }
    let mut cut = MAX_MESSAGE_BYTES - 16;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[truncated]", &text[..cut])
}

fn attribute(value: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(if value.is_empty() { "-" } else { value })
        .build()
        .map_err(|e| NotifyError::Config(e.to_string()))
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(sns_subject(&alert.subject()))
            .message(sns_message(&alert.body()))
            .message_attributes("severity", attribute(alert.severity.as_str())?)
            .message_attributes("scenario", attribute(&alert.scenario)?)
            .message_attributes("key", attribute(&alert.key)?)
            .message_attributes("rule", attribute(&alert.rule)?)
            .send()
            .await
            .map_err(|e| NotifyError::Failed {
                target: self.describe(),
                message: format!("{}", aws_sdk_sns::error::DisplayErrorContext(&e)),
            })?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("sns {}", self.topic_arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_messages_fit_sns_limits() {
        let s = sns_subject(&format!("[CRITICAL] é\n{}", "x".repeat(200)));
        assert!(s.len() <= 100 && s.is_ascii() && !s.contains('\n'));
        let m = sns_message(&"é".repeat(200_000));
        assert!(m.len() <= MAX_MESSAGE_BYTES && m.ends_with("[truncated]"));
    }
}
