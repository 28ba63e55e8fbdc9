################################################################################
# General
################################################################################

variable "name" {
  description = "Name prefix for every resource (lower case letters, digits and hyphens). Globally unique names (namespace, Key Vault, Kusto cluster) get a stable 6-character suffix."
  type        = string
  default     = "sluice"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 characters: lower case letters, digits and hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "location" {
  description = "Azure region for every resource, e.g. westeurope."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

variable "allowed_ip_ranges" {
  description = "Public IP ranges (CIDR) allowed through the Key Vault firewall and to the Kusto cluster. Include the address Terraform runs from, or it cannot write the Key Vault secrets."
  type        = list(string)
  default     = []
}

################################################################################
# Event Hubs
################################################################################

variable "eventhubs_capacity" {
  description = "Throughput units of the Standard Event Hubs namespace (1 TU = 1 MB/s or 1,000 events/s in)."
  type        = number
  default     = 1
}

variable "eventhubs_partition_count" {
  description = "Partitions of the hub (fixed after creation on the Standard tier)."
  type        = number
  default     = 4

  validation {
    condition     = var.eventhubs_partition_count >= 1 && var.eventhubs_partition_count <= 32
    error_message = "eventhubs_partition_count must be between 1 and 32."
  }
}

variable "eventhubs_retention_days" {
  description = "Message retention of the hub in days (1-7 on the Standard tier)."
  type        = number
  default     = 1

  validation {
    condition     = var.eventhubs_retention_days >= 1 && var.eventhubs_retention_days <= 7
    error_message = "eventhubs_retention_days must be between 1 and 7."
  }
}

variable "extra_consumer_groups" {
  description = "Consumer groups besides \"kusto\" (which feeds Data Explorer), e.g. for a debugging reader."
  type        = list(string)
  default     = []
}

################################################################################
# Azure Data Explorer (Kusto)
################################################################################

variable "kusto_sku" {
  description = "Kusto cluster SKU. The default dev SKU has no SLA and one node; use e.g. Standard_E2ads_v5 with capacity >= 2 for production."
  type        = string
  default     = "Dev(No SLA)_Standard_E2a_v4"
}

variable "kusto_capacity" {
  description = "Kusto cluster instance count (1 for the dev SKU)."
  type        = number
  default     = 1
}

variable "kusto_double_encryption" {
  description = "Enable infrastructure (double) encryption on the Kusto cluster. Can only be set when the cluster is created."
  type        = bool
  default     = true
}

variable "kusto_auto_stop" {
  description = "Let Azure stop the Kusto cluster after a long idle period (saves cost on test clusters)."
  type        = bool
  default     = true
}

variable "kusto_hot_cache_period" {
  description = "ISO 8601 period the database keeps in hot cache, e.g. P7D."
  type        = string
  default     = "P7D"
}

variable "kusto_soft_delete_period" {
  description = "ISO 8601 period after which rows are deleted from the database, e.g. P31D."
  type        = string
  default     = "P31D"
}
