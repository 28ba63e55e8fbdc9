terraform {
  required_version = ">= 1.5.0"

  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.x: azurerm_eventhub.namespace_id, azurerm_kusto_script.script_content and
      # azurerm_kusto_eventhub_data_connection.identity_id.
      version = ">= 4.0"
    }
  }
}
