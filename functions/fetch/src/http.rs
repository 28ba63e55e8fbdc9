//! The REST API behind fetch, over reqwest: a timeout per attempt, retries with capped
//! exponential backoff on timeouts, connection errors, 429 and 5xx — waiting as long as
//! `Retry-After` asks (in seconds) when the server says so — and the API key sent in a
//! configurable header, never logged.
//!
//! The key never leaves the API's origin: redirects are followed only within the same scheme,
//! host and port (reqwest would forward a custom header such as `X-Api-Key` to any host a
//! redirect names), plain `http://` needs [`HttpPolicy::allow_http`], and the URL is logged and
//! reported without its query (where some APIs take the key).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use sluice_infra::secret::{Secret, SecretSource};

use crate::{ApiSource, FetchError};

#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub base_delay: Duration,
    /// Longest wait honoured from `Retry-After` (a Lambda has a deadline).
    pub max_delay: Duration,
    /// Allow `http://` URLs, whose key travels in clear (local servers in tests only).
    pub allow_http: bool,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(20),
            allow_http: false,
        }
    }
}

pub struct HttpApiSource {
    client: reqwest::Client,
    url: String,
    /// The URL without user info, query or fragment: what logs and errors show.
    shown: String,
    /// (header, key); the key is replaced when a 401 makes it re-read.
    auth: Option<(String, Mutex<Secret>)>,
    /// Where the key comes from, to re-read it once when the API answers 401 (rotated).
    key_source: Option<(Arc<dyn SecretSource>, String)>,
    policy: HttpPolicy,
}

impl HttpApiSource {
    /// `auth` is (header name, key), e.g. ("Authorization", "Bearer …") or ("X-Api-Key", "…").
    pub fn new(
        url: impl Into<String>,
        auth: Option<(String, Secret)>,
        policy: HttpPolicy,
    ) -> Result<Self, FetchError> {
        let url = url.into();
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| FetchError::Refused(format!("not a URL ({e})")))?;
        let shown = shown(&parsed);
        match parsed.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            "http" => {
                return Err(FetchError::Refused(format!(
                    "{shown} is plain HTTP: the API key would travel in clear (use https://)"
                )));
            }
            other => {
                return Err(FetchError::Refused(format!(
                    "{shown}: scheme {other} is not HTTP(S)"
                )));
            }
        }
        let client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .user_agent(concat!("sluice-fetch/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::custom(same_origin_only))
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self {
            client,
            url,
            shown,
            auth: auth.map(|(header, key)| (header, Mutex::new(key))),
            key_source: None,
            policy,
        })
    }

    /// Re-reads the key from `source` (secret `name`) once per fetch when the API answers
    /// 401: a rotated key is picked up without a cold start.
    pub fn with_key_source(mut self, source: Arc<dyn SecretSource>, name: String) -> Self {
        self.key_source = Some((source, name));
        self
    }

    fn key(&self) -> Option<(&str, Secret)> {
        self.auth.as_ref().map(|(header, key)| {
            let key = key.lock().unwrap_or_else(|p| p.into_inner()).clone();
            (header.as_str(), key)
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .policy
            .base_delay
            .saturating_mul(1 << attempt.min(10))
            .min(self.policy.max_delay);
        cap.mul_f64(0.5 + 0.5 * fastrand::f64())
    }
}

/// A URL as logs and errors may show it: scheme, host, port and path only.
fn shown(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Follows a redirect (at most 5) only to the origin the request started at; any other stops,
/// and the 3xx becomes a [`FetchError::Refused`].
fn same_origin_only(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let first = attempt.previous().first().map(reqwest::Url::origin);
    if attempt.previous().len() > 5 || first != Some(attempt.url().origin()) {
        attempt.stop()
    } else {
        attempt.follow()
    }
}

/// `Retry-After` in seconds (the HTTP-date form falls back to backoff).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[async_trait]
impl ApiSource for HttpApiSource {
    async fn fetch(&self) -> Result<Vec<u8>, FetchError> {
        let mut last = String::new();
        let mut refreshed = false;
        let mut attempt = 0;
        while attempt < self.policy.max_attempts {
            if attempt > 0 {
                tracing::info!(attempt, url = %self.shown, %last, "retrying");
            }
            let mut request = self.client.get(&self.url);
            if let Some((header, key)) = self.key() {
                request = request.header(header, key.expose());
            }
            let wait =
                match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        if status.is_success() {
                            return response.bytes().await.map(|b| b.to_vec()).map_err(|e| {
                                FetchError::Transport(format!("reading the body: {e}"))
                            });
                        }
                        if status.is_redirection() {
                            let to = response
                                .headers()
                                .get(reqwest::header::LOCATION)
                                .and_then(|l| l.to_str().ok())
                                .and_then(|l| response.url().join(l).ok())
                                .map_or_else(|| "elsewhere".to_string(), |u| shown(&u));
                            return Err(FetchError::Refused(format!(
                                "{} redirects to {to}, another origin: the key is not sent there",
                                self.shown
                            )));
                        }
                        if status == StatusCode::UNAUTHORIZED
                            && !refreshed
                            && let (Some((source, name)), Some((_, key))) =
                                (&self.key_source, &self.auth)
                        {
                            // The key may have been rotated since the cold start: read it again,
                            // once, and try at once.
                            refreshed = true;
                            let fresh = source.refresh(name).await.map_err(|e| {
                                FetchError::Transport(format!("re-reading the API key: {e}"))
                            })?;
                            *key.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
                            tracing::info!(url = %self.shown, "401: re-read the API key");
                            continue;
                        }
                        let retryable =
                            status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                        let hinted = retry_after(response.headers());
                        let body = response.text().await.unwrap_or_default();
                        let snippet: String = body.chars().take(300).collect();
                        if !retryable {
                            return Err(FetchError::Status {
                                status: status.as_u16(),
                                body: snippet,
                            });
                        }
                        last = format!("HTTP {status}: {snippet}");
                        hinted
                            .unwrap_or_else(|| self.backoff(attempt))
                            .min(self.policy.max_delay)
                    }
                    Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                        last = if e.is_timeout() {
                            format!("timed out after {:?}", self.policy.timeout)
                        } else {
                            e.without_url().to_string()
                        };
                        self.backoff(attempt)
                    }
                    // reqwest's errors name the URL, query included: say what failed without it.
                    Err(e) => {
                        return Err(FetchError::Transport(format!(
                            "{}: {}",
                            self.shown,
                            e.without_url()
                        )));
                    }
                };
            if attempt + 1 < self.policy.max_attempts {
                tokio::time::sleep(wait).await;
            }
            attempt += 1;
        }
        Err(FetchError::GaveUp {
            attempts: self.policy.max_attempts,
            last,
        })
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}
