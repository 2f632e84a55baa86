//! Multipart uploads in 4 MiB blocks: `?uploads` (init), `?uploadId=&partNumber=` (parts
//! numbered from 0, any order, in parallel), finish with the comma-joined ETags (optional
//! `newKey`), abort, `?muploadpart` listing for resume, and part copy. Completion writes a
//! manifest of the part blobs; because parts are whole 4 MiB blocks the UFile ETag comes from
//! their SHA-1s without reading anything.

use chuan_api_common::RequestBody;
use chuan_core::store::{ObjectMeta, UploadKind, UploadRecord};
use chuan_core::{Completion, CoreError, NewUpload, PartList, Principal};
use http::{header, StatusCode};
use serde_json::json;

use crate::error::{UfileError, UfileResult};
use crate::{empty, json, Ctx, Resp, UfileDialect};

const BLOCK: u64 = chuan_core::hash::UFILE_BLOCK;
const MAX_FINISH_BODY: usize = 1 << 20;
const STATE: &str = r#"{"dialect":"ufile","blk_size":4194304}"#;

impl UfileDialect {
    async fn session(&self, p: &Principal, bucket: &str, key: &str, upload_id: &str) -> UfileResult<UploadRecord> {
        Ok(self.engine.upload(p, bucket, key, upload_id).await?)
    }

    pub(crate) async fn init_multipart(&self, ctx: Ctx) -> UfileResult<Resp> {
        let ct = ctx.parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        // The SDK sends text/plain on init; the file's type comes with each part.
        let meta = ObjectMeta {
            content_type: (!ct.is_empty() && ct != "text/plain").then(|| ct.to_owned()),
            ..Default::default()
        };
        let mut new = NewUpload::new(UploadKind::Ufile, &ctx.bucket, &ctx.key);
        new.meta = meta;
        new.state = STATE.into();
        let up = self.engine.create_upload(&ctx.principal, new).await?;
        Ok(json(StatusCode::OK, &json!({"UploadId": up.id, "BlkSize": BLOCK, "Bucket": ctx.bucket, "Key": ctx.key})))
    }

    pub(crate) async fn upload_part(
        &self,
        ctx: Ctx,
        upload_id: &str,
        part: u32,
        body: RequestBody,
    ) -> UfileResult<Resp> {
        let up = self.session(&ctx.principal, &ctx.bucket, &ctx.key, upload_id).await?;
        let staged = self.engine.stage(&ctx.principal, http_body_util::BodyDataStream::new(body)).await?;
        if staged.size > BLOCK {
            return Err(UfileError::bad_request(format!("part {part} is larger than BlkSize {BLOCK}")));
        }
        let rec = self.engine.commit_part(&ctx.principal, &up, part + 1, staged).await?;
        Ok(empty(StatusCode::OK)
            .header(header::ETAG, format!("\"{}\"", rec.etag))
            .header("partnumber", part)
            .body(chuan_api_common::empty())
            .expect("valid"))
    }

    pub(crate) async fn upload_part_copy(
        &self,
        ctx: Ctx,
        upload_id: &str,
        part: u32,
        source: &str,
    ) -> UfileResult<Resp> {
        let up = self.session(&ctx.principal, &ctx.bucket, &ctx.key, upload_id).await?;
        let (sb, sk) = source
            .trim_start_matches('/')
            .split_once('/')
            .ok_or_else(|| UfileError::bad_request("X-Ufile-Copy-Source must be /bucket/key"))?;
        let src = self.engine.head_object(&ctx.principal, sb, sk).await?;
        let range = ctx.parts.headers.get("x-ufile-copy-source-range").and_then(|v| v.to_str().ok()).unwrap_or("");
        let (start, end) = match range.strip_prefix("bytes=").and_then(|r| r.split_once('-')) {
            Some((a, b)) => {
                let a: u64 = a.trim().parse().map_err(|_| UfileError::bad_request("bad X-Ufile-Copy-Source-Range"))?;
                // The SDK sends `offset-(size-1)` instead of `offset-(offset+size-1)`; clamp to the source.
                let b: u64 =
                    b.trim().parse::<u64>().map_err(|_| UfileError::bad_request("bad X-Ufile-Copy-Source-Range"))?;
                (a, b.saturating_add(1).min(src.size).min(a.saturating_add(BLOCK)).max(a))
            }
            None => (0, src.size.min(BLOCK)),
        };
        if start >= src.size && src.size > 0 {
            return Err(CoreError::InvalidRange.into());
        }
        let rec = self.engine.copy_part(&ctx.principal, &up, part + 1, &src, Some((start, end))).await?;
        Ok(empty(StatusCode::OK)
            .header(header::ETAG, format!("\"{}\"", rec.etag))
            .body(chuan_api_common::empty())
            .expect("valid"))
    }

    pub(crate) async fn finish_multipart(
        &self,
        ctx: Ctx,
        upload_id: &str,
        new_key: Option<String>,
        body: RequestBody,
    ) -> UfileResult<Resp> {
        let up = self.session(&ctx.principal, &ctx.bucket, &ctx.key, upload_id).await?;
        let raw = chuan_api_common::read_limited(body, MAX_FINISH_BODY)
            .await
            .map_err(|e| e.or_timeout(|_| UfileError::bad_request("body too large")))?;
        let text = String::from_utf8_lossy(&raw);
        let etags: Vec<String> =
            text.split(',').map(|e| e.trim().trim_matches('"').to_owned()).filter(|e| !e.is_empty()).collect();
        if etags.is_empty() {
            // An empty file has no blocks: the SDK finishes without parts.
            if !self.engine.list_parts(&ctx.principal, &up, 0, 1).await?.is_empty() {
                return Err(UfileError::bad_request("the body must list the part ETags, comma-separated"));
            }
            let mut target = chuan_core::PutTarget::new(&ctx.bucket, &ctx.key);
            target.meta = up.meta.clone();
            let rec = match new_key {
                // `newKey` is where the file goes only if its key was taken meanwhile (the spec,
                // "finish multipart upload"): the key is tried first, only if free.
                Some(k) => {
                    target.condition = Some(chuan_core::store::WriteCondition::Absent);
                    match self.engine.put_empty(&ctx.principal, target.clone()).await {
                        Err(CoreError::PreconditionFailed) => {
                            target.key = k;
                            target.condition = None;
                            self.engine.put_empty(&ctx.principal, target).await?
                        }
                        r => r?,
                    }
                }
                None => self.engine.put_empty(&ctx.principal, target).await?,
            };
            let key = rec.key.clone();
            self.engine.abort_upload(&ctx.principal, &up).await?;
            let etag = self.ufile_etag(&rec).await?;
            return Ok(empty(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ETAG, format!("\"{etag}\""))
                .body(chuan_api_common::full(
                    serde_json::to_vec(&json!({"Bucket": ctx.bucket, "Key": key, "FileSize": 0})).unwrap_or_default(),
                ))
                .expect("valid"));
        }
        // Parts are numbered from 0 on the wire, from 1 in the session.
        let list: Vec<(u32, String)> = etags.iter().enumerate().map(|(i, e)| (i as u32 + 1, e.clone())).collect();
        let mut completion = Completion::new(PartList::Listed(list.clone()));
        // `newKey` is where the file goes only if its key was taken meanwhile (the spec,
        // "finish multipart upload"): the key is tried first, only if free (in the completing
        // transaction), and the session stays for the second try.
        if new_key.is_some() {
            completion.condition = Some(chuan_core::store::WriteCondition::Absent);
        }
        let done = match self.engine.complete_upload(&ctx.principal, &up, completion).await {
            Err(CoreError::PreconditionFailed) if new_key.is_some() => {
                let mut completion = Completion::new(PartList::Listed(list));
                completion.key = new_key.clone();
                self.engine.complete_upload(&ctx.principal, &up, completion).await
            }
            r => r,
        };
        let done = match done {
            Err(CoreError::InvalidPart(m)) => return Err(UfileError::bad_request(m)),
            r => r?,
        };
        let rec = done.object;
        let etag = self.ufile_etag(&rec).await?;
        Ok(empty(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ETAG, format!("\"{etag}\""))
            .body(chuan_api_common::full(
                serde_json::to_vec(&json!({"Bucket": ctx.bucket, "Key": rec.key, "FileSize": rec.size}))
                    .unwrap_or_default(),
            ))
            .expect("valid"))
    }

    pub(crate) async fn abort_multipart(&self, ctx: Ctx, upload_id: &str) -> UfileResult<Resp> {
        let up = self.session(&ctx.principal, &ctx.bucket, &ctx.key, upload_id).await?;
        self.engine.abort_upload(&ctx.principal, &up).await?;
        Ok(empty(StatusCode::OK).body(chuan_api_common::empty()).expect("valid"))
    }

    /// `GET /?muploadpart&uploadId=&max-parts=&part-number-marker=` (part numbers from 0).
    pub(crate) async fn list_parts(&self, ctx: Ctx, upload_id: &str) -> UfileResult<Resp> {
        let up = self.engine.upload_by_id(&ctx.principal, upload_id).await?;
        if up.bucket != ctx.bucket {
            return Err(CoreError::NoSuchUpload.into());
        }
        let max = ctx.query.get("max-parts").and_then(|m| m.parse::<usize>().ok()).unwrap_or(1000).clamp(1, 1000);
        let marker = ctx.query.get("part-number-marker").and_then(|m| m.parse::<u32>().ok());
        // The marker names the last part already seen (0-based); stored numbers are 1-based.
        let after = marker.map(|m| m + 1).unwrap_or(0);
        let mut parts = self.engine.list_parts(&ctx.principal, &up, after, max + 1).await?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        let list: Vec<_> = parts
            .iter()
            // The spec's `PartNum`/`Etag`, and UCloud's `PartNumber`/`ETag` its SDKs read.
            .map(|p| {
                json!({"PartNum": p.number - 1, "Etag": p.etag, "PartNumber": p.number - 1, "ETag": p.etag,
                       "LastModified": p.modified_ms / 1000, "Size": p.size})
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            // A session that can be listed is not finished: `Status` 0 (the spec's "not complete").
            &json!({"RetCode": 0, "Action": "GetMultiUploadPartResponse", "ErrMsg": "", "Status": 0,
                    "Bucket": up.bucket, "Key": up.key, "UploadId": up.id, "Parts": list,
                    "IsTruncated": truncated, "NextPartNumberMarker": if truncated { parts.last().map(|p| p.number as i64 - 1).unwrap_or(-1) } else { -1 }}),
        ))
    }
}
