//! The generate Lambda: glue only. Triggered by an EventBridge schedule; the handler is
//! `sluice_generate::handle`.

use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use sluice_generate::{Deps, handle};
use sluice_infra::lambda::{fail_init, init_logging};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let deps = Deps::from_env()
        .await
        .unwrap_or_else(|e| fail_init("generate", &e));
    lambda_runtime::run(service_fn(|event: LambdaEvent<CloudWatchEvent>| {
        let deps = &deps;
        async move { Ok::<_, lambda_runtime::Diagnostic>(handle(event.payload, deps).await?) }
    }))
    .await
}
