//! The lake and function state on S3. Conditional writes use `If-None-Match: *` and `If-Match`
//! (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html); a 412 (or a
//! 409 conflict with a concurrent conditional write) becomes `StoreError::PreconditionFailed`.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;

use super::{ETag, Object, ObjectStore, Precondition, StoreError};

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
