# Event Hubs → Azure Data Explorer ingestion for sluice events. Producers are the AWS
# functions with sink = "eventhubs" (see ../aws-minimal and the module README), or anything
# that sends sluice JSON events with the send-only connection string.

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
}

module "sluice" {
  source = "../../modules/azure"

  name              = var.name
  location          = var.location
  allowed_ip_ranges = var.allowed_ip_ranges
  tags              = var.tags

  eventhubs_partition_count = var.eventhubs_partition_count
  kusto_sku                 = var.kusto_sku
  kusto_capacity            = var.kusto_capacity
}
