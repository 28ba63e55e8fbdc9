# Alarms notify the alert topic (and so every email subscriber whose filter policy lets them
# through: alarm notifications carry no message attributes, so a filter policy on severity
# drops them; subscribe a separate, unfiltered endpoint for operations if you filter).

locals {
  alarm_actions = [aws_sns_topic.this.arn]
}

# How far the stream's oldest unread record is behind (any consumer).
resource "aws_cloudwatch_metric_alarm" "stream_iterator_age" {
  alarm_name          = "${var.name}-stream-iterator-age"
  alarm_description   = "Records wait longer than ${var.iterator_age_alarm_ms} ms in ${aws_kinesis_stream.this.name}: aggregate is falling behind (records expire after ${var.kinesis_retention_hours} h)."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = aws_kinesis_stream.this.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.iterator_age_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

# The same lag as seen by the aggregate event source mapping.
resource "aws_cloudwatch_metric_alarm" "aggregate_iterator_age" {
  alarm_name          = "${var.name}-aggregate-iterator-age"
  alarm_description   = "The newest record aggregate processed was older than ${var.iterator_age_alarm_ms} ms when it arrived."
  namespace           = "AWS/Lambda"
  metric_name         = "IteratorAge"
  dimensions          = { FunctionName = aws_lambda_function.this["aggregate"].function_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = var.iterator_age_alarm_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "errors" {
  for_each = local.functions

  alarm_name          = "${var.name}-${each.key}-errors"
  alarm_description   = "${var.name}-${each.key} returned errors (whole-invocation failures; per-record failures of aggregate are retried and show up as iterator age)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "dlq" {
  alarm_name          = "${var.name}-dlq-not-empty"
  alarm_description   = "${aws_sqs_queue.this.name} holds messages: a stream range or an async invocation failed for good. Inspect, replay, then purge."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.this.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

# The aggregate function's own figures, which it logs in CloudWatch's embedded metric format
# (namespace "sluice", dimension FunctionName; infra/src/metrics.rs names them).
locals {
  aggregate_metric_dimensions = { FunctionName = local.fn_names["aggregate"] }
}

resource "aws_cloudwatch_metric_alarm" "state_fallbacks" {
  alarm_name          = "${var.name}-aggregate-state-fallbacks"
  alarm_description   = "A shard state generation was unreadable and moved to state/aggregate/_quarantine/: its shard continued from the previous generation, so the events of that generation's batch are in raw but not in its open windows. Inspect the moved object."
  namespace           = "sluice"
  metric_name         = "state_fallbacks"
  dimensions          = local.aggregate_metric_dimensions
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "keys_on_several_shards" {
  alarm_name          = "${var.name}-aggregate-keys-on-several-shards"
  alarm_description   = "Keys have open windows on more than one shard: the producer does not use the key as the partition key. Read windows_merged rather than windows; anomaly flags see partial series."
  namespace           = "sluice"
  metric_name         = "keys_on_several_shards"
  dimensions          = local.aggregate_metric_dimensions
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 3
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags
}

resource "aws_cloudwatch_metric_alarm" "quarantine_rate" {
  alarm_name          = "${var.name}-aggregate-quarantine-rate"
  alarm_description   = "More than ${var.quarantine_rate_alarm * 100}% of the records aggregate read in 15 minutes were quarantined: a producer sends what the stream definitions do not accept. SELECT reason_code, COUNT(*) FROM quarantine says which."
  evaluation_periods  = 3
  threshold           = var.quarantine_rate_alarm
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = local.tags

  metric_query {
    id          = "rate"
    expression  = "quarantined / MAX([records, 1])"
    label       = "quarantined per record"
    return_data = true
  }

  metric_query {
    id = "quarantined"
    metric {
      namespace   = "sluice"
      metric_name = "quarantined"
      dimensions  = local.aggregate_metric_dimensions
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "records"
    metric {
      namespace   = "sluice"
      metric_name = "records_in"
      dimensions  = local.aggregate_metric_dimensions
      stat        = "Sum"
      period      = 300
    }
  }
}

################################################################################
# Dashboard
################################################################################

locals {
  fn_names = { for fn in keys(local.functions) : fn => "${var.name}-${fn}" }

  dashboard_widgets = [
    {
      type   = "metric"
      x      = 0
      y      = 0
      width  = 12
      height = 6
      properties = {
        title   = "Invocations"
        region  = local.region
        stat    = "Sum"
        period  = 60
        view    = "timeSeries"
        metrics = [for fn, name in local.fn_names : ["AWS/Lambda", "Invocations", "FunctionName", name, { label = fn }]]
      }
    },
    {
      type   = "metric"
      x      = 12
      y      = 0
      width  = 12
      height = 6
      properties = {
        title   = "Errors"
        region  = local.region
        stat    = "Sum"
        period  = 60
        view    = "timeSeries"
        metrics = [for fn, name in local.fn_names : ["AWS/Lambda", "Errors", "FunctionName", name, { label = fn }]]
      }
    },
    {
      type   = "metric"
      x      = 0
      y      = 6
      width  = 12
      height = 6
      properties = {
        title   = "Duration p99 (ms)"
        region  = local.region
        stat    = "p99"
        period  = 60
        view    = "timeSeries"
        metrics = [for fn, name in local.fn_names : ["AWS/Lambda", "Duration", "FunctionName", name, { label = fn }]]
      }
    },
    {
      type   = "metric"
      x      = 12
      y      = 6
      width  = 12
      height = 6
      properties = {
        title  = "Lag (ms)"
        region = local.region
        stat   = "Maximum"
        period = 60
        view   = "timeSeries"
        metrics = [
          ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", aws_kinesis_stream.this.name, { label = "stream iterator age" }],
          ["AWS/Lambda", "IteratorAge", "FunctionName", local.fn_names["aggregate"], { label = "aggregate iterator age" }],
        ]
      }
    },
    {
      type   = "metric"
      x      = 0
      y      = 12
      width  = 12
      height = 6
      properties = {
        title  = "Stream throughput"
        region = local.region
        stat   = "Sum"
        period = 60
        view   = "timeSeries"
        metrics = [
          ["AWS/Kinesis", "IncomingRecords", "StreamName", aws_kinesis_stream.this.name, { label = "records in" }],
          ["AWS/Kinesis", "IncomingBytes", "StreamName", aws_kinesis_stream.this.name, { label = "bytes in", yAxis = "right" }],
          ["AWS/Kinesis", "WriteProvisionedThroughputExceeded", "StreamName", aws_kinesis_stream.this.name, { label = "write throttles" }],
        ]
      }
    },
    {
      type   = "metric"
      x      = 12
      y      = 12
      width  = 12
      height = 6
      properties = {
        title  = "Dead-letter queue and throttles"
        region = local.region
        period = 60
        view   = "timeSeries"
        metrics = concat(
          [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.this.name, { label = "DLQ messages", stat = "Maximum" }]],
          [for fn, name in local.fn_names : ["AWS/Lambda", "Throttles", "FunctionName", name, { label = "${fn} throttles", stat = "Sum" }]],
        )
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
