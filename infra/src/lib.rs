//! sluice-infra: every byte sluice reads or writes outside its own memory goes through one of
//! four small traits, each with a local backend here and a cloud backend beside it.
//!
//! # Layout
//! - [`store`]: [`store::ObjectStore`] — the lake and function state (S3, local directory).
//! - [`sink`]: [`sink::EventSink`] — where generate/fetch put events (Kinesis, Event Hubs, local log).
//! - [`notify`]: [`notify::Notifier`] — where alerts go (SNS, SMTP, console, JSONL outbox).
//! - [`config`]: environment variables read at cold start, with errors that name them.
//! - [`metrics`]: counters the handlers bump, for progress output and logs.
//! - [`secret`]: [`secret::SecretSource`] — API keys (Secrets Manager, environment).
//! - [`streams`]: stream definitions read from the store at cold start.
//! - `source` (with `aws`): a Kinesis shard's records read again between two positions.

pub mod config;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod metrics;
pub mod notify;
pub mod secret;
pub mod sink;
#[cfg(feature = "aws")]
pub mod source;
pub mod store;
pub mod streams;
