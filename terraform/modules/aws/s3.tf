# The lake bucket: {raw|windows|anomalies|late|quarantine}/scenario=S/dt=YYYY-MM-DD/hour=HH/part-*.parquet,
# plus state/<fn>/ (conditional-write state objects), truth/ (generator ground truth),
# quarantine/fetch/ (rejected API items) and athena-results/ (workgroup output).
#
# Its server access logs go to a second bucket (access_logs below).

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_21:Versioning is a variable (lake_versioning, default off): keys are deterministic, redelivery overwrites identical bytes and state objects use conditional writes, so versions mostly add cost.
  #checkov:skip=CKV_AWS_144:Single-region deployment; cross-region replication doubles storage and needs a key in a second region. Add it per deployment if disaster recovery requires it.
  bucket        = "${var.name}-lake-${local.account_id}-${local.region}"
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
    # S3 Bucket Keys: one data key per bucket and period instead of a KMS call per object,
    # which matters for the many small Parquet and state objects.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    # "Suspended" (not "Disabled") so that turning versioning off after it was on is valid.
    status = var.lake_versioning ? "Enabled" : "Suspended"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-raw"
    status = var.raw_expiration_days > 0 ? "Enabled" : "Disabled"
    filter {
      prefix = "raw/"
    }
    expiration {
      days = max(var.raw_expiration_days, 1)
    }
  }

  rule {
    id     = "expire-athena-results"
    status = "Enabled"
    filter {
      prefix = "athena-results/"
    }
    expiration {
      days = var.athena_results_expiration_days
    }
  }

  rule {
    id     = "noncurrent-versions-and-incomplete-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_expiration_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_logging" "this" {
  bucket        = aws_s3_bucket.this.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "lake/"
}

data "aws_iam_policy_document" "lake_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.lake_bucket.json

  # Adding a policy while the public access block is still being applied can be refused.
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# New window and anomaly Parquet objects trigger the alert function.
resource "aws_s3_bucket_notification" "this" {
  bucket = aws_s3_bucket.this.id

  lambda_function {
    id                  = "windows"
    lambda_function_arn = aws_lambda_function.this["alert"].arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = "windows/"
    filter_suffix       = ".parquet"
  }

  lambda_function {
    id                  = "anomalies"
    lambda_function_arn = aws_lambda_function.this["alert"].arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = "anomalies/"
    filter_suffix       = ".parquet"
  }

  depends_on = [aws_lambda_permission.s3_invokes_alert]
}

################################################################################
# Server access logs of the lake bucket
################################################################################

resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log bucket itself; logging it into itself would log its own log deliveries.
  #checkov:skip=CKV_AWS_145:S3 server access log delivery only supports SSE-S3 (AES256) on the target bucket, not SSE-KMS.
  #checkov:skip=CKV_AWS_21:Log objects are written once by the S3 logging service and expire by lifecycle; versions would only add cost.
  #checkov:skip=CKV_AWS_144:Single-region deployment; access logs are not replicated.
  #checkov:skip=CKV2_AWS_62:Nothing consumes access-log objects as events; no notifications needed.
  bucket        = "${var.name}-access-logs-${local.account_id}-${local.region}"
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket                  = aws_s3_bucket.access_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "access_logs_bucket" {
  statement {
    sid     = "S3ServerAccessLogsFromLake"
    effect  = "Allow"
    actions = ["s3:PutObject"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    resources = ["${aws_s3_bucket.access_logs.arn}/lake/*"]
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.this.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.access_logs.arn, "${aws_s3_bucket.access_logs.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "access_logs" {
  bucket     = aws_s3_bucket.access_logs.id
  policy     = data.aws_iam_policy_document.access_logs_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.access_logs]
}
