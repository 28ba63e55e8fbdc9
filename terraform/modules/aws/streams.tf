# Stream definitions: every streams_dir/*.toml is uploaded to the lake bucket under streams/.
# At cold start each function reads every *.toml object under SLUICE_STREAMS_PREFIX, in key
# order (infra/src/streams.rs); SLUICE_STREAMS_DIGEST is not read, it changes with any edit of a
# definition so that the function configuration changes and warm instances are replaced.
#
# Terraform owns the streams/ prefix: a file removed from streams_dir is deleted from the bucket,
# and an object put there by hand would be read by the functions as one more definition.

locals {
  streams_dir    = coalesce(var.streams_dir, "${path.module}/../../../streams")
  streams_prefix = "streams/"
  stream_files   = sort(fileset(local.streams_dir, "*.toml"))

  # sha256 over "<file name> <sha256 of its bytes>" lines, in key order: renaming, adding,
  # removing or editing a definition changes it.
  streams_digest = sha256(join("\n", [
    for f in local.stream_files : "${f} ${filesha256("${local.streams_dir}/${f}")}"
  ]))
}

resource "aws_s3_object" "streams" {
  for_each = fileset(local.streams_dir, "*.toml")

  bucket       = aws_s3_bucket.this.id
  key          = "${local.streams_prefix}${each.value}"
  content      = file("${local.streams_dir}/${each.value}")
  content_type = "application/toml"

  # The bucket's default encryption, stated explicitly (the project key, S3 Bucket Keys).
  server_side_encryption = "aws:kms"
  kms_key_id             = aws_kms_key.this.arn
  bucket_key_enabled     = true

  # An SSE-KMS object's ETag is not the MD5 of its bytes, so `etag = filemd5(...)` would show a
  # change on every plan; source_hash is kept in state only and re-uploads on an edit.
  source_hash = filemd5("${local.streams_dir}/${each.value}")

  tags = local.tags
}
