//! Routing each request to the dialect that speaks it.
//!
//! One listener serves every protocol. The order of the tests matters:
//! 1. `/_chuan/...` is Chuan's own (health, metrics, admin); no bucket may start with `_`, so
//!    `PUT /_chuan` still reaches S3 and is refused there as an invalid bucket name.
//! 2. The `Authorization` scheme names the dialect when it is unambiguous
//!    (`UCloud`/`Inspur` → UFile, `UPYUN` → UpYun, `Bearer` → Aliyun Drive).
//! 3. Reserved top-level paths (`/files/v1|v2/` COS, `/v2/`, `/adrive/`, `/users/` Aliyun
//!    Drive, `/api/v1/` IoT), which the core refuses as bucket names.
//! 4. Everything else is S3 (SigV4 headers or query, POST policy forms, path or virtual-host).
//!
//! Requests in absolute form (`PUT http://host/key`, sent by clients behind `HTTP_PROXY`) are
//! first normalised to origin form with the authority moved into `Host`.

use chuan_core::Engine;
use http::{HeaderValue, Request, Response, StatusCode, Uri};

use hyper::body::Incoming;
use std::sync::Arc;

use crate::admin;

pub struct State {
    pub engine: Arc<Engine>,
    pub s3: chuan_api_s3::S3Dialect,
    pub adrive: chuan_api_adrive::AdriveDialect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Chuan,
    S3,
    Adrive,
    /// A protocol Chuan routes but this build does not serve yet.
    Unserved(&'static str),
}

pub fn classify(uri: &Uri, headers: &http::HeaderMap) -> Dialect {
    let path = uri.path();
    if path.starts_with("/_chuan/") {
        return Dialect::Chuan;
    }
    if let Some(auth) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let scheme = auth.split_once(' ').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "UCloud" | "Inspur" => return Dialect::Unserved("UFile"),
            "UPYUN" => return Dialect::Unserved("UpYun"),
            "Bearer" => return Dialect::Adrive,
            _ => {}
        }
    }
    const ROUTES: &[(&str, &str)] =
        &[("/files/v1/", "Tencent COS v3"), ("/files/v2/", "Tencent COS v4"), ("/api/v1/", "UCloud IoT")];
    // Aliyun Drive: aligo sends the raw token as `Authorization`, so the path decides.
    if ["/v2/", "/v3/", "/adrive/", "/users/", "/token/"].iter().any(|p| path.starts_with(p)) {
        return Dialect::Adrive;
    }
    for (prefix, name) in ROUTES {
        if path.starts_with(prefix) {
            return Dialect::Unserved(name);
        }
    }
    Dialect::S3
}

/// Moves an absolute-form target's authority into `Host` and keeps only path and query.
fn normalise_target<B>(req: &mut Request<B>) {
    if req.uri().authority().is_none() {
        return;
    }
    let authority = req.uri().authority().map(|a| a.as_str().to_owned()).unwrap_or_default();
    let pq = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    if let Ok(v) = HeaderValue::from_str(&authority) {
        req.headers_mut().insert(http::header::HOST, v);
    }
    if let Ok(uri) = pq.parse() {
        *req.uri_mut() = uri;
    }
}

pub async fn handle(
    state: Arc<State>,
    mut req: Request<Incoming>,
) -> Result<Response<chuan_api_common::Body>, std::convert::Infallible> {
    state.engine.metrics.http_requests.inc();
    normalise_target(&mut req);
    let has_body = req.headers().contains_key(http::header::TRANSFER_ENCODING)
        || req.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v != "0");
    let resp = match classify(req.uri(), req.headers()) {
        Dialect::Chuan => admin::handle(&state, req).await,
        Dialect::S3 => state.s3.handle(req).await.map(chuan_api_common::boxed),
        Dialect::Adrive => state.adrive.handle(req).await,
        Dialect::Unserved(name) => Response::builder()
            .status(StatusCode::NOT_IMPLEMENTED)
            .header("content-type", "application/json")
            .body(chuan_api_common::full(
                serde_json::json!({
                    "error": "NotImplemented",
                    "message": format!("the {name} protocol is routed here but not served by this version of Chuan")
                })
                .to_string(),
            ))
            .expect("valid response"),
    };
    let mut resp = resp;
    // An error answered before the body was read (often with `Expect: 100-continue` never
    // granted) leaves the client unsure whether to send the body; the next request on the
    // connection can then be misread. Closing the connection removes the ambiguity.
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut().insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_str(uri: &str, auth: Option<&str>) -> Dialect {
        let mut h = http::HeaderMap::new();
        if let Some(a) = auth {
            h.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        }
        classify(&uri.parse().unwrap(), &h)
    }

    #[test]
    fn routes_by_path_and_scheme() {
        assert_eq!(classify_str("/_chuan/health", None), Dialect::Chuan);
        assert_eq!(classify_str("/bucket/key", Some("AWS4-HMAC-SHA256 Credential=x")), Dialect::S3);
        assert_eq!(classify_str("/key", Some("UCloud pub:sig")), Dialect::Unserved("UFile"));
        assert_eq!(classify_str("/files/v2/123/b/x", Some("c2lnbg==")), Dialect::Unserved("Tencent COS v4"));
        assert_eq!(classify_str("/adrive/v2/file/createWithFolders", Some("Bearer t")), Dialect::Adrive);
        assert_eq!(classify_str("/v2/file/list", Some("rawtoken")), Dialect::Adrive);
        assert_eq!(classify_str("/filesx/y", None), Dialect::S3);
    }

    #[test]
    fn absolute_form_becomes_origin_form() {
        let mut req = Request::builder().uri("http://b.example.com:9000/k?x=1").body(()).unwrap();
        normalise_target(&mut req);
        assert_eq!(req.uri().to_string(), "/k?x=1");
        assert_eq!(req.headers()[http::header::HOST], "b.example.com:9000");
    }
}
