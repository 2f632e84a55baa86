//! Single-object operations: PutFile, PostFile, UploadHit, GetFile/HEAD, DeleteFile, copy,
//! rename, OpMeta, restore and storage class.

use base64::Engine as _;
use chuan_api_common::form::{FormError, FormReader};
use chuan_api_common::RequestBody;
use chuan_core::store::ObjectMeta;
use chuan_core::{CoreError, Op, Possession, Principal, PutTarget, StageOptions};
use http::header;
use http::request::Parts;
use http::StatusCode;

use crate::error::{UfileError, UfileResult};
use crate::{empty, json, Ctx, Resp, UfileDialect};

const MAX_OPMETA: usize = 64 << 10;
const UFILE: StageOptions = StageOptions { ufile_blocks: true, max_size: None, defer_sha1: false };

/// `Content-MD5` as the SDK sends it (lower-case hex) or as HTTP defines it (base64).
fn md5_claim(value: &str) -> UfileResult<Option<String>> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Some(v.to_ascii_lowercase()));
    }
    match base64::engine::general_purpose::STANDARD.decode(v) {
        Ok(raw) if raw.len() == 16 => Ok(Some(hex::encode(raw))),
        _ => Err(UfileError::bad_request("Content-MD5 must be 32 hex digits or base64 of 16 bytes")),
    }
}

fn meta_from_headers(parts: &Parts) -> ObjectMeta {
    let h = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()).map(str::to_owned);
    let user = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().strip_prefix("x-ufile-meta-")?.to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    ObjectMeta {
        content_type: h("content-type"),
        content_encoding: h("content-encoding"),
        content_disposition: h("content-disposition"),
        cache_control: h("cache-control"),
        user,
        ..Default::default()
    }
}

fn content_type_boundary(parts: &Parts) -> Option<String> {
    chuan_api_common::form::boundary(parts.headers.get(header::CONTENT_TYPE)?.to_str().ok()?)
}

fn form_field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
}

fn etag_header(etag: &str) -> String {
    format!("\"{etag}\"")
}

impl UfileDialect {
    pub(crate) async fn put_file(&self, ctx: Ctx, body: RequestBody) -> UfileResult<Resp> {
        let p = &ctx.principal;
        chuan_core::names::validate_key(&ctx.key)?;
        self.engine.check_access(p, Op::Write, &ctx.bucket, &ctx.key).await?;
        let claimed = md5_claim(ctx.parts.headers.get("content-md5").and_then(|v| v.to_str().ok()).unwrap_or(""))?;
        let staged = self.engine.stage_with(p, http_body_util::BodyDataStream::new(body), UFILE).await?;
        if claimed.as_deref().is_some_and(|c| c != staged.digests.md5) {
            return Err(CoreError::BadDigest { algorithm: "MD5" }.into());
        }
        let etag = staged.ufile_etag.clone().unwrap_or_default();
        let target = PutTarget {
            bucket: ctx.bucket.clone(),
            key: ctx.key.clone(),
            meta: meta_from_headers(&ctx.parts),
            condition: None,
            tree: chuan_core::store::TreeRule::Flat,
        };
        self.engine.commit_put(p, target, staged).await?;
        Ok(empty(StatusCode::OK)
            .header(header::ETAG, etag_header(&etag))
            .body(chuan_api_common::empty())
            .expect("valid"))
    }

    /// `POST /` with `multipart/form-data`: `FileName`, `Authorization` (signed over the file
    /// part's Content-Type), optional `Content-MD5`, then `file`, streamed into the store.
    pub(crate) async fn post_file(&self, parts: Parts, bucket: String, body: RequestBody) -> UfileResult<Resp> {
        let boundary =
            content_type_boundary(&parts).ok_or_else(|| UfileError::bad_request("expected multipart/form-data"))?;
        let mut form =
            FormReader::new(http_body_util::BodyDataStream::new(body), &boundary).counted(self.engine.metrics.clone());
        // Malformed or over the form limits: refused before any signature check.
        let refused = |e: FormError| e.or_timeout(|e| UfileError::bad_request(e.to_string()));
        let mut fields: Vec<(String, String)> = Vec::new();
        loop {
            let Some(field) = form.next_field().await.map_err(refused)? else {
                return Err(UfileError::bad_request("the form has no file part"));
            };
            let name = field.name().unwrap_or("").to_owned();
            if name != "file" {
                fields.push((name, form.text(field).await.map_err(refused)?));
                continue;
            }
            let key = form_field(&fields, "FileName")
                .filter(|k| !k.is_empty())
                .ok_or_else(|| UfileError::bad_request("FileName is required"))?;
            let file_type = field.content_type().map(|m| m.to_string()).unwrap_or_default();
            let md5 = form_field(&fields, "Content-MD5").unwrap_or_default();
            let (public, sig) = crate::auth::parse_header(&form_field(&fields, "Authorization").unwrap_or_default())
                .ok_or_else(UfileError::no_auth)?;
            let p: Principal =
                self.verify(&public, &sig, &format!("POST\n{md5}\n{file_type}\n\n/{bucket}/{key}")).await?;
            chuan_core::names::validate_key(&key)?;
            self.engine.check_access(&p, Op::Write, &bucket, &key).await?;
            let staged = self.engine.stage_with(&p, field, UFILE).await?;
            // Anything after the file part must still be a well-formed form.
            form.finish().await.map_err(refused)?;
            if md5_claim(&md5)?.is_some_and(|c| c != staged.digests.md5) {
                return Err(CoreError::BadDigest { algorithm: "MD5" }.into());
            }
            let etag = staged.ufile_etag.clone().unwrap_or_default();
            let meta = ObjectMeta { content_type: (!file_type.is_empty()).then_some(file_type), ..Default::default() };
            self.engine
                .commit_put(
                    &p,
                    PutTarget {
                        bucket: bucket.clone(),
                        key,
                        meta,
                        condition: None,
                        tree: chuan_core::store::TreeRule::Flat,
                    },
                    staged,
                )
                .await?;
            return Ok(empty(StatusCode::OK)
                .header(header::ETAG, etag_header(&etag))
                .body(chuan_api_common::empty())
                .expect("valid"));
        }
    }

    /// `POST /uploadhit?Hash=&FileName=&FileSize=`: 200 and the object exists, or 404. Only
    /// content the caller could read already can hit (there is no proof step here).
    pub(crate) async fn upload_hit(&self, ctx: Ctx, hash: &str, file_name: &str, size: u64) -> UfileResult<Resp> {
        let p = &ctx.principal;
        chuan_core::names::validate_key(file_name)?;
        self.engine.check_access(p, Op::Write, &ctx.bucket, file_name).await?;
        let hit = self.engine.claimable_content(p, "ufile", hash, size, &Possession::None).await?;
        let Some(held) = hit else { return Err(UfileError::not_found()) };
        let mut meta = meta_from_headers(&ctx.parts);
        meta.user.clear();
        let target = PutTarget {
            bucket: ctx.bucket.clone(),
            key: file_name.to_owned(),
            meta,
            condition: None,
            tree: chuan_core::store::TreeRule::Flat,
        };
        self.engine.instant_put(p, target, held, None).await?;
        Ok(empty(StatusCode::OK)
            .header(header::ETAG, etag_header(hash))
            .body(chuan_api_common::empty())
            .expect("valid"))
    }

    pub(crate) async fn get_file(&self, ctx: Ctx, with_body: bool) -> UfileResult<Resp> {
        let rec = match self.engine.head_object(&ctx.principal, &ctx.bucket, &ctx.key).await {
            // An unsigned request for data that is not public: UFile's "no authorization".
            Err(CoreError::AccessDenied) if ctx.principal.is_anonymous() => return Err(UfileError::no_auth()),
            r => r?,
        };
        let modified_secs = rec.modified_ms / 1000;
        if let Some(ims) = ctx.parts.headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()) {
            if let Some(t) = chuan_api_common::parse_http_date(ims) {
                if modified_secs <= t {
                    return Ok(empty(StatusCode::NOT_MODIFIED).body(chuan_api_common::empty()).expect("valid"));
                }
            }
        }
        let content =
            if with_body { self.engine.content_for_read(&rec).await? } else { self.engine.content_of(&rec).await? };
        let etag = self.ufile_etag(&rec).await?;
        let b = empty(StatusCode::OK)
            .header(
                header::CONTENT_TYPE,
                rec.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
            )
            .header(header::ETAG, etag_header(&etag))
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::LAST_MODIFIED, chuan_api_common::http_date(rec.modified_ms));
        let range = ctx.parts.headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        let (mut b, start, end) =
            chuan_api_common::with_range(b, range, content.size).map_err(|()| CoreError::InvalidRange)?;
        b = b.header(header::CONTENT_LENGTH, end - start);
        for (k, v) in &rec.meta.user {
            b = b.header(format!("x-ufile-meta-{k}"), v.as_str());
        }
        let body = if with_body {
            chuan_api_common::stream(self.engine.open_read(&ctx.principal, &rec, &content, start, end).await?)
        } else {
            chuan_api_common::empty()
        };
        Ok(b.body(body).expect("valid"))
    }

    pub(crate) async fn delete_file(&self, ctx: Ctx) -> UfileResult<Resp> {
        // Like the service: deleting a missing file is an error.
        if self.engine.delete_object(&ctx.principal, &ctx.bucket, &ctx.key).await?.is_none() {
            return Err(UfileError::not_found());
        }
        Ok(empty(StatusCode::NO_CONTENT).body(chuan_api_common::empty()).expect("valid"))
    }

    /// `X-Ufile-Copy-Source: /bucket/key` (decoded by the router): the copy shares the content.
    pub(crate) async fn copy(&self, ctx: Ctx, source: &str) -> UfileResult<Resp> {
        let (src_bucket, src_key) = source
            .trim_start_matches('/')
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| UfileError::bad_request("X-Ufile-Copy-Source must be /bucket/key"))?;
        let target = PutTarget {
            bucket: ctx.bucket.clone(),
            key: ctx.key.clone(),
            meta: ObjectMeta::default(),
            condition: None,
            tree: chuan_core::store::TreeRule::Flat,
        };
        let rec = self.engine.copy_object(&ctx.principal, src_bucket, src_key, target, false).await?;
        let etag = self.ufile_etag(&rec).await?;
        Ok(empty(StatusCode::OK)
            .header(header::ETAG, etag_header(&etag))
            .body(chuan_api_common::empty())
            .expect("valid"))
    }

    /// `?newFileName=&force=`: without force an existing destination is refused; with it, the
    /// destination is replaced in the same transaction as the move.
    pub(crate) async fn rename(&self, ctx: Ctx, new_key: &str, force: bool) -> UfileResult<Resp> {
        if new_key.is_empty() {
            return Err(UfileError::bad_request("newFileName is required"));
        }
        self.engine.rename_key(&ctx.principal, &ctx.bucket, &ctx.key, new_key, force).await?;
        Ok(empty(StatusCode::OK).body(chuan_api_common::empty()).expect("valid"))
    }

    /// `?restore` and `?storageClass=`: Chuan has one storage class, always readable.
    pub(crate) async fn touch(&self, ctx: Ctx) -> UfileResult<Resp> {
        self.engine.head_object(&ctx.principal, &ctx.bucket, &ctx.key).await?;
        Ok(empty(StatusCode::OK)
            .header("x-ufile-restore", "ongoing-request=\"false\"")
            .body(chuan_api_common::empty())
            .expect("valid"))
    }

    /// `POST /key?opmeta` `{"op":"set","metak","metav"}`: `mimetype` sets the content type;
    /// other keys become user metadata (served as `X-Ufile-Meta-<k>`).
    pub(crate) async fn op_meta(&self, ctx: Ctx, body: RequestBody) -> UfileResult<Resp> {
        let raw = chuan_api_common::read_limited(body, MAX_OPMETA)
            .await
            .map_err(|e| e.or_timeout(|_| UfileError::bad_request("body too large")))?;
        let v: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| UfileError::bad_request(format!("malformed JSON: {e}")))?;
        let (op, k, val) =
            (v["op"].as_str().unwrap_or(""), v["metak"].as_str().unwrap_or(""), v["metav"].as_str().unwrap_or(""));
        if op != "set" || k.is_empty() {
            return Err(UfileError::bad_request("only op \"set\" with a metak is supported"));
        }
        let rec = self.engine.head_object(&ctx.principal, &ctx.bucket, &ctx.key).await?;
        let mut meta = rec.meta.clone();
        if k.eq_ignore_ascii_case("mimetype") {
            meta.content_type = Some(val.to_owned());
        } else {
            meta.user.insert(k.to_ascii_lowercase(), val.to_owned());
        }
        self.engine.update_object_meta(&ctx.principal, &rec, meta).await?;
        Ok(json(StatusCode::OK, &serde_json::json!({"RetCode": 0, "ErrMsg": ""})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_forms() {
        assert_eq!(
            md5_claim("C5371FE3624D438CD8A59420A3221978").unwrap().as_deref(),
            Some("c5371fe3624d438cd8a59420a3221978")
        );
        assert_eq!(md5_claim("XrY7u+Ae7tCTyyK7j1rNww==").unwrap().as_deref(), Some("5eb63bbbe01eeed093cb22bb8f5acdc3"));
        assert!(md5_claim("nope").is_err());
    }
}
