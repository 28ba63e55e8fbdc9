//! The aggregate Lambda: glue only. Clients and settings are built once per cold start and lent
//! to every invocation; the handler is `sluice_aggregate::handle`.
//! The Kinesis trigger must enable `ReportBatchItemFailures`.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::value::RawValue;
use sluice_aggregate::{Deps, handle};
use sluice_infra::config::optional_env;
use sluice_infra::lambda::{fail_init, init_logging};
use sluice_infra::metrics::emf_line;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let deps = Deps::from_env()
        .await
        .unwrap_or_else(|e| fail_init("aggregate", &e));
    // The payload stays raw text here: the handler parses it borrowing every string
    // (sluice_aggregate::payload), which is most of the cost of a large batch otherwise.
    let function = optional_env("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "aggregate".into());
    // Metrics go to the `sluice` namespace, one series per function name (the dimension).
    let namespace = "sluice".to_string();
    let last = std::sync::Mutex::new(deps.metrics.snapshot());
    lambda_runtime::run(service_fn(|event: LambdaEvent<Box<RawValue>>| {
        let (deps, last, function, namespace) = (&deps, &last, &function, &namespace);
        async move {
            let result = handle(event.payload.get().as_bytes(), deps).await;
            // What this invocation did, as CloudWatch metrics (embedded metric format on
            // stdout), whether it succeeded or not.
            let now = deps.metrics.snapshot();
            let values = {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                let values = now.since(&last);
                *last = now;
                values
            };
            let ms = chrono::Utc::now().timestamp_millis();
            println!("{}", emf_line(namespace, function, &values, ms));
            Ok::<_, lambda_runtime::Diagnostic>(result?)
        }
    }))
    .await
}
