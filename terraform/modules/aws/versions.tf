terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.32 added aws_lambda_function.logging_config (explicit log group per function).
      version = ">= 5.32"
    }
  }
}
