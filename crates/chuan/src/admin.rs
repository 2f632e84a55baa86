//! Chuan's own endpoints under `/_chuan/`: health, metrics, the native instant-upload API,
//! and the admin API.
//!
//! The admin API takes HTTP Basic auth with a root access key and secret (`curl -u AK:SK`);
//! the native API takes any tenant's key pair the same way, or an upload token (`Authorization:
//! Bearer`, [`chuan_api_common::native_principal`]). Metrics take the root key pair
//! or the metrics token (`Authorization: Bearer`, `--metrics-token`); only health is open. Use them over loopback or
//! behind TLS.

use bytes::Bytes;
use chuan_core::store::CredentialKind;
use chuan_core::{CoreError, CredentialSpec, Engine, Principal};
use http::{Method, Response, StatusCode};
use serde::Serialize;
use std::time::Duration;

pub type Resp = Response<chuan_api_common::Body>;

/// Bodies of Chuan's own endpoints are small JSON documents.
const MAX_BODY: usize = 64 << 10;

#[derive(Serialize)]
pub struct NewCredential {
    pub tenant: String,
    pub access_key: String,
    pub secret_key: String,
    /// The tenant's Tencent COS appid (its SecretID/SecretKey are the key pair above).
    pub cos_appid: u64,
}

/// Creates tenant `name` (if new) and issues it a key pair, on the authority of `p` (the root).
pub async fn create_tenant(engine: &Engine, p: &Principal, name: &str) -> anyhow::Result<NewCredential> {
    engine.create_tenant(p, name).await?;
    let key = engine.issue_credential(p, CredentialSpec::new(name, CredentialKind::TenantKey)).await?;
    Ok(NewCredential {
        tenant: name.to_owned(),
        access_key: key.access_key,
        secret_key: key.secret,
        cos_appid: chuan_api_cos::appid_of(engine, name).await?,
    })
}

pub(crate) fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(chuan_api_common::full(body.into()))
        .expect("valid response")
}

pub fn json(status: StatusCode, v: &impl Serialize) -> Resp {
    respond(status, "application/json", serde_json::to_vec(v).unwrap_or_default())
}

pub fn error(status: StatusCode, msg: &str) -> Resp {
    json(status, &serde_json::json!({ "error": msg }))
}

fn unauthorized(msg: &str) -> Resp {
    let mut r = error(StatusCode::UNAUTHORIZED, msg);
    r.headers_mut().insert("www-authenticate", http::HeaderValue::from_static(chuan_api_common::NATIVE_CHALLENGES));
    r
}

use chuan_api_common::native_principal;

/// Handles a request whose path starts with `/_chuan/`.
pub async fn handle(state: &crate::dispatch::State, req: http::Request<chuan_api_common::RequestBody>) -> Resp {
    let engine = &state.engine;
    let (parts, body) = req.into_parts();
    let (method, path, query, headers) = (&parts.method, parts.uri.path(), parts.uri.query(), &parts.headers);
    match (method, path) {
        (&Method::GET | &Method::HEAD, "/_chuan/health") => return respond(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET | &Method::HEAD, p) if p == "/_chuan/console" || p.starts_with(crate::console::BASE) => {
            return crate::console::serve(p, method == Method::HEAD)
        }
        (&Method::GET, "/_chuan/metrics") => {
            // Operators' numbers: the root key pair (HTTP Basic) or the metrics token (Bearer).
            let bearer = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|a| chuan_api_common::auth_scheme(a, "Bearer"));
            let token_ok = match (bearer, &state.metrics_token) {
                (Some(b), Some(t)) => chuan_core::constant_time_eq(b.as_bytes(), t.as_bytes()),
                _ => false,
            };
            if !token_ok {
                match native_principal(engine, headers).await {
                    Ok(Some(p)) if p.is_admin() => {}
                    Ok(_) => {
                        return unauthorized(
                            "metrics need the root key pair (HTTP Basic) or the metrics token (Bearer)",
                        )
                    }
                    Err(e) => return core_error(&e),
                }
            }
            return respond(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                engine.metrics.render(),
            );
        }
        _ => {}
    }
    let body = match chuan_api_common::read_limited(body, MAX_BODY).await {
        Ok(b) => b,
        Err(chuan_api_common::ReadError::TooLarge) => {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "the request body is larger than 64 KiB")
        }
        Err(chuan_api_common::ReadError::Stalled) => {
            return error(StatusCode::REQUEST_TIMEOUT, "the request body made too little progress and was cut off")
        }
        Err(chuan_api_common::ReadError::Io(e)) => {
            return error(StatusCode::BAD_REQUEST, &format!("the request body could not be read: {e}"))
        }
    };
    let p = match native_principal(engine, headers).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return unauthorized(
                "credentials required: HTTP Basic with an access key and secret, or Bearer with an upload token",
            )
        }
        Err(e) => return core_error(&e),
    };
    if let Some(op) = path.strip_prefix("/_chuan/v1/instant/") {
        if method != Method::POST {
            return error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
        }
        return crate::native::handle(engine, &p, op, &body).await;
    }
    if path == "/_chuan/v1/account" {
        if method != Method::GET {
            return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
        }
        return crate::native::account(engine, &p).await;
    }
    if let Some(rest) = path.strip_prefix("/_chuan/v1/tokens") {
        if !(rest.is_empty() || rest.starts_with('/')) {
            return error(StatusCode::NOT_FOUND, "no such Chuan endpoint");
        }
        return crate::native::tokens(engine, &p, method, rest.trim_start_matches('/'), &body).await;
    }
    if let Some(op) = path.strip_prefix("/_chuan/admin/") {
        if !p.is_admin() {
            return unauthorized("root credentials required (HTTP Basic: access key and secret)");
        }
        return admin(state, &p, method, op, query).await;
    }
    error(StatusCode::NOT_FOUND, "no such Chuan endpoint")
}

async fn admin(state: &crate::dispatch::State, p: &Principal, method: &Method, op: &str, query: Option<&str>) -> Resp {
    let engine = &state.engine;
    let q = chuan_api_common::Query::parse(query, chuan_api_common::query::Plus::Literal);
    let get = |n: &str| q.get(n).unwrap_or("").to_owned();
    let result: anyhow::Result<Resp> = async {
        Ok(match (method, op) {
            (&Method::GET, "stats") => json(StatusCode::OK, &engine.stats().await?),
            (&Method::GET, "fsck") => json(StatusCode::OK, &engine.fsck().await?),
            (&Method::POST, "gc") => {
                let grace = q.get("grace_secs")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(engine.config.gc_grace.as_secs());
                json(StatusCode::OK, &engine.gc(Duration::from_secs(grace)).await?)
            }
            (&Method::POST, "digests") => {
                let n = engine.compute_pending_digests(1000).await?;
                json(StatusCode::OK, &serde_json::json!({ "computed": n }))
            }
            (&Method::POST, "tenants") => {
                let Some(name) = q.get("name") else {
                    return Ok(error(StatusCode::BAD_REQUEST, "missing ?name="));
                };
                match create_tenant(engine, p, name).await {
                    Ok(c) => json(StatusCode::CREATED, &c),
                    Err(e) => failure(&e),
                }
            }
            (&Method::GET, "cos/appid") => {
                let tenant = get("tenant");
                if !engine.tenant_exists(&tenant).await? {
                    return Ok(error(StatusCode::BAD_REQUEST, "no such tenant"));
                }
                let appid = state.cos.appid_of(&tenant).await?;
                json(StatusCode::OK, &serde_json::json!({"tenant": tenant, "cos_appid": appid}))
            }
            (&Method::POST, "adrive/refresh-tokens") => {
                let Some(tenant) = q.get("tenant") else {
                    return Ok(error(StatusCode::BAD_REQUEST, "missing ?tenant="));
                };
                match state.adrive.issue_refresh_token(p, tenant).await {
                    Ok(t) => json(StatusCode::CREATED, &t),
                    Err(e) => core_error(&e),
                }
            }
            (&Method::POST, "iot/devices") => {
                let tenant = get("tenant");
                match state.iot.register_device(p, &tenant, &get("bucket"), &get("product_sn"), &get("device_sn")).await {
                    Ok(d) => json(StatusCode::CREATED, &d),
                    Err(e) => core_error(&e),
                }
            }
            (&Method::POST, "upyun/operators") => {
                let tenant = get("tenant");
                match state.upyun.register_operator(p, &tenant, &get("bucket"), &get("operator"), &get("password")).await {
                    Ok(o) => json(StatusCode::CREATED, &o),
                    Err(e) => core_error(&e),
                }
            }
            (&Method::POST, "upyun/form-secrets") => {
                let bucket = get("bucket");
                match state.upyun.new_form_secret(p, &get("tenant"), &bucket).await {
                    Ok(secret) => json(StatusCode::CREATED, &serde_json::json!({"bucket": bucket, "form_secret": secret})),
                    Err(e) => core_error(&e),
                }
            }
            (&Method::POST, "quotas") => {
                let tenant = get("tenant");
                if !engine.tenant_exists(&tenant).await? {
                    return Ok(error(StatusCode::BAD_REQUEST, "no such tenant"));
                }
                let num = |n: &str| -> Result<Option<u64>, String> {
                    match q.get(n) {
                        None | Some("") => Ok(None),
                        Some(v) => v.parse().map(Some).map_err(|_| format!("{n} must be a number")),
                    }
                };
                let quota = match (num("storage_bytes"), num("download_bytes"), num("requests")) {
                    (Ok(storage_bytes), Ok(download_bytes), Ok(requests)) => {
                        chuan_core::Quota { storage_bytes, download_bytes, requests, ..Default::default() }
                    }
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(error(StatusCode::BAD_REQUEST, &e)),
                };
                let q = engine.set_quota(p, &tenant, quota).await?;
                json(StatusCode::OK, &serde_json::json!({"tenant": tenant, "quota": q}))
            }
            (&Method::POST, "ufile/prices") => {
                let num = |n: &str| q.get(n).and_then(|v| v.parse::<f64>().ok()).filter(|v| *v >= 0.0);
                let (Some(storage), Some(download), Some(requests)) =
                    (num("storage_per_gb_day"), num("download_per_gb"), num("requests_per_10k"))
                else {
                    return Ok(error(StatusCode::BAD_REQUEST, "storage_per_gb_day, download_per_gb and requests_per_10k (fen) are required"));
                };
                let prices = chuan_api_ufile::Prices { storage_per_gb_day: storage, download_per_gb: download, requests_per_10k: requests };
                engine.put_setting(p, chuan_api_ufile::PRICES_SETTING, serde_json::to_string(&prices)?).await?;
                json(StatusCode::OK, &prices)
            }
            (&Method::GET, "credentials") => {
                // Keys only, without their secrets (tokens, devices and operators are listed
                // through their own protocols).
                let list: Vec<_> = engine
                    .list_credentials(p, None, None)
                    .await?
                    .into_iter()
                    .filter(|c| matches!(c.kind, CredentialKind::TenantKey | CredentialKind::Root))
                    .map(|c| serde_json::json!({ "access_key": c.access_key, "tenant": c.tenant, "kind": c.kind.as_str() }))
                    .collect();
                json(StatusCode::OK, &list)
            }
            (&Method::DELETE, "credentials") => {
                let key = get("access_key");
                if key == p.access_key() {
                    return Ok(error(StatusCode::BAD_REQUEST, "the root key in use cannot revoke itself"));
                }
                match engine.revoke_credential(p, &key).await {
                    Ok(()) => json(StatusCode::OK, &serde_json::json!({ "revoked": key })),
                    Err(CoreError::NoSuchCredential) => error(StatusCode::NOT_FOUND, "no such credential"),
                    Err(e) => return Err(e.into()),
                }
            }
            _ => error(StatusCode::NOT_FOUND, "no such admin operation"),
        })
    }
    .await;
    result.unwrap_or_else(|e| failure(&e))
}

fn failure(e: &anyhow::Error) -> Resp {
    match e.downcast_ref::<CoreError>() {
        Some(core) => core_error(core),
        None => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The status of Chuan's own APIs (admin, native instant upload) for an engine error: the
/// caller's mistakes are 4xx, a backend that cannot be reached now 503 (retry), the rest 500.
pub(crate) fn core_status(e: &CoreError) -> StatusCode {
    use CoreError as E;
    match e {
        E::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        E::SlowDown => StatusCode::TOO_MANY_REQUESTS,
        E::AccessDenied | E::QuotaExceeded(_) | E::GrantInvalid(_) => StatusCode::FORBIDDEN,
        E::NoSuchBucket | E::NoSuchKey | E::NoSuchUpload | E::NoSuchTenant | E::NoSuchCredential => {
            StatusCode::NOT_FOUND
        }
        E::BucketExists | E::BucketAlreadyOwnedByYou | E::AlreadyExists | E::NameConflict | E::PreconditionFailed => {
            StatusCode::CONFLICT
        }
        E::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        E::EntityTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        E::Io(_) | E::Internal(_) | E::Body(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn core_error(e: &CoreError) -> Resp {
    error(core_status(e), &e.to_string())
}
