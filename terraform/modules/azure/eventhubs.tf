resource "azurerm_eventhub_namespace" "this" {
  name                = "${var.name}-${local.suffix}"
  location            = azurerm_resource_group.this.location
  resource_group_name = azurerm_resource_group.this.name
  sku                 = "Standard"
  capacity            = var.eventhubs_capacity
  minimum_tls_version = "1.2"

  # The AWS producers authenticate with a send-only SAS connection string (Key Vault /
  # Secrets Manager), so SAS (local) authentication stays on and the namespace is reachable
  # from the internet over TLS.
  local_authentication_enabled  = true
  public_network_access_enabled = true

  identity {
    type = "SystemAssigned"
  }

  tags = local.tags
}

resource "azurerm_eventhub" "this" {
  name              = var.name
  namespace_id      = azurerm_eventhub_namespace.this.id
  partition_count   = var.eventhubs_partition_count
  message_retention = var.eventhubs_retention_days
}

# "kusto" feeds the Data Explorer data connection; add more readers in var.extra_consumer_groups.
resource "azurerm_eventhub_consumer_group" "this" {
  for_each = toset(concat(["kusto"], var.extra_consumer_groups))

  name                = each.value
  namespace_name      = azurerm_eventhub_namespace.this.name
  eventhub_name       = azurerm_eventhub.this.name
  resource_group_name = azurerm_resource_group.this.name
}

# Hub-level SAS rules: producers get send only, readers listen only; nothing gets manage.
# "aggregate" is the AWS aggregate function's own listen-only rule for the Kafka endpoint
# (outputs kafka_*), so that consumer can be cut off by regenerating its keys alone.
resource "azurerm_eventhub_authorization_rule" "this" {
  for_each = {
    send      = { send = true, listen = false }
    listen    = { send = false, listen = true }
    aggregate = { send = false, listen = true }
  }

  name                = "${var.name}-${each.key}"
  namespace_name      = azurerm_eventhub_namespace.this.name
  eventhub_name       = azurerm_eventhub.this.name
  resource_group_name = azurerm_resource_group.this.name
  send                = each.value.send
  listen              = each.value.listen
  manage              = false
}
