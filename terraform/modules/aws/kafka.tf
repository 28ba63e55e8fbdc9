################################################################################
# aggregate: optional Kafka event source mappings (Amazon MSK, self-managed Kafka, and Azure
# Event Hubs through its Kafka endpoint), their permissions, and the Event Hubs SASL secret.
#
# Off by default: with msk_cluster_arn = "" and kafka_bootstrap_servers = [] nothing here is
# created and aggregate's role gets no statement from it (Kinesis-only deployments plan the same
# as before). aggregate handles both payloads ("eventSource":"aws:kafka" and
# "SelfManagedKafka") on the Kinesis path: a partition is the shard (<topic>-<partition>), the
# offset its position, and the state lives under the cluster (msk-<the ARN's UUID>, or kafka-<a
# hash of the bootstrap servers>).
#
# Failures: aggregate fails the whole invocation on any error, because Lambda reads Kafka partial
# batch responses only in provisioned mode; with kafka_provisioned_pollers > 0 it reports the
# failed partition and offset instead (ReportBatchItemFailures, SLUICE_KAFKA_PARTIAL_BATCH).
# There is no on-failure destination: the DLQ's replay path understands Kinesis ranges only. A Kafka batch that
# keeps failing is therefore retried with Lambda's Kafka defaults (no retry limit, no maximum
# record age), holding back its partition until it succeeds, and aggregate's Errors alarm fires
# meanwhile (https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html).
################################################################################

locals {
  msk_enabled                = var.msk_cluster_arn != ""
  self_managed_kafka_enabled = length(var.kafka_bootstrap_servers) > 0
  # Whether the Event Hubs secret is created: only its emptiness is looked at, so unmarking is
  # safe (count must not depend on a sensitive value's contents).
  eventhubs_kafka = nonsensitive(var.eventhubs_kafka_connection_string != "")

  # Lambda reads one topic per mapping, and a consumer group id must be unique among the
  # account's Kafka mappings and cannot be changed in place: one mapping and group per topic.
  kafka_consumer_group_prefix = var.kafka_consumer_group_prefix != "" ? var.kafka_consumer_group_prefix : "${var.name}-aggregate"

  # topic => consumer group id
  msk_mappings                = local.msk_enabled ? { for t in var.kafka_topics : t => "${local.kafka_consumer_group_prefix}-msk-${t}" } : {}
  self_managed_kafka_mappings = local.self_managed_kafka_enabled ? { for t in var.kafka_topics : t => "${local.kafka_consumer_group_prefix}-kafka-${t}" } : {}

  # Event Hubs' Kafka endpoint speaks SASL/PLAIN over TLS only, which Lambda calls BASIC_AUTH.
  kafka_sasl_mechanism  = var.kafka_sasl_mechanism != "" ? var.kafka_sasl_mechanism : (local.eventhubs_kafka ? "BASIC_AUTH" : "SASL_SCRAM_512_AUTH")
  kafka_sasl_secret_arn = local.eventhubs_kafka ? aws_secretsmanager_secret.eventhubs_kafka[0].arn : var.kafka_sasl_secret_arn

  # MSK IAM access control resources: topic and group ARNs sit beside the cluster's
  # (arn:...:cluster/<name>/<uuid> -> arn:...:topic/<name>/<uuid>/<topic>).
  msk_topic_arns = [for t in keys(local.msk_mappings) : "${replace(var.msk_cluster_arn, ":cluster/", ":topic/")}/${t}"]
  msk_group_arns = [for g in values(local.msk_mappings) : "${replace(var.msk_cluster_arn, ":cluster/", ":group/")}/${g}"]
}

################################################################################
# Event Hubs SASL credentials (only when eventhubs_kafka_connection_string is set)
################################################################################

# Unlike the secrets in secrets.tf, this value comes from a variable and so is stored in the
# Terraform state (as it already is in the azure module's state). Pass kafka_sasl_secret_arn
# instead to keep it out.
resource "aws_secretsmanager_secret" "eventhubs_kafka" {
  #checkov:skip=CKV2_AWS_57:Event Hubs SAS string: rotated by regenerating the SAS rule's key in Azure and applying again; Secrets Manager has no rotation function for it.
  count = local.eventhubs_kafka ? 1 : 0

  name                    = "${var.name}/eventhubs-kafka"
  description             = "SASL/PLAIN credentials ($ConnectionString and a listen-only connection string) with which ${var.name}-aggregate reads Event Hubs' Kafka endpoint"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "eventhubs_kafka" {
  count = local.eventhubs_kafka ? 1 : 0

  secret_id = aws_secretsmanager_secret.eventhubs_kafka[0].id
  # Event Hubs takes the literal user name $ConnectionString and the connection string as the
  # password (https://learn.microsoft.com/azure/event-hubs/azure-event-hubs-kafka-overview).
  secret_string = jsonencode({
    username = "$ConnectionString"
    password = var.eventhubs_kafka_connection_string
  })
}

################################################################################
# Mappings
################################################################################

resource "aws_lambda_event_source_mapping" "msk" {
  for_each = local.msk_mappings

  function_name     = aws_lambda_function.this["aggregate"].arn
  event_source_arn  = var.msk_cluster_arn
  topics            = [each.key]
  starting_position = var.kafka_starting_position
  batch_size        = var.kafka_batch_size

  amazon_managed_kafka_event_source_config {
    consumer_group_id = each.value
  }

  # With provisioned pollers Lambda reads partial batch responses: aggregate then names the
  # failed partition and offset (SLUICE_KAFKA_PARTIAL_BATCH) instead of failing the invocation.
  function_response_types = var.kafka_provisioned_pollers > 0 ? ["ReportBatchItemFailures"] : null

  dynamic "provisioned_poller_config" {
    for_each = var.kafka_provisioned_pollers > 0 ? [1] : []
    content {
      minimum_pollers = var.kafka_provisioned_pollers
      maximum_pollers = var.kafka_maximum_pollers
    }
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = length(each.value) <= 200
      error_message = "The consumer group id ${each.value} is longer than Lambda's 200 characters: shorten kafka_consumer_group_prefix."
    }
  }

  # Lambda checks the role's MSK and network permissions when it creates the mapping.
  depends_on = [aws_iam_role_policy.this]
}

resource "aws_lambda_event_source_mapping" "kafka" {
  for_each = local.self_managed_kafka_mappings

  function_name     = aws_lambda_function.this["aggregate"].arn
  topics            = [each.key]
  starting_position = var.kafka_starting_position
  batch_size        = var.kafka_batch_size

  self_managed_event_source {
    endpoints = {
      KAFKA_BOOTSTRAP_SERVERS = join(",", var.kafka_bootstrap_servers)
    }
  }

  self_managed_kafka_event_source_config {
    consumer_group_id = each.value
  }

  # With provisioned pollers Lambda reads partial batch responses: aggregate then names the
  # failed partition and offset (SLUICE_KAFKA_PARTIAL_BATCH) instead of failing the invocation.
  function_response_types = var.kafka_provisioned_pollers > 0 ? ["ReportBatchItemFailures"] : null

  source_access_configuration {
    type = local.kafka_sasl_mechanism
    uri  = local.kafka_sasl_secret_arn
  }

  dynamic "provisioned_poller_config" {
    for_each = var.kafka_provisioned_pollers > 0 ? [1] : []
    content {
      minimum_pollers = var.kafka_provisioned_pollers
      maximum_pollers = var.kafka_maximum_pollers
    }
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = length(each.value) <= 200
      error_message = "The consumer group id ${each.value} is longer than Lambda's 200 characters: shorten kafka_consumer_group_prefix."
    }
  }

  # The secret must hold its value (and the role may read it) before Lambda first connects.
  depends_on = [
    aws_iam_role_policy.this,
    aws_secretsmanager_secret_version.eventhubs_kafka,
  ]
}

################################################################################
# aggregate's permissions for the mappings (merged into its policy in iam.tf)
################################################################################

data "aws_iam_policy_document" "kafka" {
  # What Lambda's MSK mapping calls with the function's role: the cluster and its brokers
  # (https://docs.aws.amazon.com/lambda/latest/dg/with-msk-permissions.html, the actions of the
  # AWSLambdaMSKExecutionRole managed policy). DescribeClusterV2 is the one serverless clusters
  # need; DescribeCluster is kept for provisioned ones.
  dynamic "statement" {
    for_each = local.msk_enabled ? [1] : []
    content {
      sid       = "MskCluster"
      effect    = "Allow"
      actions   = ["kafka:DescribeCluster", "kafka:DescribeClusterV2", "kafka:GetBootstrapBrokers"]
      resources = [var.msk_cluster_arn]
    }
  }

  # Lambda reaches the brokers through network interfaces it creates in the cluster's subnets,
  # with the function's role. Creating and deleting them is limited to this account and region
  # (the subnets and security groups are the cluster's, not known here).
  dynamic "statement" {
    for_each = local.msk_enabled ? [1] : []
    content {
      sid       = "MskNetworkInterfaces"
      effect    = "Allow"
      actions   = ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"]
      resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:*"]
    }
  }

  # EC2 Describe* actions have no resource-level permissions: they only accept Resource "*"
  # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonec2.html).
  dynamic "statement" {
    for_each = local.msk_enabled ? [1] : []
    content {
      sid    = "MskNetworkDescribe"
      effect = "Allow"
      actions = [
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
      ]
      resources = ["*"]
    }
  }

  # IAM access control on the cluster (Lambda uses it when the mapping has no secret): connect,
  # read the topics, and join and commit in the mappings' own consumer groups only
  # (https://docs.aws.amazon.com/lambda/latest/dg/msk-cluster-auth.html). Unused, and harmless,
  # on a cluster without IAM access control.
  dynamic "statement" {
    for_each = local.msk_enabled ? [1] : []
    content {
      sid       = "MskIamAuthConnect"
      effect    = "Allow"
      actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeClusterDynamicConfiguration"]
      resources = [var.msk_cluster_arn]
    }
  }

  dynamic "statement" {
    for_each = local.msk_enabled ? [1] : []
    content {
      sid       = "MskIamAuthReadTopics"
      effect    = "Allow"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
      resources = local.msk_topic_arns
    }
  }

  dynamic "statement" {
    for_each = local.msk_enabled ? [1] : []
    content {
      sid       = "MskIamAuthConsumerGroups"
      effect    = "Allow"
      actions   = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
      resources = local.msk_group_arns
    }
  }

  # The self-managed mapping reads its SASL credentials with the function's role
  # (https://docs.aws.amazon.com/lambda/latest/dg/with-kafka-permissions.html). kms:Decrypt on
  # the project key, which encrypts the Event Hubs secret, is in "common".
  dynamic "statement" {
    for_each = local.self_managed_kafka_enabled ? [1] : []
    content {
      sid       = "KafkaSaslSecret"
      effect    = "Allow"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [local.kafka_sasl_secret_arn]
    }
  }

  # Input checks that span several variables (variable validations may only look at their own
  # variable before Terraform 1.9). Here because this document is always read, even when no
  # mapping would be created, so an incomplete setting fails the plan instead of doing nothing.
  lifecycle {
    precondition {
      condition     = !(local.msk_enabled || local.self_managed_kafka_enabled) || length(var.kafka_topics) > 0
      error_message = "msk_cluster_arn or kafka_bootstrap_servers is set but kafka_topics is empty: name the topics aggregate should read."
    }
    precondition {
      condition     = !local.self_managed_kafka_enabled || (var.kafka_sasl_secret_arn != "") != local.eventhubs_kafka
      error_message = "kafka_bootstrap_servers is set: give exactly one of kafka_sasl_secret_arn (a secret holding username and password) and eventhubs_kafka_connection_string."
    }
    precondition {
      condition     = !local.eventhubs_kafka || local.self_managed_kafka_enabled
      error_message = "eventhubs_kafka_connection_string is set but kafka_bootstrap_servers is empty: set it to [\"<namespace>.servicebus.windows.net:9093\"] (the azure module's kafka_bootstrap_server output)."
    }
    precondition {
      condition     = !local.eventhubs_kafka || local.kafka_sasl_mechanism == "BASIC_AUTH"
      error_message = "Event Hubs' Kafka endpoint only accepts SASL/PLAIN: kafka_sasl_mechanism must be BASIC_AUTH (or empty) with eventhubs_kafka_connection_string."
    }
    precondition {
      condition     = var.kafka_provisioned_pollers == 0 || var.kafka_maximum_pollers >= var.kafka_provisioned_pollers
      error_message = "kafka_maximum_pollers must be at least kafka_provisioned_pollers."
    }
  }
}
