//! The form API: `POST /<service>/` with `policy` (base64 JSON), `authorization` and `file`.
//! The policy names the service, an `expiration`, the `save-key` pattern and optional limits
//! (`content-length-range`, `content-md5`, `content-type`); the authorization signs
//! `POST&/<service>/&<date>&<policy>` with the operator's key (`date` from the policy: the SDK
//! sends a stale `Date` header). The file part is streamed into the store and only committed
//! when every check holds.

use base64::Engine as _;
use chuan_api_common::form::{FormError, FormReader};
use chuan_api_common::RequestBody;
use chuan_core::store::{now_ms, ObjectMeta};
use chuan_core::{CoreError, PutTarget, StageOptions};
use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use crate::error::{UpyunError, UpyunResult};
use crate::{constant_time_eq, sign, Resp, UpyunDialect};

fn form_error(code: u32, msg: &str) -> UpyunError {
    UpyunError::coded(code, msg)
}

/// A form that is malformed or over the form limits (counted before any signature check).
pub(crate) fn form_refused(e: FormError) -> UpyunError {
    e.or_timeout(|e| match e {
        FormError::TooLarge(m) => form_error(41300001, &m),
        other => form_error(40000001, &other.to_string()),
    })
}

/// Expands `{year}{mon}{day}{hour}{min}{sec}{filename}{suffix}{.suffix}{filemd5}{random32}`.
pub fn save_key(pattern: &str, file_name: &str, md5: &str, now_secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(now_secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (stem, suffix) = match file_name.rsplit_once('.') {
        Some((s, x)) if !s.is_empty() => (s, x),
        _ => (file_name, ""),
    };
    let random = hex::encode(rand::random::<[u8; 16]>());
    let key = pattern
        .replace("{year}", &format!("{:04}", t.year()))
        .replace("{mon}", &format!("{:02}", t.month() as u8))
        .replace("{day}", &format!("{:02}", t.day()))
        .replace("{hour}", &format!("{:02}", t.hour()))
        .replace("{min}", &format!("{:02}", t.minute()))
        .replace("{sec}", &format!("{:02}", t.second()))
        .replace("{filename}", stem)
        .replace("{.suffix}", &if suffix.is_empty() { String::new() } else { format!(".{suffix}") })
        .replace("{suffix}", suffix)
        .replace("{filemd5}", md5)
        .replace("{random32}", &random)
        .replace("{random}", &random[..16]);
    key.trim_start_matches('/').to_owned()
}

impl UpyunDialect {
    pub(crate) async fn form_upload(&self, parts: &Parts, bucket: &str, body: RequestBody) -> UpyunResult<Resp> {
        let ct = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let boundary = chuan_api_common::form::boundary(&ct)
            .ok_or_else(|| form_error(40000001, "multipart/form-data required"))?;
        let mut form =
            FormReader::new(http_body_util::BodyDataStream::new(body), &boundary).counted(self.engine.metrics.clone());
        let mut fields: Vec<(String, String)> = Vec::new();
        loop {
            let Some(field) = form.next_field().await.map_err(form_refused)? else {
                return Err(form_error(40000001, "the form has no file"));
            };
            let name = field.name().unwrap_or("").to_owned();
            if name != "file" {
                fields.push((name, form.text(field).await.map_err(form_refused)?));
                continue;
            }
            if field_value(&fields, "authorization").is_none() && field_value(&fields, "signature").is_some() {
                return Ok(self.block_upload(bucket, &fields, field).await);
            }
            let policy_b64 = field_value(&fields, "policy").ok_or_else(|| form_error(40100012, "policy required"))?;
            let policy: Value = base64::engine::general_purpose::STANDARD
                .decode(policy_b64.trim())
                .ok()
                .and_then(|raw| serde_json::from_slice(&raw).ok())
                .ok_or_else(|| form_error(40100012, "policy format error"))?;
            let date = policy["date"].as_str().unwrap_or("");
            let auth = field_value(&fields, "authorization").unwrap_or_default();
            let (op, sig) = crate::parse_authorization(&auth).ok_or_else(|| form_error(40100005, "sign error"))?;
            let (key, p) = self.operator(op).await?;
            let sts = format!("POST&/{bucket}&{date}&{policy_b64}");
            let sts_slash = format!("POST&/{bucket}/&{date}&{policy_b64}");
            if !constant_time_eq(&sign(&key, &sts_slash), sig) && !constant_time_eq(&sign(&key, &sts), sig) {
                return Err(form_error(40100005, "sign error"));
            }
            let service = policy["service"].as_str().or_else(|| policy["bucket"].as_str()).unwrap_or("");
            if service != bucket {
                return Err(form_error(40100014, "policy service mismatch"));
            }
            let expiration = policy["expiration"]
                .as_i64()
                .or_else(|| policy["expiration"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            if expiration < now_ms() / 1000 {
                return Err(form_error(40100011, "policy expired"));
            }
            let pattern = policy["save-key"]
                .as_str()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| form_error(40100013, "save-key required"))?
                .to_owned();
            let file_name = field.file_name().unwrap_or("").to_owned();
            let file_type = field.content_type().map(|m| m.to_string());
            self.engine.check_bucket(&p, bucket).await?;
            let (lo, hi) = match policy["content-length-range"].as_str() {
                Some(range) => {
                    let (lo, hi) = range
                        .split_once(',')
                        .ok_or_else(|| form_error(40000004, "content-length-range format error"))?;
                    (lo.trim().parse().unwrap_or(0), hi.trim().parse().unwrap_or(u64::MAX))
                }
                None => (0, u64::MAX),
            };
            // The upper bound holds while the file streams in, not after it was all written.
            let out_of_range = || form_error(40300004, "file size out of content-length-range");
            let staged = match self.engine.stage_with(&p, field, StageOptions::at_most(hi)).await {
                Err(CoreError::EntityTooLarge { .. }) => return Err(out_of_range()),
                r => r?,
            };
            form.finish().await.map_err(form_refused)?;
            if staged.size < lo {
                return Err(out_of_range());
            }
            if policy["content-md5"].as_str().is_some_and(|m| !m.eq_ignore_ascii_case(&staged.digests.md5)) {
                return Err(form_error(40000006, "Content-MD5 not match"));
            }
            let md5 = staged.digests.md5.clone();
            let size = staged.size;
            let key = save_key(&pattern, &file_name, &md5, now_ms() / 1000);
            chuan_core::names::validate_key(&key)?;
            let content_type = policy["content-type"].as_str().map(str::to_owned).or(file_type);
            let meta = ObjectMeta { content_type: content_type.clone(), ..Default::default() };
            self.engine
                .commit_put(
                    &p,
                    PutTarget {
                        bucket: bucket.to_owned(),
                        key: key.clone(),
                        meta,
                        condition: None,
                        tree: chuan_core::store::TreeRule::KeepFolders,
                    },
                    staged,
                )
                .await?;
            return Ok(Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(chuan_api_common::full(
                    serde_json::to_vec(
                        &json!({"code": 200, "message": "ok", "url": format!("/{key}"), "time": now_ms() / 1000,
                        "file_size": size, "mimetype": content_type.unwrap_or_default(), "md5": md5,
                        "ext-param": policy["ext-param"].as_str().unwrap_or("")}),
                    )
                    .unwrap_or_default(),
                ))
                .expect("valid"));
        }
    }
}

fn field_value(fields: &[(String, String)], name: &str) -> Option<String> {
    fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_key_patterns() {
        let k = save_key("/up/{year}/{mon}/{filename}{.suffix}", "photo.jpg", "m", 1_698_796_800);
        assert_eq!(k, "up/2023/11/photo.jpg");
        assert_eq!(save_key("/x/{filemd5}.{suffix}", "a.tar", "abc", 0), "x/abc.tar");
        assert_eq!(save_key("/{random32}", "a", "m", 0).len(), 32);
    }
}
