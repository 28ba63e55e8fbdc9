# Key Vault for the producer secrets. RBAC authorization; the identity running Terraform is
# made Key Vault Secrets Officer so it can write the send connection string. The firewall
# denies everything except Azure trusted services and var.allowed_ip_ranges (add the address
# Terraform runs from).
resource "azurerm_key_vault" "this" {
  #checkov:skip=CKV_AZURE_189:Terraform writes the send connection string from wherever it runs; access is limited by the firewall (default Deny, only var.allowed_ip_ranges and Azure trusted services) and RBAC instead.
  #checkov:skip=CKV2_AZURE_32:A private endpoint needs a VNet and a Terraform runner inside it; this module has neither. The firewall (default Deny) and RBAC restrict access.
  name                          = local.key_vault_name
  location                      = azurerm_resource_group.this.location
  resource_group_name           = azurerm_resource_group.this.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  enable_rbac_authorization     = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 7
  public_network_access_enabled = true

  network_acls {
    bypass         = "AzureServices"
    default_action = "Deny"
    ip_rules       = var.allowed_ip_ranges
  }

  tags = local.tags
}

resource "azurerm_role_assignment" "deployer_secrets_officer" {
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

# The send-only connection string of the hub: what SLUICE_EVENTHUBS_SECRET_ARN points at on AWS
# (copy it into that Secrets Manager secret) or what an Azure-hosted producer reads.
resource "azurerm_key_vault_secret" "eventhubs_send" {
  #checkov:skip=CKV_AZURE_41:The value is re-read from the SAS rule on every apply; rotating the rule key and re-applying is the rotation, an expiry date would only stop producers without rotating anything.
  name         = "eventhubs-send-connection-string"
  value        = azurerm_eventhub_authorization_rule.this["send"].primary_connection_string
  key_vault_id = azurerm_key_vault.this.id
  content_type = "text/plain; Event Hubs send-only connection string"
  tags         = local.tags

  depends_on = [azurerm_role_assignment.deployer_secrets_officer]
}

# Placeholder for the fetch API key: the real value is set outside Terraform
# (az keyvault secret set --vault-name <vault> --name fetch-api-key --value ...) and ignored here.
resource "azurerm_key_vault_secret" "fetch_api_key" {
  #checkov:skip=CKV_AZURE_41:Set and rotated outside Terraform by whoever issues the API key; Terraform only creates the placeholder and cannot know the key's expiry.
  name         = "fetch-api-key"
  value        = "set-outside-terraform"
  key_vault_id = azurerm_key_vault.this.id
  content_type = "text/plain; HTTP API key for the fetch function"
  tags         = local.tags

  lifecycle {
    ignore_changes = [value]
  }

  depends_on = [azurerm_role_assignment.deployer_secrets_officer]
}
