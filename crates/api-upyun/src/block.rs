//! The legacy form-API block upload (`upyun` 2.3.0–2.4.2, host `m0.api.upyun.com`):
//! `POST /<bucket>/` init (urlencoded policy + signature with the bucket's form secret) →
//! `save_token`, `token_secret` and the status of each block; blocks (multipart, signed with the
//! `token_secret`, each checked against its MD5) in any order and in parallel; merge (checks the
//! whole-file MD5, assembles the blocks without copying). The session is a core upload session,
//! so a re-init of the same upload resumes from its status array, on any node.
//!
//! Signatures: `md5hex(concat(key + str(value)) for keys in sorted order, then the secret)`.
//! Results of a merge carry the same kind of signature (with the form secret); `return-url`
//! answers 302 to it with the result in the query; `notify-url` gets it POSTed (form-encoded)
//! by the server's callback worker, retried with back-off. `image-width-range` and
//! `image-height-range` are checked from the image header; `x-gmkerl-*` image processing is
//! not served (Chuan does not transform images).

use base64::Engine as _;
use chuan_core::store::{now_ms, CredentialKind, ObjectMeta, UploadKind, UploadRecord};
use chuan_core::{
    Claim, Completion, CoreError, CredentialSpec, NewUpload, Op, PartList, Principal, Scope, StageOptions,
};
use http::{Response, StatusCode};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::UpyunError;
use crate::{Resp, UpyunDialect};

/// The credential a bucket's form secret is kept as.
fn form_secret_key(bucket: &str) -> String {
    format!("upyun-form:{bucket}")
}

/// Python's `str()` of a JSON value, as the SDK formats values when signing.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

pub fn multi_signature(params: &Map<String, Value>, secret: &str) -> String {
    let mut keys: Vec<&String> = params.keys().collect();
    keys.sort();
    let mut h = Md5::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update(py_str(&params[k]).as_bytes());
    }
    h.update(secret.as_bytes());
    hex::encode(h.finalize())
}

/// Errors of this API: `{"error_code", "message", "path"}`.
pub struct BlockError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl BlockError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    fn auth(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "40101", message)
    }
    fn param(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "40001", message)
    }
    fn response(&self, path: &str) -> Resp {
        Response::builder()
            .status(self.status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(chuan_api_common::full(
                serde_json::to_vec(&json!({"error_code": self.code, "message": self.message, "path": path}))
                    .unwrap_or_default(),
            ))
            .expect("valid")
    }
}

impl From<chuan_core::CoreError> for BlockError {
    fn from(e: chuan_core::CoreError) -> Self {
        let u = UpyunError::from(e);
        Self::new(u.status, if u.status == StatusCode::NOT_FOUND { "40401" } else { "40307" }, u.msg)
    }
}

/// What a block upload remembers besides its blocks (it lives as long as the core keeps
/// `UploadKind::UpyunBlock` sessions: a day; `expired_at` is the session's expiry).
#[derive(Serialize, Deserialize)]
struct BlockState {
    path: String,
    blocks: u32,
    file_hash: String,
    file_size: u64,
    token_secret: String,
    /// The policy's optional parameters (content-length-range, return-url, ext-param...).
    options: Map<String, Value>,
}

fn decode_policy(policy_b64: &str) -> Result<Map<String, Value>, BlockError> {
    base64::engine::general_purpose::STANDARD
        .decode(policy_b64.trim())
        .ok()
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .and_then(|v| v.as_object().cloned())
        .ok_or_else(|| BlockError::param("policy format error"))
}

fn num(v: &Map<String, Value>, k: &str) -> Option<i64> {
    v.get(k).and_then(|x| x.as_i64().or_else(|| x.as_str().and_then(|s| s.parse().ok())))
}

fn state_of(up: &UploadRecord) -> Option<BlockState> {
    (up.kind == UploadKind::UpyunBlock).then(|| serde_json::from_str(&up.state).ok()).flatten()
}

/// The session's expiry in unix seconds (what the protocol calls `expired_at`).
fn expired_at(up: &UploadRecord) -> i64 {
    up.expires_ms.map_or(i64::MAX / 1000, |e| e / 1000)
}

fn missing() -> BlockError {
    BlockError::new(StatusCode::FORBIDDEN, "40304", "Missing file.")
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(chuan_api_common::full(serde_json::to_vec(v).unwrap_or_default()))
        .expect("valid")
}

impl UpyunDialect {
    /// A fresh form secret for a bucket of `tenant` (the previous one stops working), on the
    /// authority of `issuer` (the root): a credential that may only write into that bucket
    /// (what the block upload needs), accepted by the block upload alone.
    pub async fn new_form_secret(&self, issuer: &Principal, tenant: &str, bucket: &str) -> Result<String, CoreError> {
        let mut spec = CredentialSpec::new(tenant, CredentialKind::UpyunFormSecret);
        spec.access_key = Some(form_secret_key(bucket));
        spec.secret = Some(hex::encode(rand::random::<[u8; 16]>()));
        spec.scope = Some(Scope { ops: Some(vec![Op::Write]), buckets: Some(vec![bucket.to_owned()]), prefixes: None });
        Ok(self.engine.issue_credential(issuer, spec).await?.secret)
    }

    /// The bucket's form secret and the principal it stands for.
    async fn form_secret(&self, bucket: &str) -> Result<(String, Principal), BlockError> {
        self.engine
            .credential(&form_secret_key(bucket), &[CredentialKind::UpyunFormSecret])
            .await?
            .ok_or_else(|| BlockError::new(StatusCode::FORBIDDEN, "40301", "Form API disabled."))
    }

    /// The bucket's form secret and the principal it stands for, for the secret-signed form
    /// API (2.4.2). A bucket without one (or no such bucket: the same answer, so anonymous
    /// callers learn nothing about bucket names) is refused as UpYun refuses a wrong signature.
    pub(crate) async fn form_secret_of(&self, bucket: &str) -> crate::error::UpyunResult<(String, Principal)> {
        self.engine
            .credential(&form_secret_key(bucket), &[CredentialKind::UpyunFormSecret])
            .await?
            .ok_or_else(UpyunError::sign)
    }

    /// Init or merge: `application/x-www-form-urlencoded` `policy` + `signature`.
    pub(crate) async fn block_form(&self, bucket: &str, fields: &[(String, String)]) -> Resp {
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str()).unwrap_or("");
        let policy = match decode_policy(get("policy")) {
            Ok(p) => p,
            Err(e) => return e.response(""),
        };
        let path = policy.get("path").and_then(Value::as_str).unwrap_or("").to_owned();
        let result = if policy.contains_key("save_token") {
            self.block_merge(bucket, &policy, get("signature")).await
        } else {
            self.block_init(bucket, &policy, get("signature")).await
        };
        result.unwrap_or_else(|e| e.response(&path))
    }

    async fn session(
        &self,
        p: &Principal,
        bucket: &str,
        token: &str,
    ) -> Result<(UploadRecord, BlockState), BlockError> {
        let not_found = || BlockError::new(StatusCode::NOT_FOUND, "40402", "Blocks NotFound.");
        let up = self.engine.upload_by_id(p, token).await.map_err(|_| not_found())?;
        let state = state_of(&up).ok_or_else(not_found)?;
        if up.bucket != bucket {
            return Err(not_found());
        }
        Ok((up, state))
    }

    async fn status(&self, p: &Principal, up: &UploadRecord, blocks: u32) -> Result<Vec<u8>, BlockError> {
        let parts = self.engine.list_parts(p, up, 0, 10_001).await?;
        Ok((1..=blocks).map(|n| parts.iter().any(|x| x.number == n) as u8).collect())
    }

    async fn block_init(&self, bucket: &str, policy: &Map<String, Value>, signature: &str) -> Result<Resp, BlockError> {
        let (secret, p) = self.form_secret(bucket).await?;
        if !crate::constant_time_eq(&multi_signature(policy, &secret), &signature.to_ascii_lowercase()) {
            return Err(BlockError::auth("Auth failed"));
        }
        if num(policy, "expiration").unwrap_or(0) < now_ms() / 1000 {
            return Err(BlockError::auth("policy expired"));
        }
        let path = policy
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| BlockError::param("path required"))?;
        let key = path.trim_start_matches('/').to_owned();
        chuan_core::names::validate_key(&key)?;
        let blocks = num(policy, "file_blocks")
            .filter(|b| (1..=10_000).contains(b))
            .ok_or_else(|| BlockError::new(StatusCode::FORBIDDEN, "40302", "Invalid file blocks."))?
            as u32;
        let file_size =
            num(policy, "file_size").filter(|s| *s >= 0).ok_or_else(|| BlockError::param("file_size required"))? as u64;
        let file_hash = policy
            .get("file_hash")
            .and_then(Value::as_str)
            .filter(|h| h.len() == 32)
            .ok_or_else(|| BlockError::new(StatusCode::FORBIDDEN, "40303", "Invalid file hash."))?
            .to_ascii_lowercase();
        if let Some(range) = policy.get("content-length-range").and_then(Value::as_str) {
            let (lo, hi) =
                range.split_once(',').ok_or_else(|| BlockError::param("content-length-range format error"))?;
            if file_size < lo.trim().parse().unwrap_or(0) || file_size > hi.trim().parse().unwrap_or(u64::MAX) {
                return Err(BlockError::new(StatusCode::FORBIDDEN, "40307", "file size out of content-length-range"));
            }
        }
        for name in ["notify-url", "return-url"] {
            if let Some(url) = policy.get(name).and_then(Value::as_str) {
                // Refused now rather than given up on (or unanswerable) after the merge.
                chuan_core::check_callback_url(url).map_err(|e| BlockError::param(format!("{name}: {e}")))?;
            }
        }
        if let Some(types) = policy.get("allow-file-type").and_then(Value::as_str) {
            if !crate::types::allowed_file_type(types, &crate::types::extension("", &key)) {
                return Err(BlockError::new(StatusCode::FORBIDDEN, "40307", "file type not allowed"));
            }
        }
        // The same upload begun before (and not expired): resume it.
        for u in self.engine.open_uploads(&p, bucket, &key, UploadKind::UpyunBlock).await? {
            if let Some(s) = state_of(&u) {
                if s.file_hash == file_hash && s.file_size == file_size && s.blocks == blocks {
                    let status = self.status(&p, &u, blocks).await?;
                    return Ok(json_resp(
                        StatusCode::OK,
                        &json!({"save_token": u.id, "token_secret": s.token_secret, "bucket_name": bucket, "blocks": blocks,
                                "status": status, "expired_at": expired_at(&u)}),
                    ));
                }
            }
        }
        let known = ["path", "expiration", "file_blocks", "file_hash", "file_size"];
        let options: Map<String, Value> =
            policy.iter().filter(|(k, _)| !known.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        let state = BlockState {
            path: path.to_owned(),
            blocks,
            file_hash,
            file_size,
            token_secret: hex::encode(rand::random::<[u8; 16]>()),
            options,
        };
        // UpYun takes the type from the policy, or guesses it from the extension.
        let content_type = policy
            .get("content-type")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| crate::types::content_type(None, &key));
        let mut meta = ObjectMeta { content_type: Some(content_type), ..Default::default() };
        if let Some(secret) = policy.get("content-secret").and_then(Value::as_str) {
            meta.attrs.insert(crate::rest::CONTENT_SECRET.into(), secret.to_owned());
        }
        let mut new = NewUpload::new(UploadKind::UpyunBlock, bucket, &key);
        new.meta = meta;
        new.state = serde_json::to_string(&state).expect("serialisable");
        let up = self.engine.create_upload(&p, new).await?;
        Ok(json_resp(
            StatusCode::OK,
            &json!({"save_token": up.id, "token_secret": state.token_secret, "bucket_name": bucket, "blocks": blocks,
                    "status": vec![0u8; blocks as usize], "expired_at": expired_at(&up)}),
        ))
    }

    /// One block: multipart `policy` (save_token, expiration, block_index, block_hash),
    /// `signature` with the token secret, `file`.
    pub(crate) async fn block_upload(
        &self,
        bucket: &str,
        fields: &[(String, String)],
        file: chuan_api_common::form::Field<'static>,
    ) -> Resp {
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap_or_default();
        let result: Result<Resp, BlockError> = async {
            let policy = decode_policy(&get("policy"))?;
            let (_, p) = self.form_secret(bucket).await?;
            let token = policy.get("save_token").and_then(Value::as_str).unwrap_or("");
            let (up, state) = self.session(&p, bucket, token).await?;
            if !crate::constant_time_eq(&multi_signature(&policy, &state.token_secret), &get("signature").to_ascii_lowercase()) {
                return Err(BlockError::auth("Auth failed"));
            }
            if num(&policy, "expiration").unwrap_or(0) < now_ms() / 1000 {
                return Err(BlockError::auth("policy expired"));
            }
            let index = num(&policy, "block_index").filter(|i| *i >= 0 && (*i as u32) < state.blocks).ok_or_else(|| BlockError::param("block_index out of range"))? as u32;
            let hash = policy.get("block_hash").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
            // No block is larger than the file it is part of.
            let staged = self.engine.stage_with(&p, file, StageOptions::at_most(state.file_size).deferring_sha1()).await?;
            if staged.digests.md5 != hash {
                return Err(BlockError::new(StatusCode::FORBIDDEN, "40305", "Block hash error."));
            }
            self.engine.commit_part(&p, &up, index + 1, staged).await?;
            let status = self.status(&p, &up, state.blocks).await?;
            Ok(json_resp(
                StatusCode::OK,
                &json!({"save_token": up.id, "bucket_name": bucket, "blocks": state.blocks, "status": status, "expired_at": expired_at(&up)}),
            ))
        }
        .await;
        result.unwrap_or_else(|e| e.response(""))
    }

    async fn block_merge(
        &self,
        bucket: &str,
        policy: &Map<String, Value>,
        signature: &str,
    ) -> Result<Resp, BlockError> {
        let (secret, p) = self.form_secret(bucket).await?;
        let token = policy.get("save_token").and_then(Value::as_str).unwrap_or("");
        let (up, state) = self.session(&p, bucket, token).await?;
        if !crate::constant_time_eq(&multi_signature(policy, &state.token_secret), &signature.to_ascii_lowercase()) {
            return Err(BlockError::auth("Auth failed"));
        }
        if num(policy, "expiration").unwrap_or(0) < now_ms() / 1000 {
            return Err(BlockError::auth("policy expired"));
        }
        let claimed_md5 = state.options.get("content-md5").and_then(Value::as_str).map(str::to_ascii_lowercase);
        // Image limits: the dimensions come from the file's first bytes (its header), read
        // from the stored blocks before anything is published.
        let mut image: Option<(u64, u64)> = None;
        let wants_image = ["image-width-range", "image-height-range"].iter().any(|k| state.options.contains_key(*k));
        if wants_image {
            let head = match self.engine.read_upload_head(&p, &up, state.blocks, 256 << 10).await {
                Ok(h) => h,
                Err(CoreError::MissingParts(_)) => return Err(missing()),
                Err(e) => return Err(e.into()),
            };
            let size = imagesize::blob_size(&head).map_err(|_| {
                BlockError::new(
                    StatusCode::FORBIDDEN,
                    "40307",
                    "not an image: image-width-range/image-height-range need one",
                )
            })?;
            let (w, h) = (size.width as u64, size.height as u64);
            for (key, value) in [("image-width-range", w), ("image-height-range", h)] {
                if let Some(range) = state.options.get(key).and_then(Value::as_str) {
                    let (lo, hi) =
                        range.split_once(',').ok_or_else(|| BlockError::param(format!("{key} format error")))?;
                    if value < lo.trim().parse().unwrap_or(0) || value > hi.trim().parse().unwrap_or(u64::MAX) {
                        self.engine.abort_upload(&p, &up).await?;
                        return Err(BlockError::new(StatusCode::FORBIDDEN, "40307", format!("image outside {key}")));
                    }
                }
            }
            image = Some((w, h));
        }
        let mut completion = Completion::new(PartList::All { count: state.blocks });
        completion.size = Some(state.file_size);
        completion.claims.push(Claim::Md5(state.file_hash.clone()));
        if let Some(md5) = claimed_md5 {
            completion.claims.push(Claim::Md5(md5));
        }
        let rec = match self.engine.complete_upload(&p, &up, completion).await {
            Ok(done) => done.object,
            Err(CoreError::MissingParts(_)) => return Err(missing()),
            // The assembled bytes are not the file announced: the core kept nothing of it.
            Err(CoreError::BadDigest { .. }) => {
                return Err(BlockError::new(StatusCode::FORBIDDEN, "40306", "File hash error."))
            }
            Err(CoreError::SizeMismatch { .. }) => {
                self.engine.abort_upload(&p, &up).await?;
                return Err(BlockError::new(StatusCode::FORBIDDEN, "40306", "File hash error."));
            }
            Err(e) => return Err(e.into()),
        };
        let mut result = Map::new();
        result.insert("bucket_name".into(), json!(bucket));
        result.insert("path".into(), json!(state.path));
        result.insert(
            "content_type".into(),
            json!(rec.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into())),
        );
        result.insert("content_length".into(), json!(rec.size));
        result.insert("last_modified".into(), json!(rec.modified_ms / 1000));
        if let Some((w, h)) = image {
            result.insert("image_width".into(), json!(w));
            result.insert("image_height".into(), json!(h));
            result.insert("image_frames".into(), json!(1));
        }
        if let Some(ext) = state.options.get("ext-param") {
            result.insert("ext-param".into(), ext.clone());
        }
        let sig = multi_signature(&result, &secret);
        result.insert("signature".into(), json!(sig));
        // notify-url: the same signed result, POSTed asynchronously by the callback worker
        // (persisted, so it survives restarts; retried with back-off).
        let encoded = chuan_api_common::urlencode(result.iter().map(|(k, v)| (k, py_str(v))));
        if let Some(url) = state.options.get("notify-url").and_then(Value::as_str) {
            self.engine.enqueue_callback(url.to_owned(), Vec::new(), encoded.clone()).await?;
        }
        if let Some(url) = state.options.get("return-url").and_then(Value::as_str) {
            return Ok(crate::redirect(url, &encoded));
        }
        Ok(json_resp(StatusCode::OK, &Value::Object(result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_documented_example() {
        let v: Value = serde_json::from_str(
            r#"{"path":"/demo.png","expiration":1409200758,"file_blocks":1,"file_size":653252,"file_hash":"b1143cbc07c8e768d517fa5e73cb79ca"}"#,
        )
        .unwrap();
        assert_eq!(
            multi_signature(v.as_object().unwrap(), "cAnyet74l9hdUag34h2dZu8z7gU="),
            "a178e6e3ff4656e437811616ca842c48"
        );
        // client-sdks.md §2.5 example.
        let v: Value = serde_json::from_str(
            r#"{"expiration":1698800000,"file_blocks":3,"file_hash":"0123456789abcdef0123456789abcdef","file_size":2621440,"path":"/big.bin"}"#,
        )
        .unwrap();
        assert_eq!(multi_signature(v.as_object().unwrap(), "formsecret"), "e03630d96a6de682dc3dc9e3fc9afbc9");
    }
}
