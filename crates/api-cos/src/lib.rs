//! The Tencent COS JSON API dialect: v4 at `/files/v2/<appid>/<bucket>/<path>`
//! (`qcloud_cos_v4` 0.0.9) and the older v3 at `/files/v1/...` (`qcloud-cos` 3.3.6), plus
//! downloads at `http://<bucket>-<appid>.<host>/<path>?sign=...`.
//!
//! A translator over the core engine: a COS path `/a/b.txt` is the object `a/b.txt` of the
//! bucket, a directory `/a/` the empty object `a/` (keys under `a/` put through another
//! protocol make `a/` appear as a directory too), slice uploads are core upload sessions
//! completed without copying. Each tenant has an appid (a random alias the core allocates
//! once, see [`CosDialect::appid_of`]); its SecretID/SecretKey are any of its access key pairs.
//! An unknown appid is answered exactly like another tenant's, so appids cannot be probed.
//!
//! * `auth.rs` — signatures (multi-use and once), the replay guard of once signatures;
//! * `dir.rs` — create, list, stat and delete directories;
//! * `file.rs` — simple upload, stat, update, move, copy, delete of files;
//! * `slice.rs` — slice uploads (v4 init/data/finish/list, v3 `upload_slice`), with each
//!   slice checked against the client's SHA-1 chain states;
//! * `download.rs` — the download host, ranges, `authority`.
//!
//! Every answer is `{code, message, request_id, data}`; errors are HTTP 400 (the SDKs read
//! the body of 200 and 400 answers only).

mod auth;
mod dir;
mod download;
mod error;
mod file;
mod slice;

pub use auth::{sign, Signature};

use chuan_api_common::form::{FormError, FormReader};
use chuan_api_common::{Body, RequestBody};
use chuan_core::store::{now_ms, GrantKind};
use chuan_core::{AliasKind, CoreError, CoreResult, Engine, Principal, StageOptions, Staged, KEY_PAIRS};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

use error::{CosError, CosResult};

pub type Resp = Response<Body>;

/// Largest simple upload (the spec's 20 MB; larger files go in slices).
const MAX_SIMPLE_UPLOAD: u64 = 20 << 20;
/// Largest slice (the largest allowed `slice_size`).
const MAX_SLICE: u64 = 3 << 20;
/// JSON bodies and form fields other than `filecontent` are small.
const MAX_FIELD: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// `/files/v1` (`qcloud-cos` 3.3.6).
    V3,
    /// `/files/v2` (`qcloud_cos_v4`).
    V4,
}

/// What a request addresses.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    version: Version,
    appid: String,
    bucket: String,
    /// Decoded COS path, starting with `/` (`/` alone is the bucket's root).
    path: String,
    /// `host[:port]` the client addressed.
    host: String,
    /// `host[:port]` under which `<bucket>-<appid>.` download hosts are formed.
    download_domain: String,
}

impl Target {
    fn key(&self) -> &str {
        &self.path[1..]
    }
    fn fileid(&self) -> String {
        format!("/{}/{}{}", self.appid, self.bucket, self.path)
    }
    fn is_dir(&self) -> bool {
        self.path.ends_with('/')
    }
    fn api_prefix(&self) -> &'static str {
        match self.version {
            Version::V3 => "/files/v1",
            Version::V4 => "/files/v2",
        }
    }
    /// The URLs COS answers for a stored file.
    fn urls(&self, key: &str) -> Value {
        let quoted = quote_path(key);
        let download = format!("http://{}-{}.{}/{quoted}", self.bucket, self.appid, self.download_domain);
        json!({
            "access_url": download,
            "source_url": download,
            "resource_path": format!("/{}/{}/{quoted}", self.appid, self.bucket),
            "url": format!("http://{}{}/{}/{}/{quoted}", self.host, self.api_prefix(), self.appid, self.bucket),
            "vid": hex::encode(rand::random::<[u8; 16]>()),
        })
    }
}

/// Percent-encodes a key for a URL path, keeping `/` (as the SDKs' `quote(path, '~/')`).
pub(crate) fn quote_path(key: &str) -> String {
    key.split('/').map(chuan_api_common::percent_encode).collect::<Vec<_>>().join("/")
}

/// Which signature an operation needs (the spec's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    Multi,
    Once,
    /// v3 `move` is signed multi-use by `qcloud-cos` 3.3.6, once by the spec.
    Either,
}

/// An authenticated request.
pub(crate) struct Ctx {
    p: Principal,
    sig: Signature,
    t: Target,
}

/// A COS form: its small fields, and `filecontent` staged into the store (not yet visible).
pub(crate) struct Form {
    fields: HashMap<String, String>,
    content: Option<Staged>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }
    fn num(&self, name: &str) -> CosResult<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| CosError::param(format!("{name} must be a number"))),
        }
    }
}

/// How the COS SDKs encode (client-sdks.md §3): paths with `quote(path, '~/')` (`%20`, `%2B`);
/// query values with requests' `params=` (`quote_plus`: `+` is a space), except the v4
/// download `sign`, base64 placed in the URL unencoded; form fields and JSON values are not
/// encoded at all (so never decoded).
pub(crate) const WIRE: chuan_api_common::Wire =
    chuan_api_common::Wire::new(chuan_api_common::query::Plus::Space, &["sign"]);

pub struct CosDialect {
    engine: Arc<Engine>,
    /// Where download hosts live (`CHUAN_COS_DOWNLOAD_DOMAIN`); by default the API's host, or
    /// `localhost` when the API is addressed by IP (`<bucket>-<appid>.127.0.0.1` is no name).
    download_domain: Option<String>,
    /// Slices stored (an instant upload stores none).
    slices: prometheus_client::metrics::counter::Counter,
}

pub(crate) fn ok(data: Option<Value>) -> Resp {
    let mut body = json!({"code": 0, "message": "SUCCESS", "request_id": request_id()});
    if let Some(d) = data {
        body["data"] = d;
    }
    json_response(StatusCode::OK, &body)
}

fn request_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

fn json_response(status: StatusCode, v: &Value) -> Resp {
    chuan_api_common::json_typed(status, "application/json; charset=utf-8", v)
}

fn error_response(e: &CosError) -> Resp {
    let mut body = json!({"code": e.code, "message": e.message, "request_id": request_id()});
    if let Some(d) = &e.data {
        body["data"] = d.clone();
    }
    json_response(StatusCode::BAD_REQUEST, &body)
}

impl CosDialect {
    pub fn new(engine: Arc<Engine>, download_domain: Option<String>) -> Self {
        let slices = engine.metrics.register_counter("cos_slices", "Tencent COS slices stored");
        Self { engine, download_domain, slices }
    }

    fn download_domain_for(&self, host: &str) -> String {
        self.download_domain.clone().unwrap_or_else(|| default_download_domain(host))
    }

    /// The tenant's appid (see [`appid_of`]).
    pub async fn appid_of(&self, tenant: &str) -> CoreResult<u64> {
        appid_of(&self.engine, tenant).await
    }

    pub async fn handle(&self, req: Request<RequestBody>) -> Resp {
        match self.route(req).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    }

    fn target(&self, parts: &Parts) -> CosResult<Target> {
        let path = parts.uri.path();
        let (version, rest) = if let Some(r) = path.strip_prefix("/files/v2/") {
            (Version::V4, r)
        } else if let Some(r) = path.strip_prefix("/files/v1/") {
            (Version::V3, r)
        } else {
            return Err(CosError::new(-5994, "ERROR_CGI_URL_NOTMATCH: expected /files/v2/<appid>/<bucket>/<path>"));
        };
        let (appid, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let (bucket, raw) = rest.split_once('/').unwrap_or((rest, ""));
        if appid.is_empty() || !appid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CosError::new(-80, "ERROR_PROXY_INVALID_APPID: the appid must be a number"));
        }
        if bucket.is_empty() {
            return Err(CosError::new(-163, "ERROR_CMD_PARAM_PATH_ELEMENT_MISSING: the bucket is missing"));
        }
        let decoded = WIRE.path(&format!("/{raw}"));
        if decoded.contains('\0') || decoded.split('/').any(|s| s == "." || s == "..") || decoded.contains("//") {
            return Err(CosError::invalid_path("'.', '..', empty segments and NUL are not allowed in paths"));
        }
        let host = parts.headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
        Ok(Target {
            version,
            appid: appid.to_owned(),
            bucket: WIRE.path(bucket),
            path: decoded,
            host: host.to_owned(),
            download_domain: self.download_domain_for(host),
        })
    }

    /// Verifies the `Authorization` signature for `t` (its kind is checked per operation). An
    /// appid that names no tenant is answered as one that names another tenant (-62): the
    /// answers never say which appids exist.
    async fn authenticate(&self, parts: &Parts, t: &Target) -> CosResult<(Principal, Signature)> {
        let sign = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CosError::new(-81, "ERROR_PROXY_AUTH_SIGN_EMPTY: the Authorization signature is missing"))?;
        let sig = Signature::parse(sign)?;
        if sig.appid != t.appid {
            return Err(CosError::new(-70, "ERROR_PROXY_APPID_USERID_NOTMATCH: the signature is for another appid"));
        }
        if sig.bucket != t.bucket {
            return Err(CosError::new(-61, "ERROR_PROXY_SIGN_BUCKET_NOTMATCH: the signature is for another bucket"));
        }
        let (secret, p) = self
            .engine
            .credential(&sig.secret_id, KEY_PAIRS)
            .await?
            .ok_or_else(|| CosError::new(-79, "ERROR_PROXY_AUTH_SECRETID_NOEXIST: unknown SecretID"))?;
        sig.verify(&secret)?;
        if !self.engine.acts_as_alias(AliasKind::CosAppid, &t.appid, &p).await? {
            return Err(CosError::new(-62, "ERROR_PROXY_AUTH_APPID: the SecretID does not belong to this appid"));
        }
        if sig.is_once() && sig.fileid.is_empty() {
            return Err(CosError::new(-76, "ERROR_PROXY_AUTH_ONCESIGN_NOFILEID: a once signature must name its file"));
        }
        if !sig.fileid.is_empty() && !sig.covers(&t.fileid()) {
            return Err(CosError::new(-63, "ERROR_PROXY_FILEID_NOTMATCH: the signature is for another path"));
        }
        sig.check_time(now_ms() / 1000, false)?;
        Ok((p, sig))
    }

    /// Checks the signature kind an operation needs; a once signature is spent here, before
    /// the operation runs, so a replay changes nothing.
    async fn require(&self, ctx: &Ctx, need: Need) -> CosResult<()> {
        match (need, ctx.sig.is_once()) {
            (Need::Once, false) => {
                return Err(CosError::new(
                    -73,
                    "ERROR_PROXY_AUTH_ONCESIGN_EXPIREDNOTEMPTY: this operation needs a once signature (e=0)",
                ))
            }
            (Need::Multi, true) => {
                return Err(CosError::new(
                    -74,
                    "ERROR_PROXY_AUTH_MULTISIGN_EXPIREDEMPTY: this operation needs a multi-use signature (e>0)",
                ))
            }
            _ => {}
        }
        if ctx.sig.is_once() {
            // Remembered for twice the window in which a once signature is accepted.
            let remember = std::time::Duration::from_secs(2 * auth::ONCE_WINDOW_SECS as u64);
            if !self.engine.spend_once(GrantKind::CosOnce, &ctx.sig.once_id(), remember).await? {
                return Err(CosError::new(-77, "ERROR_PROXY_AUTH_REPLAY_ATTACH: this once signature was already used"));
            }
        }
        Ok(())
    }

    async fn route(&self, req: Request<RequestBody>) -> CosResult<Resp> {
        let (parts, body) = req.into_parts();
        let t = self.target(&parts)?;
        let (p, sig) = self.authenticate(&parts, &t).await?;
        self.engine.check_bucket(&p, &t.bucket).await?;
        let ctx = Ctx { p, sig, t };
        let query = WIRE.query(parts.uri.query());
        let qop = query.get("op").unwrap_or_default().to_owned();
        match parts.method {
            Method::GET => match qop.as_str() {
                "stat" => {
                    self.require(&ctx, Need::Multi).await?;
                    if ctx.t.is_dir() {
                        self.stat_dir(&ctx).await
                    } else {
                        self.stat_file(&ctx).await
                    }
                }
                "list" => {
                    self.require(&ctx, Need::Multi).await?;
                    self.list(&ctx, &query).await
                }
                "" => Err(CosError::new(-5980, "ERROR_CGI_PARAM_MISSING_OP: the op parameter is missing")),
                other => Err(CosError::new(-5992, format!("ERROR_CGI_REQ_PARAM: unknown op {other}"))),
            },
            Method::POST if qop == "move" => {
                self.require(&ctx, Need::Once).await?;
                let dest = query.get("dest_fileid").unwrap_or_default();
                let over = query.get("to_over_write").is_some_and(|v| v.trim() == "1");
                self.move_file(&ctx, dest, over).await
            }
            Method::POST => {
                let ct = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
                if ct.to_ascii_lowercase().starts_with("multipart/form-data") {
                    let form = self.read_form(&ctx.p, ct, body).await?;
                    self.form_op(&ctx, form).await
                } else {
                    let raw = chuan_api_common::read_limited(body, MAX_FIELD).await.map_err(|e| {
                        e.or_timeout(|_| CosError::new(-5975, "ERROR_CGI_JSON_PARSE_ERROR: the JSON body is too large"))
                    })?;
                    let v: Value = serde_json::from_slice(&raw).map_err(|e| {
                        CosError::new(-5975, format!("ERROR_CGI_JSON_PARSE_ERROR: the body is not JSON: {e}"))
                    })?;
                    self.json_op(&ctx, &v).await
                }
            }
            _ => Err(CosError::new(-5996, "ERROR_CGI_REQ_METHOD: use GET or POST")),
        }
    }

    async fn json_op(&self, ctx: &Ctx, v: &Value) -> CosResult<Resp> {
        let op = v["op"].as_str().unwrap_or("");
        match op {
            "create" => {
                self.require(ctx, Need::Multi).await?;
                self.create_dir(ctx, v["biz_attr"].as_str().unwrap_or("")).await
            }
            "delete" => {
                self.require(ctx, Need::Once).await?;
                if ctx.t.is_dir() {
                    self.delete_dir(ctx).await
                } else {
                    self.delete_file(ctx).await
                }
            }
            "update" => {
                self.require(ctx, Need::Once).await?;
                self.update(ctx, v).await
            }
            "move" if ctx.t.version == Version::V3 => {
                self.require(ctx, Need::Either).await?;
                let dest = v["dest_fileid"].as_str().unwrap_or("");
                self.move_file(ctx, dest, flag_of(&v["to_over_write"])).await
            }
            "" => Err(CosError::new(-5980, "ERROR_CGI_PARAM_MISSING_OP: the op field is missing")),
            other => Err(CosError::new(-5992, format!("ERROR_CGI_REQ_PARAM: unknown op {other}"))),
        }
    }

    async fn form_op(&self, ctx: &Ctx, form: Form) -> CosResult<Resp> {
        let op = form.get("op").unwrap_or("").to_owned();
        match op.as_str() {
            "upload" => {
                self.require(ctx, Need::Multi).await?;
                self.simple_upload(ctx, form).await
            }
            "upload_slice_init" => {
                self.require(ctx, Need::Multi).await?;
                self.slice_init(ctx, form).await
            }
            "upload_slice_data" => {
                self.require(ctx, Need::Multi).await?;
                self.slice_data(ctx, form).await.map(|(r, _)| r)
            }
            "upload_slice_finish" => {
                self.require(ctx, Need::Multi).await?;
                self.slice_finish(ctx, form).await
            }
            "upload_slice_list" => {
                self.require(ctx, Need::Multi).await?;
                self.slice_list(ctx).await
            }
            "upload_slice" if ctx.t.version == Version::V3 => {
                self.require(ctx, Need::Multi).await?;
                self.slice_v3(ctx, form).await
            }
            "copy" => {
                self.require(ctx, Need::Once).await?;
                let dest = form.get("dest_fileid").unwrap_or("").to_owned();
                let over = form.get("to_over_write") == Some("1");
                self.copy_file(ctx, &dest, over).await
            }
            "move" => {
                self.require(ctx, if ctx.t.version == Version::V3 { Need::Either } else { Need::Once }).await?;
                let dest = form.get("dest_fileid").unwrap_or("").to_owned();
                let over = form.get("to_over_write") == Some("1");
                self.move_file(ctx, &dest, over).await
            }
            "" => Err(CosError::new(-5980, "ERROR_CGI_PARAM_MISSING_OP: the op field is missing")),
            other => Err(CosError::new(-5992, format!("ERROR_CGI_REQ_PARAM: unknown op {other}"))),
        }
    }

    /// Reads a COS form (the SDKs send every field as a file part, `filecontent` before the
    /// `session`/`offset` that say where it goes): small fields into memory, `filecontent`
    /// streamed into a staged blob, refused past the largest size any operation accepts.
    async fn read_form(&self, p: &Principal, content_type: &str, body: RequestBody) -> CosResult<Form> {
        let refused = |e: FormError| e.or_timeout(|e| CosError::new(-5993, format!("ERROR_CGI_FORM_ERR: {e}")));
        let boundary = chuan_api_common::form::boundary(content_type)
            .ok_or_else(|| CosError::new(-5993, "ERROR_CGI_FORM_ERR: the multipart boundary is missing"))?;
        let mut reader =
            FormReader::new(http_body_util::BodyDataStream::new(body), &boundary).counted(self.engine.metrics.clone());
        let mut form = Form { fields: HashMap::new(), content: None };
        while let Some(field) = reader.next_field().await.map_err(refused)? {
            let name = field.name().unwrap_or("").to_owned();
            if name == "filecontent" {
                if form.content.is_some() {
                    return Err(CosError::new(-5993, "ERROR_CGI_FORM_ERR: filecontent sent twice"));
                }
                let limit = match form.get("op") {
                    Some("upload_slice_data" | "upload_slice") => MAX_SLICE,
                    _ => MAX_SIMPLE_UPLOAD,
                };
                match self.engine.stage_with(p, field, StageOptions::at_most(limit)).await {
                    Ok(staged) => form.content = Some(staged),
                    Err(CoreError::EntityTooLarge { .. }) => {
                        return Err(CosError::new(
                            -285,
                            format!(
                                "ERROR_PROCESS_FILE_TOO_LARGE: at most {limit} bytes here; larger files go in slices"
                            ),
                        ))
                    }
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            form.fields.insert(name, reader.text(field).await.map_err(refused)?);
        }
        Ok(form)
    }

    /// Whether a directory (explicit entry, or implied by keys under it) exists; the root does.
    pub(crate) async fn dir_exists(&self, ctx: &Ctx, dir_key: &str) -> CosResult<bool> {
        if dir_key.is_empty() {
            return Ok(true);
        }
        // Explicit or implied by keys under it: the tree has it either way.
        match self.engine.entry(&ctx.p, &ctx.t.bucket, dir_key).await {
            Ok(_) => Ok(true),
            Err(CoreError::NoSuchKey) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses a path whose parent directory does not exist (-166).
    pub(crate) async fn check_parent(&self, ctx: &Ctx, key: &str) -> CosResult<()> {
        if self.dir_exists(ctx, parent_of(key)).await? {
            Ok(())
        } else {
            Err(CosError::parent_missing())
        }
    }

    /// `bucket-appid.host` of a download, if `host` names a bucket of a known appid.
    pub async fn download_target(&self, host: &str) -> Option<(String, String)> {
        let (bucket, appid) = download_host(host)?;
        let tenant = self.engine.tenant_of_alias(AliasKind::CosAppid, appid).await.ok()??;
        self.engine.bucket_owned_by(bucket, &tenant).await.ok()?.then(|| (bucket.to_owned(), appid.to_owned()))
    }
}

/// The tenant's appid: the core's random COS alias of the tenant, allocated on first use.
pub async fn appid_of(engine: &Engine, tenant: &str) -> CoreResult<u64> {
    let a = engine.tenant_alias(AliasKind::CosAppid, tenant).await?;
    a.parse().map_err(|_| CoreError::Internal(format!("bad COS appid {a} of {tenant}")))
}

/// The API's host, or `localhost` (same port) when the API is addressed by IP address.
fn default_download_domain(host: &str) -> String {
    let (name, port) = match host.rsplit_once(':') {
        // `[::1]:9000` and `host:9000` have a port; a bare IPv6 address has none.
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) && (n.ends_with(']') || !n.contains(':')) => (n, Some(p)),
        _ => (host, None),
    };
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() || !name.contains('.') {
        match port {
            Some(p) => format!("localhost:{p}"),
            None => "localhost".into(),
        }
    } else {
        host.to_owned()
    }
}

/// `<bucket>-<appid>` in the first label of a host name.
pub fn download_host(host: &str) -> Option<(&str, &str)> {
    let label = host.split('.').next()?;
    if !host.contains('.') {
        return None;
    }
    let (bucket, appid) = label.rsplit_once('-')?;
    (!bucket.is_empty() && appid.len() >= 5 && appid.bytes().all(|b| b.is_ascii_digit())).then_some((bucket, appid))
}

/// The parent directory key of `key` (`a/b/` for `a/b/c` and `a/b/c/`; `` at the root).
pub(crate) fn parent_of(key: &str) -> &str {
    let trimmed = key.strip_suffix('/').unwrap_or(key);
    match trimmed.rfind('/') {
        Some(i) => &key[..=i],
        None => "",
    }
}

/// `0`/`1` as a JSON number or string.
fn flag_of(v: &Value) -> bool {
    v.as_i64().map(|n| n == 1).or_else(|| v.as_str().map(|s| s.trim() == "1")).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_hosts() {
        assert_eq!(parent_of("a/b/c.txt"), "a/b/");
        assert_eq!(parent_of("a/b/"), "a/");
        assert_eq!(parent_of("a/"), "");
        assert_eq!(parent_of("c.txt"), "");
        assert_eq!(download_host("photos-1250000000.localhost:9000"), Some(("photos", "1250000000")));
        assert_eq!(download_host("my-photos-1250000000.cos.example.com"), Some(("my-photos", "1250000000")));
        assert_eq!(download_host("photos.localhost:9000"), None);
        assert_eq!(download_host("photos-12.localhost"), None);
        assert_eq!(quote_path("a b/c+d.txt"), "a%20b/c%2Bd.txt");
        assert_eq!(default_download_domain("127.0.0.1:9000"), "localhost:9000");
        assert_eq!(default_download_domain("[::1]:9000"), "localhost:9000");
        assert_eq!(default_download_domain("cos.example.com"), "cos.example.com");
        assert_eq!(default_download_domain("cos.example.com:8080"), "cos.example.com:8080");
    }
}
