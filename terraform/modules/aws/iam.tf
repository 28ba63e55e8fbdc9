# One execution role per function, least privilege: no "*" actions, and every resource is an
# exact ARN or an exact key prefix in the lake bucket. tests/terraform/test_contract.py holds
# the table of actions each function must have and fails on any "*" action.
#
# Why s3:ListBucket (limited by s3:prefix to the function's state prefix): without it S3
# answers GetObject on a missing key with 403 instead of 404, and the handlers treat "no
# state yet" (404) as a normal first run. Every function also lists streams/ (the stream
# definitions it reads at cold start), limited the same way.

locals {
  lake_arn = aws_s3_bucket.this.arn
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.functions

  name               = "${var.name}-${each.key}"
  description        = "Execution role of ${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "this" {
  for_each = local.functions

  name = "${var.name}-${each.key}"
  role = aws_iam_role.this[each.key].id
  policy = {
    generate  = data.aws_iam_policy_document.generate.json
    fetch     = data.aws_iam_policy_document.fetch.json
    aggregate = data.aws_iam_policy_document.aggregate.json
    alert     = data.aws_iam_policy_document.alert.json
  }[each.key]
}

################################################################################
# Shared by every function: its own log group, the project key, the stream definitions, the
# DLQ, X-Ray
################################################################################

data "aws_iam_policy_document" "common" {
  for_each = local.functions

  statement {
    sid       = "OwnLogGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_group.this[each.key].arn, "${aws_cloudwatch_log_group.this[each.key].arn}:*"]
  }

  # S3 SSE-KMS, Kinesis, SNS, SQS, Secrets Manager and the Lambda environment all use this key.
  statement {
    sid       = "ProjectKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }

  # Stream definitions, read at cold start (streams.tf): list the prefix, read each object.
  statement {
    sid       = "StreamDefinitions"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${local.lake_arn}/${local.streams_prefix}*"]
  }

  statement {
    sid       = "ListStreamDefinitions"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.streams_prefix}*"]
    }
  }

  # Failed async invocations (dead_letter_config) are sent with the function's own role.
  statement {
    sid       = "DeadLetterQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]
  }

  # X-Ray has no resource-level permissions: these two actions only accept Resource "*"
  # (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html).
  dynamic "statement" {
    for_each = var.tracing_mode == "Active" ? [1] : []
    content {
      sid       = "XRayTraces"
      effect    = "Allow"
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }
}

################################################################################
# generate: state + ground truth in the lake, PutRecords on the stream
################################################################################

# What both producers (generate, fetch) need: the stream they write to, and the Event Hubs
# connection string when that is the sink.
data "aws_iam_policy_document" "producer" {
  statement {
    sid       = "StreamWrite"
    effect    = "Allow"
    actions   = ["kinesis:PutRecords"]
    resources = [aws_kinesis_stream.this.arn]
  }

  dynamic "statement" {
    for_each = var.sink == "eventhubs" ? [1] : []
    content {
      sid       = "EventHubsConnectionString"
      effect    = "Allow"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [aws_secretsmanager_secret.this["eventhubs"].arn]
    }
  }
}

data "aws_iam_policy_document" "generate" {
  source_policy_documents = [
    data.aws_iam_policy_document.common["generate"].json,
    data.aws_iam_policy_document.producer.json,
  ]

  statement {
    sid     = "StateAndTruth"
    effect  = "Allow"
    actions = ["s3:GetObject", "s3:PutObject"]
    resources = [
      "${local.lake_arn}/state/generate/*",
      "${local.lake_arn}/truth/*",
    ]
  }

  statement {
    sid       = "StateMissingIs404"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["state/generate/*"]
    }
  }
}

################################################################################
# fetch: API key secret, PutRecords, quarantine of rejected items
################################################################################

data "aws_iam_policy_document" "fetch" {
  source_policy_documents = [
    data.aws_iam_policy_document.common["fetch"].json,
    data.aws_iam_policy_document.producer.json,
  ]

  statement {
    sid       = "ApiKey"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.this["fetch"].arn]
  }

  # fetch only writes here; GetObject on its own prefix is granted because the S3 adapter
  # (one ObjectStore type for every function) exposes reads too, and the contract test requires
  # each SDK call of an adapter a crate uses. Reading back its own rejects exposes nothing new.
  statement {
    sid       = "QuarantineRejectedItems"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.lake_arn}/quarantine/fetch/*"]
  }
}

################################################################################
# aggregate: read the stream (event source mapping), write the lake, on-failure DLQ; the
# optional Kafka mappings' permissions come from kafka.tf
################################################################################

data "aws_iam_policy_document" "aggregate" {
  # "kafka" (kafka.tf) holds the statements of the optional MSK / self-managed Kafka mappings;
  # it has none while both are off.
  source_policy_documents = [
    data.aws_iam_policy_document.common["aggregate"].json,
    data.aws_iam_policy_document.kafka.json,
  ]

  # What Lambda's Kinesis event source mapping calls with the function's role
  # (https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html). SubscribeToShard is only
  # for enhanced fan-out consumers, which are not used.
  statement {
    sid    = "StreamRead"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.this.arn]
  }

  # Objects are staged as multipart uploads and completed after the state commit
  # (s3:PutObject covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload); the
  # uploads of an attempt whose commit was refused are aborted.
  statement {
    sid     = "LakeReadWrite"
    effect  = "Allow"
    actions = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    resources = [
      "${local.lake_arn}/raw/*",
      "${local.lake_arn}/windows/*",
      "${local.lake_arn}/anomalies/*",
      "${local.lake_arn}/late/*",
      "${local.lake_arn}/quarantine/*",
      "${local.lake_arn}/pipeline/*",
      "${local.lake_arn}/state/aggregate/*",
    ]
  }

  # Shard state is written as generations; superseded ones are deleted, unreadable ones moved
  # aside under state/aggregate/_quarantine/.
  statement {
    sid       = "StateGenerations"
    effect    = "Allow"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.lake_arn}/state/aggregate/*"]
  }

  statement {
    sid       = "StateMissingIs404"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["state/aggregate/*"]
    }
  }

  # The event source mapping's on_failure destination (sqs:SendMessage is also in "common").
  statement {
    sid       = "OnFailureDestination"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]
  }
}

################################################################################
# alert: read new windows/anomalies, keep cooldown state, publish to the topic, record what
# it sent in the alerts table
################################################################################

data "aws_iam_policy_document" "alert" {
  source_policy_documents = [data.aws_iam_policy_document.common["alert"].json]

  statement {
    sid     = "ReadResults"
    effect  = "Allow"
    actions = ["s3:GetObject"]
    resources = [
      "${local.lake_arn}/windows/*",
      "${local.lake_arn}/anomalies/*",
    ]
  }

  statement {
    sid       = "State"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.lake_arn}/state/alert/*"]
  }

  statement {
    sid       = "StateMissingIs404"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.lake_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["state/alert/*"]
    }
  }

  statement {
    sid       = "AlertsTable"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${local.lake_arn}/alerts/*"]
  }

  statement {
    sid       = "Publish"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.this.arn]
  }

  dynamic "statement" {
    for_each = var.alert_rules_key != "" ? [1] : []
    content {
      sid       = "RulesFile"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = ["${local.lake_arn}/${var.alert_rules_key}"]
    }
  }
}

################################################################################
# EventBridge Scheduler: invoke generate and fetch
################################################################################

data "aws_iam_policy_document" "assume_scheduler" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  description        = "EventBridge Scheduler role that invokes ${var.name}-generate and ${var.name}-fetch"
  assume_role_policy = data.aws_iam_policy_document.assume_scheduler.json
  tags               = local.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "InvokeScheduledFunctions"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [for fn in keys(local.schedules) : aws_lambda_function.this[fn].arn]
  }

  # Undeliverable ticks go to the DLQ; the schedule (input included) is encrypted with the key.
  statement {
    sid       = "DeadLetterQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this.arn]
  }

  statement {
    sid       = "ProjectKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
