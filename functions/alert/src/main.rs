//! The alert Lambda: glue only. Rules, the S3 client and the SNS client are loaded once per cold
//! start; the handler is `sluice_alert::handle`, triggered by S3 object-created notifications.

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{LambdaEvent, service_fn};
use sluice_alert::{Deps, handle};
use sluice_infra::lambda::{fail_init, init_logging};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let deps = Deps::from_env()
        .await
        .unwrap_or_else(|e| fail_init("alert", &e));
    lambda_runtime::run(service_fn(|event: LambdaEvent<S3Event>| {
        let deps = &deps;
        async move { Ok::<_, lambda_runtime::Diagnostic>(handle(event.payload, deps).await?) }
    }))
    .await
}
