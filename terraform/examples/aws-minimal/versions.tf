terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # The module's own minimum (modules/aws/versions.tf): 5.79 for provisioned_poller_config.
      version = ">= 5.79"
    }
  }
}
