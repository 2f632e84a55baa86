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
use md5::Digest as _;
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

/// Who signed a form, which decides how its result is signed.
enum Signer {
    /// `authorization` = `UPYUN op:sig` (2.5.5): callbacks carry `Date`, `Content-MD5` and an
    /// `Authorization` of the same operator.
    Operator { operator: String, key: String },
    /// `signature` = `md5hex(policy&form_secret)` (2.4.2, "签名认证（旧）"): results carry
    /// `sign` = `md5hex(code&message&url&time&form_secret[&ext-param])`.
    Secret(String),
}

/// Why the file's size is refused by `content-length-range`.
fn too_small() -> UpyunError {
    UpyunError::new(StatusCode::FORBIDDEN, 40300008, "file too small")
}
fn too_large() -> UpyunError {
    UpyunError::new(StatusCode::FORBIDDEN, 40300009, "file too large")
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
            let policy_b64 = field_value(&fields, "policy").ok_or_else(|| form_error(40000007, "need policy"))?;
            let policy: Value = base64::engine::general_purpose::STANDARD
                .decode(policy_b64.trim())
                .ok()
                .and_then(|raw| serde_json::from_slice(&raw).ok())
                .filter(Value::is_object)
                .ok_or_else(|| form_error(40000009, "decode policy error"))?;
            let (signer, p) = match (field_value(&fields, "authorization"), field_value(&fields, "signature")) {
                // A block of the m0 block upload (its policy names the upload's save_token).
                (None, Some(_)) if policy.get("save_token").is_some() => {
                    return Ok(self.block_upload(bucket, &fields, field).await);
                }
                (None, Some(signature)) => {
                    let (secret, p) = self.form_secret_of(bucket).await?;
                    let want = hex::encode(md5::Md5::digest(format!("{}&{secret}", policy_b64.trim()).as_bytes()));
                    if !constant_time_eq(&want, &signature.trim().to_ascii_lowercase()) {
                        return Err(UpyunError::sign());
                    }
                    (Signer::Secret(secret), p)
                }
                (auth, _) => {
                    let auth = auth.unwrap_or_default();
                    let date = policy["date"].as_str().unwrap_or("");
                    let (op, sig) = crate::parse_authorization(&auth).ok_or_else(UpyunError::sign)?;
                    let (key, p) = self.operator(op).await?;
                    let sts = format!("POST&/{bucket}&{date}&{policy_b64}");
                    let sts_slash = format!("POST&/{bucket}/&{date}&{policy_b64}");
                    if !constant_time_eq(&sign(&key, &sts_slash), sig) && !constant_time_eq(&sign(&key, &sts), sig) {
                        return Err(UpyunError::sign());
                    }
                    (Signer::Operator { operator: op.to_owned(), key }, p)
                }
            };
            let service = policy["service"].as_str().or_else(|| policy["bucket"].as_str()).unwrap_or("");
            if service != bucket {
                return Err(form_error(40100014, "policy service mismatch"));
            }
            let expiration = policy["expiration"]
                .as_i64()
                .or_else(|| policy["expiration"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            if expiration < now_ms() / 1000 {
                return Err(UpyunError::new(StatusCode::FORBIDDEN, 40300006, "authorization has expired"));
            }
            let pattern = policy["save-key"]
                .as_str()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| form_error(40000001, "need save-key"))?
                .to_owned();
            // Callback URLs are checked before anything is stored.
            for name in ["notify-url", "return-url"] {
                if let Some(url) = policy[name].as_str() {
                    chuan_core::check_callback_url(url).map_err(|e| form_error(40000001, &format!("{name}: {e}")))?;
                }
            }
            let file_name = field.file_name().unwrap_or("").to_owned();
            if let Some(types) = policy["allow-file-type"].as_str() {
                if !crate::types::allowed_file_type(types, &crate::types::extension(&file_name, &pattern)) {
                    return Err(UpyunError::new(StatusCode::FORBIDDEN, 40300010, "file type error"));
                }
            }
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
            let staged = match self.engine.stage_with(&p, field, StageOptions::at_most(hi).deferring_sha1()).await {
                Err(CoreError::EntityTooLarge { .. }) => return Err(too_large()),
                r => r?,
            };
            form.finish().await.map_err(form_refused)?;
            if staged.size < lo {
                return Err(too_small());
            }
            if policy["content-md5"].as_str().is_some_and(|m| !m.eq_ignore_ascii_case(&staged.digests.md5)) {
                return Err(form_error(40000006, "Content-MD5 not match"));
            }
            let md5 = staged.digests.md5.clone();
            let size = staged.size;
            let key = save_key(&pattern, &file_name, &md5, now_ms() / 1000);
            chuan_core::names::validate_key(&key)?;
            // The policy's type, else the saved file's extension (the file part's own type is
            // not the uploader's choice: SDKs send application/octet-stream for every file).
            let content_type = crate::types::content_type(policy["content-type"].as_str(), &key);
            let meta = ObjectMeta { content_type: Some(content_type.clone()), ..Default::default() };
            let target = PutTarget {
                bucket: bucket.to_owned(),
                key: key.clone(),
                meta,
                condition: None,
                tree: chuan_core::store::TreeRule::KeepFolders,
            };
            self.engine.commit_put(&p, target, staged).await?;
            return self.form_result(&policy, &signer, &key, size, &content_type, &md5).await;
        }
    }

    /// The answer to a stored form upload (`form_api.md` "通知规则"): `code`, `message`, `url`,
    /// `time` (and `ext-param`, and `sign` for secret-signed forms) as JSON, or in a 302 to
    /// `return-url`; POSTed to `notify-url` by the callback worker.
    async fn form_result(
        &self,
        policy: &Value,
        signer: &Signer,
        key: &str,
        size: u64,
        content_type: &str,
        md5: &str,
    ) -> UpyunResult<Resp> {
        let url = format!("/{key}");
        let time = (now_ms() / 1000).to_string();
        let mut result: Vec<(&str, String)> =
            vec![("code", "200".into()), ("message", "ok".into()), ("url", url.clone()), ("time", time.clone())];
        let ext = policy["ext-param"].as_str();
        if let Some(ext) = ext {
            result.push(("ext-param", ext.to_owned()));
        }
        if let Signer::Secret(secret) = signer {
            let mut plain = format!("200&ok&{url}&{time}&{secret}");
            if let Some(ext) = ext {
                plain.push('&');
                plain.push_str(ext);
            }
            result.push(("sign", hex::encode(md5::Md5::digest(plain.as_bytes()))));
        }
        if let Some(notify) = policy["notify-url"].as_str() {
            let body = chuan_api_common::urlencode(result.iter().map(|(k, v)| (k, v)));
            let headers = match signer {
                Signer::Operator { operator, key } => {
                    let date = chuan_api_common::http_date(now_ms());
                    let body_md5 = hex::encode(md5::Md5::digest(body.as_bytes()));
                    let path = notify_path(notify);
                    let sig = sign(key, &format!("POST&{path}&{date}&{body_md5}"));
                    vec![
                        ("Date".to_owned(), date),
                        ("Content-MD5".to_owned(), body_md5),
                        ("Authorization".to_owned(), format!("UPYUN {operator}:{sig}")),
                    ]
                }
                Signer::Secret(_) => Vec::new(),
            };
            self.engine.enqueue_callback(notify.to_owned(), headers, body).await?;
        }
        if let Some(back) = policy["return-url"].as_str() {
            return Ok(crate::redirect(back, &chuan_api_common::urlencode(result.iter().map(|(k, v)| (k, v)))));
        }
        let mut body: serde_json::Map<String, Value> =
            result.into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect();
        body.insert("code".into(), json!(200));
        body.insert("time".into(), json!(time.parse::<i64>().unwrap_or(0)));
        body.insert("file_size".into(), json!(size));
        body.insert("mimetype".into(), json!(content_type));
        body.insert("md5".into(), json!(md5));
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(chuan_api_common::full(serde_json::to_vec(&body).unwrap_or_default()))
            .expect("valid"))
    }
}

/// The path of a callback URL, which UpYun's callback signature covers (`/` when it has none).
fn notify_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
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

    #[test]
    fn callback_paths_and_extensions() {
        assert_eq!(notify_path("https://h:1/hooks/up?x=1"), "/hooks/up");
        assert_eq!(notify_path("http://h"), "/");
        assert_eq!(notify_path("http://h?x=/y"), "/");
    }
}
