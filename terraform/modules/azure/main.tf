# sluice on Azure: Event Hubs ingestion into Azure Data Explorer (Kusto).
#
#   producers (generate / fetch with SLUICE_SINK=eventhubs, send-only SAS connection string)
#     → Event Hub → consumer group "kusto" → data connection (MULTIJSON, mapping sluice_events_json)
#     → table sluice_events → update policies → trades / telemetry / clickstream
#
# Files by concern:
#   eventhubs.tf  namespace, hub, consumer groups, send-only and listen-only SAS rules (one of
#                 them for the AWS aggregate function's Kafka consumer)
#   keyvault.tf   Key Vault with the send connection string and the fetch API key placeholder
#   kusto.tf      cluster, database, table scripts (kusto/*.kql) and the Event Hub data connection

data "azurerm_client_config" "current" {}

locals {
  # Globally unique names get a short, stable suffix derived from the subscription, so two
  # deployments of the same `name` in different subscriptions do not collide.
  suffix = substr(sha1("${data.azurerm_client_config.current.subscription_id}/${var.name}/${var.location}"), 0, 6)

  # Kusto cluster names: 4-22 lower case letters and digits.
  kusto_cluster_name = "${substr(replace(var.name, "-", ""), 0, 16)}${local.suffix}"
  # Key Vault names: 3-24 letters, digits and hyphens.
  key_vault_name = "${trimsuffix(substr(var.name, 0, 14), "-")}-kv-${local.suffix}"

  tags = merge({ project = "sluice" }, var.tags)
}

resource "azurerm_resource_group" "this" {
  name     = "${var.name}-rg"
  location = var.location
  tags     = local.tags
}
