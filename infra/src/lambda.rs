//! What every Lambda binary does the same way: logging set up for CloudWatch, and init failures
//! reported with the message that names what is wrong.

use lambda_runtime::Diagnostic;

use crate::config::optional_env;

/// Plain-text logs without colours or timestamps (CloudWatch adds them); level from `SLUICE_LOG`
/// as `level` or `target=level` directives separated by commas (`info,sluice_aggregate=debug`).
/// The filter is `tracing_subscriber::filter::Targets`, not `EnvFilter`: the same directives
/// without span and field matching, and without a regex engine in every zip. A filter that does
/// not parse is reported and `info` used.
pub fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let text = optional_env("SLUICE_LOG").unwrap_or_else(|| "info".into());
    let (filter, error) = match text.parse::<tracing_subscriber::filter::Targets>() {
        Ok(filter) => (filter, None),
        Err(e) => (
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::level_filters::LevelFilter::INFO),
            Some(e),
        ),
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_writer(std::io::stderr),
        )
        .with(filter)
        .init();
    if let Some(e) = error {
        tracing::warn!("SLUICE_LOG={text:?} is not a log filter ({e}); logging at info");
    }
}

/// Ends a cold start that cannot work: the message goes to stderr (the function's log, whatever
/// `SLUICE_LOG` filters) and the process exits non-zero, which Lambda reports as an init error.
pub fn fail_init(function: &str, error: &dyn std::fmt::Display) -> ! {
    eprintln!("{function}: cannot start: {error}");
    std::process::exit(1)
}

/// A handler error as Lambda reports it; `error_type` says whether a retry can help.
pub fn diagnostic(retryable: bool, error: &dyn std::fmt::Display) -> Diagnostic {
    Diagnostic {
        error_type: if retryable {
            "Retryable"
        } else {
            "NonRetryable"
        }
        .into(),
        error_message: error.to_string(),
    }
}

/// `impl From<$error> for lambda_runtime::Diagnostic` for a handler error with
/// `is_retryable()`: the crate defining the error must write the impl (orphan rule), and this
/// keeps the four identical.
#[macro_export]
macro_rules! lambda_diagnostic {
    ($error:ty) => {
        impl From<$error> for lambda_runtime::Diagnostic {
            fn from(e: $error) -> Self {
                $crate::lambda::diagnostic(e.is_retryable(), &e)
            }
        }
    };
}
