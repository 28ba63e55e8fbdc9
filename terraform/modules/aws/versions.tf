terraform {
  # 1.5: optional() object attributes, `check` blocks and stable for_each over maps of objects.
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.32: aws_lambda_function.logging_config; 5.x: aws_scheduler_schedule with kms_key_arn.
      version = ">= 5.32"
    }
  }
}
