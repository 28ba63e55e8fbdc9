# Secrets whose values are set outside Terraform (so they never land in the state file):
#   aws secretsmanager put-secret-value --secret-id <arn> --secret-string '...'
# - fetch:     the HTTP API key fetch sends in SLUICE_FETCH_AUTH_HEADER.
# - eventhubs: (sink = eventhubs only) the Event Hub's send-only connection string, e.g. the
#              azure module's `send_connection_string` output.
locals {
  secrets = merge(
    {
      fetch = "API key of the HTTP API polled by ${var.name}-fetch"
    },
    var.sink == "eventhubs" ? {
      eventhubs = "Send-only Event Hubs connection string used by ${var.name}-generate and ${var.name}-fetch"
    } : {}
  )
}

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:Third-party API key / Event Hubs SAS string: rotated at their issuer and then written here with put-secret-value; Secrets Manager has no rotation function for them.
  for_each = local.secrets

  name                    = "${var.name}/${each.key}"
  description             = each.value
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}
