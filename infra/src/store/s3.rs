//! The lake and function state on S3. Conditional writes use `If-None-Match: *` and `If-Match`
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html); a 412 (or a
//! 409 conflict with a concurrent conditional write) becomes `StoreError::PreconditionFailed`.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::{ETag, Object, ObjectStore, Precondition, StagedObject, StoreError};

pub struct S3Store {
    client: Client,
    bucket: String,
}

impl S3Store {
    /// Path-style addressing is used when an endpoint override (e.g. an emulator) is configured.
    pub fn new(config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Self {
            client: Client::from_conf(s3),
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if status(&err) == Some(404) => Ok(false),
            Err(err) => Err(backend(key, err)),
        }
    }
}

fn status<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

fn backend<E: std::error::Error + Send + Sync + 'static>(
    key: &str,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError {
    let code = status(&err);
    if matches!(code, Some(412) | Some(409)) {
        return StoreError::PreconditionFailed {
            key: key.to_string(),
        };
    }
    let retryable = !matches!(code, Some(400..=499)) || code == Some(429);
    let message = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&err));
    StoreError::Backend {
        key: key.to_string(),
        message,
        retryable,
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => {
                let etag = ETag(out.e_tag().unwrap_or_default().to_string());
                let body = out.body.collect().await.map_err(|e| StoreError::Backend {
                    key: key.to_string(),
                    message: format!("reading body: {e}"),
                    retryable: true,
                })?;
                Ok(Some(Object {
                    body: body.into_bytes().to_vec(),
                    etag,
                }))
            }
            Err(err)
                if err.as_service_error().is_some_and(|e| e.is_no_such_key())
                    || status(&err) == Some(404) =>
            {
                Ok(None)
            }
            Err(err) => Err(backend(key, err)),
        }
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<ETag, StoreError> {
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| backend(key, e))?;
        Ok(ETag(out.e_tag().unwrap_or_default().to_string()))
    }

    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Precondition,
    ) -> Result<ETag, StoreError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body));
        let request = match condition {
            Precondition::DoesNotExist => request.if_none_match("*"),
            Precondition::Matches(etag) => request.if_match(etag.0),
        };
        let out = request.send().await.map_err(|e| backend(key, e))?;
        Ok(ETag(out.e_tag().unwrap_or_default().to_string()))
    }

    /// `CreateMultipartUpload` and one `UploadPart` (the only part of an upload may be smaller
    /// than the 5 MiB minimum of the others).
    async fn stage(&self, key: &str, body: Vec<u8>) -> Result<StagedObject, StoreError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| backend(key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(1)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| backend(key, e))?;
        Ok(StagedObject {
            key: key.to_string(),
            upload_id,
            part_etag: part.e_tag().unwrap_or_default().to_string(),
        })
    }

    /// `CompleteMultipartUpload`; when S3 no longer knows the upload (`NoSuchUpload`: completed
    /// before, or aborted), a `HeadObject` tells published from lost.
    async fn publish(&self, staged: &StagedObject) -> Result<(), StoreError> {
        let key = staged.key.as_str();
        let parts = CompletedMultipartUpload::builder()
            .parts(
                CompletedPart::builder()
                    .part_number(1)
                    .e_tag(&staged.part_etag)
                    .build(),
            )
            .build();
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&staged.upload_id)
            .multipart_upload(parts)
            .send()
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(err)
                if err.as_service_error().and_then(|e| e.code()) == Some("NoSuchUpload")
                    || status(&err) == Some(404) =>
            {
                if self.exists(key).await? {
                    Ok(())
                } else {
                    Err(StoreError::Lost {
                        key: key.to_string(),
                        upload_id: staged.upload_id.clone(),
                    })
                }
            }
            Err(err) => Err(backend(key, err)),
        }
    }

    /// `DeleteObject` (S3 answers 204 for a missing key too).
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| backend(key, e))
    }

    /// `AbortMultipartUpload`; an upload S3 no longer knows is already gone.
    async fn abort(&self, staged: &StagedObject) -> Result<(), StoreError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&staged.key)
            .upload_id(&staged.upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if status(&err) == Some(404) => Ok(()),
            Err(err) => Err(backend(&staged.key, err)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| backend(prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
        }
        keys.sort();
        Ok(keys)
    }

    fn location(&self) -> String {
        format!("s3://{}/", self.bucket)
    }
}
