# Alerts are published with message attributes severity, scenario and key, so each
# subscription can filter. Example filter policy (only critical trades alerts):
#   alert_email_filter_policy = jsonencode({ severity = ["critical"], scenario = ["trades"] })
resource "aws_sns_topic" "this" {
  name              = "${var.name}-alerts"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

# Each address gets a confirmation mail; nothing is delivered until it is confirmed.
resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alert_emails)

  topic_arn           = aws_sns_topic.this.arn
  protocol            = "email"
  endpoint            = each.value
  filter_policy       = var.alert_email_filter_policy != "" ? var.alert_email_filter_policy : null
  filter_policy_scope = var.alert_email_filter_policy != "" ? "MessageAttributes" : null
}
