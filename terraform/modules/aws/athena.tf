# Workgroup with enforced settings: results encrypted with the project key under
# s3://<lake>/athena-results/ (expired by lifecycle), and a per-query scan limit.
resource "aws_athena_workgroup" "this" {
  name          = var.name
  description   = "${var.name} lake queries"
  force_destroy = var.force_destroy

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = "s3://${aws_s3_bucket.this.id}/athena-results/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.this.arn
      }
    }
  }

  tags = local.tags
}

# One named query per queries/*.sql. These files are byte-identical copies of
# functions/cli/queries/*.sql (what `sluice query` runs locally); the SQL is used unchanged and
# tests/terraform/test_contract.py checks the copies.
resource "aws_athena_named_query" "this" {
  for_each = fileset("${path.module}/queries", "*.sql")

  name        = trimsuffix(each.value, ".sql")
  description = "functions/cli/queries/${each.value}"
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = file("${path.module}/queries/${each.value}")
}
