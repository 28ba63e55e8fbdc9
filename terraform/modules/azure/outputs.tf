output "resource_group_name" {
  description = "Resource group holding every resource of the module."
  value       = azurerm_resource_group.this.name
}

output "eventhubs_namespace" {
  description = "Event Hubs namespace host name (SLUICE_EVENTHUBS_NAMESPACE)."
  value       = "${azurerm_eventhub_namespace.this.name}.servicebus.windows.net"
}

output "eventhub_name" {
  description = "Event Hub name (SLUICE_EVENTHUBS_NAME)."
  value       = azurerm_eventhub.this.name
}

output "consumer_groups" {
  description = "Consumer groups of the hub; \"kusto\" feeds Data Explorer."
  value       = sort(keys(azurerm_eventhub_consumer_group.this))
}

output "send_connection_string" {
  description = "Send-only SAS connection string of the hub: store it in the AWS secret named by SLUICE_EVENTHUBS_SECRET_ARN."
  value       = azurerm_eventhub_authorization_rule.this["send"].primary_connection_string
  sensitive   = true
}

output "listen_connection_string" {
  description = "Listen-only SAS connection string of the hub, for readers other than Data Explorer."
  value       = azurerm_eventhub_authorization_rule.this["listen"].primary_connection_string
  sensitive   = true
}

# What the AWS module needs to read the hub through its Kafka endpoint with aggregate
# (self-managed Kafka mapping, SASL/PLAIN over TLS, user name $ConnectionString):
# kafka_bootstrap_servers = [kafka_bootstrap_server], kafka_topics = [kafka_topic],
# eventhubs_kafka_connection_string = kafka_listen_connection_string.
output "kafka_bootstrap_server" {
  description = "Kafka endpoint of the namespace, <namespace>.servicebus.windows.net:9093 (the AWS module's kafka_bootstrap_servers)."
  value       = "${azurerm_eventhub_namespace.this.name}.servicebus.windows.net:9093"
}

output "kafka_topic" {
  description = "Kafka topic of the hub: the Event Hub's name (the AWS module's kafka_topics)."
  value       = azurerm_eventhub.this.name
}

output "kafka_listen_connection_string" {
  description = "Listen-only SAS connection string of the hub for the AWS aggregate function's Kafka consumer (the SASL/PLAIN password; the AWS module's eventhubs_kafka_connection_string)."
  value       = azurerm_eventhub_authorization_rule.this["aggregate"].primary_connection_string
  sensitive   = true
}

output "key_vault_name" {
  description = "Key Vault holding eventhubs-send-connection-string and the fetch-api-key placeholder."
  value       = azurerm_key_vault.this.name
}

output "key_vault_uri" {
  description = "URI of the Key Vault."
  value       = azurerm_key_vault.this.vault_uri
}

output "kusto_cluster_uri" {
  description = "Kusto cluster URI (connect Kusto Explorer or the web UI here)."
  value       = azurerm_kusto_cluster.this.uri
}

output "kusto_database" {
  description = "Kusto database with sluice_events, trades, telemetry and clickstream."
  value       = azurerm_kusto_database.this.name
}
