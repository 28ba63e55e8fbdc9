variable "subscription_id" {
  description = "Azure subscription to deploy into."
  type        = string
}

variable "location" {
  description = "Azure region, e.g. westeurope."
  type        = string
}

variable "name" {
  description = "Name prefix of every resource."
  type        = string
  default     = "sluice"
}

variable "allowed_ip_ranges" {
  description = "CIDR ranges allowed through the Key Vault firewall and to Kusto; include the address Terraform runs from."
  type        = list(string)
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "eventhubs_partition_count" {
  description = "Partitions of the hub."
  type        = number
  default     = 4
}

variable "kusto_sku" {
  description = "Kusto cluster SKU (the dev SKU has no SLA)."
  type        = string
  default     = "Dev(No SLA)_Standard_E2a_v4"
}

variable "kusto_capacity" {
  description = "Kusto cluster instance count."
  type        = number
  default     = 1
}
