//! The aggregate Lambda: glue only. Clients and settings are built once per cold start and lent
//! to every invocation; the handler is `sluice_aggregate::handle`.
//! The Kinesis trigger must enable `ReportBatchItemFailures`.

use aws_lambda_events::event::kinesis::KinesisEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use sluice_aggregate::{Deps, handle};
use sluice_infra::lambda::{fail_init, init_logging};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let deps = Deps::from_env()
        .await
        .unwrap_or_else(|e| fail_init("aggregate", &e));
    lambda_runtime::run(service_fn(|event: LambdaEvent<KinesisEvent>| {
        let deps = &deps;
        async move {
            let response = handle(event.payload, deps).await?;
            tracing::info!(metrics = ?deps.metrics.snapshot(), "invocation done");
            Ok::<_, lambda_runtime::Diagnostic>(response)
        }
    }))
    .await
}
