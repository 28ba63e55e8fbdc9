output "eventhubs_namespace" {
  description = "SLUICE_EVENTHUBS_NAMESPACE for the producers."
  value       = module.sluice.eventhubs_namespace
}

output "eventhub_name" {
  description = "SLUICE_EVENTHUBS_NAME for the producers."
  value       = module.sluice.eventhub_name
}

output "send_connection_string" {
  description = "Send-only connection string; put it into the AWS secret eventhubs_secret_arn."
  value       = module.sluice.send_connection_string
  sensitive   = true
}

output "key_vault_name" {
  description = "Key Vault holding the connection string and the fetch API key placeholder."
  value       = module.sluice.key_vault_name
}

output "kusto_cluster_uri" {
  description = "Kusto cluster URI."
  value       = module.sluice.kusto_cluster_uri
}

output "kusto_database" {
  description = "Kusto database name."
  value       = module.sluice.kusto_database
}
