//! Chuan's own endpoints under `/_chuan/`: health, metrics, and the admin API.
//!
//! The admin API takes HTTP Basic auth with a root access key and secret
//! (`curl -u AK:SK`), over loopback or TLS-terminating proxies only.

use base64::Engine as _;
use bytes::Bytes;
use chuan_core::store::CredentialRecord;
use chuan_core::Engine;
use http::{Method, Response, StatusCode};
use serde::Serialize;
use std::time::Duration;

pub type Resp = Response<s3s::Body>;

#[derive(Serialize)]
pub struct NewCredential {
    pub tenant: String,
    pub access_key: String,
    pub secret_key: String,
}

pub async fn create_tenant(engine: &Engine, name: &str) -> anyhow::Result<NewCredential> {
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "tenant names are 1-64 characters of letters, digits, '-' and '_'"
    );
    anyhow::ensure!(name != "root", "the root tenant already exists");
    let cred = NewCredential {
        tenant: name.to_owned(),
        access_key: crate::setup::new_access_key(),
        secret_key: crate::setup::new_secret(),
    };
    engine
        .meta()
        .put_credential(CredentialRecord {
            access_key: cred.access_key.clone(),
            secret: cred.secret_key.clone(),
            tenant: name.to_owned(),
            kind: "s3".into(),
            created_ms: chuan_core::store::now_ms(),
            expires_ms: None,
        })
        .await?;
    Ok(cred)
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(s3s::Body::from(body.into()))
        .expect("valid response")
}

fn json(status: StatusCode, v: &impl Serialize) -> Resp {
    respond(status, "application/json", serde_json::to_vec(v).unwrap_or_default())
}

fn error(status: StatusCode, msg: &str) -> Resp {
    json(status, &serde_json::json!({ "error": msg }))
}

async fn is_root(engine: &Engine, headers: &http::HeaderMap) -> bool {
    let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(b64) = auth.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let Ok(text) = String::from_utf8(raw) else {
        return false;
    };
    let Some((ak, sk)) = text.split_once(':') else {
        return false;
    };
    match engine.credential(ak).await {
        Ok(Some((secret, p))) => p.admin && constant_time_eq(secret.as_bytes(), sk.as_bytes()),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
}

/// Handles a request whose path starts with `/_chuan/`.
pub async fn handle(
    engine: &Engine,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
) -> Resp {
    match (method, path) {
        (&Method::GET | &Method::HEAD, "/_chuan/health") => respond(StatusCode::OK, "text/plain", "ok\n"),
        (&Method::GET, "/_chuan/metrics") => respond(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            engine.metrics.render(),
        ),
        (_, p) if p.starts_with("/_chuan/admin/") => {
            if !is_root(engine, headers).await {
                let mut r =
                    error(StatusCode::UNAUTHORIZED, "root credentials required (HTTP Basic: access key and secret)");
                r.headers_mut().insert("www-authenticate", http::HeaderValue::from_static("Basic realm=\"chuan\""));
                return r;
            }
            admin(engine, method, &p["/_chuan/admin/".len()..], query).await
        }
        _ => error(StatusCode::NOT_FOUND, "no such Chuan endpoint"),
    }
}

async fn admin(engine: &Engine, method: &Method, op: &str, query: Option<&str>) -> Resp {
    let result: anyhow::Result<Resp> = async {
        Ok(match (method, op) {
            (&Method::GET, "stats") => json(StatusCode::OK, &engine.stats().await?),
            (&Method::GET, "fsck") => json(StatusCode::OK, &engine.fsck().await?),
            (&Method::POST, "gc") => {
                let grace = query_param(query, "grace_secs")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(engine.config.gc_grace.as_secs());
                json(StatusCode::OK, &engine.gc(Duration::from_secs(grace)).await?)
            }
            (&Method::POST, "digests") => {
                let n = engine.compute_pending_digests(1000).await?;
                json(StatusCode::OK, &serde_json::json!({ "computed": n }))
            }
            (&Method::POST, "tenants") => {
                let Some(name) = query_param(query, "name") else {
                    return Ok(error(StatusCode::BAD_REQUEST, "missing ?name="));
                };
                match create_tenant(engine, name).await {
                    Ok(c) => json(StatusCode::CREATED, &c),
                    Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
                }
            }
            (&Method::GET, "credentials") => {
                let list: Vec<_> = engine
                    .meta()
                    .list_credentials()
                    .await?
                    .into_iter()
                    .map(|c| serde_json::json!({ "access_key": c.access_key, "tenant": c.tenant, "kind": c.kind }))
                    .collect();
                json(StatusCode::OK, &list)
            }
            _ => error(StatusCode::NOT_FOUND, "no such admin operation"),
        })
    }
    .await;
    result.unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()))
}
