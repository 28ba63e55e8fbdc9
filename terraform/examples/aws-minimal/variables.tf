variable "region" {
  description = "AWS region to deploy into, e.g. eu-west-1."
  type        = string
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
  default     = "sluice"
}

variable "tags" {
  description = "Default tags for every resource the provider creates."
  type        = map(string)
  default     = {}
}

variable "architecture" {
  description = "Lambda architecture: x86_64 (default build) or arm64 (needs `bash terraform/build-lambdas.sh --arm64`)."
  type        = string
  default     = "x86_64"
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to delete non-empty buckets (fine for a trial deployment)."
  type        = bool
  default     = true
}

variable "generate_rate" {
  description = "Events per second per scenario produced by generate."
  type        = number
  default     = 20
}

variable "generate_scenarios" {
  description = "Scenarios produced by generate."
  type        = list(string)
  default     = ["trades", "telemetry", "clickstream"]
}

variable "alert_emails" {
  description = "Email addresses that receive alerts (each must confirm the subscription mail)."
  type        = list(string)
  default     = []
}

variable "alert_email_filter_policy" {
  description = "Optional SNS filter policy JSON for the email subscriptions, e.g. {\"severity\":[\"critical\"]}. Empty delivers every alert."
  type        = string
  default     = ""
}

variable "lambda_reserved_concurrency" {
  description = "Reserved concurrency per function (-1 = unreserved). New accounts with a concurrency quota of 10 must use -1 everywhere."
  type        = map(number)
  default = {
    generate  = 1
    fetch     = 1
    aggregate = -1
    alert     = -1
  }
}
