# sluice on AWS: scheduled producers (generate, fetch) → Kinesis → aggregate → S3 lake
# (Glue + Athena) → alert (S3 notifications) → SNS.
#
# Files by concern:
#   kms.tf      the project's customer-managed key and its key policy
#   s3.tf       lake bucket (+ access-log bucket), lifecycle, notifications to `alert`
#   kinesis.tf  the stream
#   streams.tf  stream definitions (streams_dir/*.toml) uploaded to streams/ in the lake, digest
#   lambda.tf   the four functions, their log groups, environment, triggers (ESM, schedules)
#   kafka.tf    optional MSK / self-managed Kafka (Event Hubs) mappings of aggregate, their IAM
#   iam.tf      one least-privilege role per function, plus the scheduler's role
#   secrets.tf  Secrets Manager secrets whose values are set outside Terraform
#   sqs.tf      the dead-letter queue (ESM on-failure + async invoke failures)
#   glue.tf     database + one table per entry of glue_tables.json (partition projection)
#   athena.tf   workgroup + one named query per queries/*.sql
#   sns.tf      alert topic + email subscriptions
#   alarms.tf   CloudWatch alarms and the dashboard

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  # The four Lambda functions. The key is the `<fn>` word shared by the crate
  # (functions/<fn>), the cargo-lambda output dir (target/lambda/<fn>/bootstrap.zip)
  # and the function-name suffix.
  functions = {
    generate = {
      description = "Scheduled synthetic scenario generator: continues each scenario and sends events to the stream"
    }
    fetch = {
      description = "Scheduled HTTP API poller: maps API items to events and sends them to the stream"
    }
    aggregate = {
      description = "Kinesis consumer: raw, window, anomaly, late and quarantine Parquet objects in the lake"
    }
    alert = {
      description = "S3 notification consumer: evaluates alert rules on new window/anomaly objects and publishes to SNS"
    }
  }

  # Glue/Athena identifiers allow only lower case letters, digits and underscores.
  glue_name = replace(lower(var.name), "-", "_")

  tags = merge({ project = "sluice" }, var.tags)
}
