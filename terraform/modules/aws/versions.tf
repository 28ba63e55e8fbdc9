terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.32 added aws_lambda_function.logging_config (explicit log group per function).
      # 5.79 added aws_lambda_event_source_mapping.provisioned_poller_config (kafka.tf,
      # kafka_provisioned_pollers; hashicorp/terraform-provider-aws#40303): an older provider
      # rejects the block's name even when no mapping uses it.
      version = ">= 5.79"
    }
  }
}
