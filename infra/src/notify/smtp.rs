//! Alert emails over SMTP (lettre), for the local pipeline and self-hosted setups.

use async_trait::async_trait;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sluice_core::rules::Alert;

use super::{Notifier, NotifyError};

/// Where and how to send alert mail.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://host:port` (implicit TLS); credentials as `smtp://user:pass@host`.
    pub url: String,
    pub from: String,
    pub to: Vec<String>,
}

pub struct SmtpNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    target: String,
}

impl SmtpNotifier {
    pub fn new(config: &SmtpConfig) -> Result<Self, NotifyError> {
        let bad =
            |what: &str, e: &dyn std::fmt::Display| NotifyError::Config(format!("{what}: {e}"));
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .map_err(|e| bad(&format!("SMTP URL {:?}", redact(&config.url)), &e))?;
        let transport = match std::env::var("SLUICE_SMTP_PASSWORD") {
            Ok(password) if !password.is_empty() => {
                let user =
                    std::env::var("SLUICE_SMTP_USER").unwrap_or_else(|_| config.from.clone());
                transport.credentials(Credentials::new(user, password))
            }
            _ => transport,
        };
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| bad(&format!("sender {:?}", config.from), &e))?;
        if config.to.is_empty() {
            return Err(NotifyError::Config(
                "at least one recipient is needed".into(),
            ));
        }
        let to = config
            .to
            .iter()
            .map(|t| t.parse().map_err(|e| bad(&format!("recipient {t:?}"), &e)))
            .collect::<Result<Vec<Mailbox>, _>>()?;
        Ok(Self {
            transport: transport.build(),
            from,
            to,
            target: redact(&config.url),
        })
    }
}

/// The URL without its password, for messages and logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[async_trait]
impl Notifier for SmtpNotifier {
    async fn notify(&self, alert: &Alert) -> Result<(), NotifyError> {
        let fail = |message: String| NotifyError::Failed {
            target: self.describe(),
            message,
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(alert.subject())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(alert.body())
            .map_err(|e| fail(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("smtp {}", self.target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("smtp://me:secret@mail.example.com:587"),
            "smtp://***@mail.example.com:587"
        );
        assert_eq!(redact("smtp://127.0.0.1:2525"), "smtp://127.0.0.1:2525");
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        let cfg = |url: &str, from: &str, to: &[&str]| SmtpConfig {
            url: url.into(),
            from: from.into(),
            to: to.iter().map(|s| s.to_string()).collect(),
        };
        let err = |c: SmtpConfig| {
            SmtpNotifier::new(&c)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(cfg("smtp://127.0.0.1:2525", "not an address", &["a@b.c"])).contains("sender"));
        assert!(err(cfg("smtp://127.0.0.1:2525", "a@b.c", &[])).contains("recipient"));
        assert!(err(cfg("ftp://x", "a@b.c", &["a@b.c"])).contains("SMTP URL"));
    }
}
