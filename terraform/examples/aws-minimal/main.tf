# The smallest complete sluice deployment on AWS: generate → Kinesis → aggregate → S3 lake
# (Glue/Athena) → alert → SNS email. fetch is deployed but its schedule stays disabled until
# fetch_url is set.
#
# Build the four zips first, from the repository root:
#   bash terraform/build-lambdas.sh
# which writes target/lambda/{generate,fetch,aggregate,alert}/bootstrap.zip.

provider "aws" {
  region = var.region

  default_tags {
    tags = var.tags
  }
}

module "sluice" {
  source = "../../modules/aws"

  name          = var.name
  source_dir    = abspath("${path.root}/../../..")
  architecture  = var.architecture
  force_destroy = var.force_destroy

  generate_rate      = var.generate_rate
  generate_scenarios = var.generate_scenarios

  # Stream definitions: by default the repository's streams/*.toml. For your own, point
  # streams_dir at their directory and glue_tables_json at the output of
  # `sluice schema --format glue --streams <dir>` (modules/aws/README.md, "Stream definitions").
  # streams_dir      = abspath("${path.root}/streams")
  # glue_tables_json = abspath("${path.root}/glue_tables.json")

  alert_emails              = var.alert_emails
  alert_email_filter_policy = var.alert_email_filter_policy

  lambda_reserved_concurrency = var.lambda_reserved_concurrency
}
