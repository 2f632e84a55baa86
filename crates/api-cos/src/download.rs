//! Downloads at `http://<bucket>-<appid>.<host>/<path>[?sign=<download signature>]`, with
//! `Range`. Unsigned requests read as anonymous callers, signed ones as the signer: the core
//! decides (a file whose `authority` is `eWPrivateRPublic` is public, `eWRPrivate` private,
//! `eInvalid` as its bucket). A download signature is of the bucket owner's keys (`f` = the
//! quoted path; `sign` is read with `+` literal).

use chuan_api_common::RequestBody;
use chuan_core::store::now_ms;
use chuan_core::{CoreError, Principal, KEY_PAIRS};
use http::{header as h, HeaderValue, Method, Request, Response, StatusCode};
use serde_json::json;

use crate::auth::Signature;
use crate::error::CosError;
use crate::{CosDialect, Resp};

fn refuse(status: StatusCode, code: i32, message: &str) -> Resp {
    Response::builder()
        .status(status)
        .header(h::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(chuan_api_common::full(json!({"code": code, "message": message}).to_string()))
        .expect("valid response")
}

impl CosDialect {
    pub async fn download(&self, req: Request<RequestBody>, bucket: &str, appid: &str) -> Resp {
        let (parts, _) = req.into_parts();
        if parts.method != Method::GET && parts.method != Method::HEAD {
            return refuse(StatusCode::METHOD_NOT_ALLOWED, -405, "downloads take GET or HEAD");
        }
        let raw_path = parts.uri.path();
        let key = crate::WIRE.path(raw_path.trim_start_matches('/'));
        if key.is_empty() || key.ends_with('/') {
            return refuse(StatusCode::NOT_FOUND, -404, "no such file");
        }
        let sign = crate::WIRE.query(parts.uri.query()).get("sign").filter(|s| !s.is_empty()).map(str::to_owned);
        let who = match &sign {
            Some(s) => match self.download_principal(s, bucket, appid, &key).await {
                Ok(p) => p,
                Err(e) => return refuse(StatusCode::FORBIDDEN, -403, &e.message),
            },
            None => Principal::anonymous(),
        };
        let rec = match self.engine.head_object(&who, bucket, &key).await {
            Ok(r) => r,
            Err(CoreError::NoSuchKey) => return refuse(StatusCode::NOT_FOUND, -404, "no such file"),
            Err(CoreError::AccessDenied) if who.is_anonymous() => {
                return refuse(StatusCode::FORBIDDEN, -403, "this file is private: add ?sign=<download signature>")
            }
            Err(e) => {
                let e = CosError::from(e);
                return refuse(StatusCode::FORBIDDEN, e.code, &e.message);
            }
        };
        let mut b =
            Response::builder().header(h::ACCEPT_RANGES, "bytes").header(h::ETAG, format!("\"{}\"", rec.etag)).header(
                h::CONTENT_TYPE,
                rec.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
            );
        for (name, value) in crate::file::custom_headers(&rec.meta) {
            if name == "Content-Type" {
                continue;
            }
            if let (Ok(n), Some(Ok(v))) =
                (http::HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str))
            {
                b = b.header(n, v);
            }
        }
        let range = parts.headers.get(h::RANGE).and_then(|v| v.to_str().ok());
        let Ok((b, start, end)) = chuan_api_common::with_range(b, range, rec.size) else {
            return chuan_api_common::range_not_satisfiable(rec.size);
        };
        let b = b.header(h::CONTENT_LENGTH, end - start);
        if parts.method == Method::HEAD {
            return b.body(chuan_api_common::empty()).expect("valid response");
        }
        let content = match self.engine.content_for_read(&rec).await {
            Ok(c) => c,
            Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, -500, &e.to_string()),
        };
        match self.engine.open_read(&who, &rec, &content, start, end).await {
            Ok(stream) => b.body(chuan_api_common::stream(stream)).expect("valid response"),
            Err(e) => {
                let e = CosError::from(e);
                refuse(StatusCode::FORBIDDEN, e.code, &e.message)
            }
        }
    }

    /// The principal of a download signature, checked against the bucket, appid and path.
    async fn download_principal(
        &self,
        sign: &str,
        bucket: &str,
        appid: &str,
        key: &str,
    ) -> Result<Principal, CosError> {
        let sig = Signature::parse(sign)?;
        if sig.appid != appid || sig.bucket != bucket {
            return Err(CosError::new(-70, "the signature is for another bucket or appid"));
        }
        let (secret, p) = self
            .engine
            .credential(&sig.secret_id, KEY_PAIRS)
            .await?
            .ok_or_else(|| CosError::new(-79, "unknown SecretID"))?;
        sig.verify(&secret)?;
        if !self.engine.acts_as_alias(chuan_core::AliasKind::CosAppid, appid, &p).await? {
            return Err(CosError::new(-62, "the SecretID belongs to another appid"));
        }
        let path = format!("/{key}");
        if !sig.fileid.is_empty() && !sig.covers(&path) && !sig.covers(&format!("/{appid}/{bucket}{path}")) {
            return Err(CosError::new(-63, "the signature is for another file"));
        }
        sig.check_time(now_ms() / 1000, true)?;
        Ok(p)
    }
}
