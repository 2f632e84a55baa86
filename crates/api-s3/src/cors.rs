//! Bucket CORS: Put/Get/DeleteBucketCors, the preflight (`OPTIONS`) answer and the
//! `Access-Control-*` headers of actual responses. The rules and the decision are the core's
//! (`chuan_core::cors`); this file maps them to S3's XML and headers.

use chuan_core::store::CorsRule;
use chuan_core::{CorsAnswer, Engine, Principal};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::error::OrS3;

pub async fn get_bucket_cors(
    engine: &Engine,
    p: &Principal,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let Some(rules) = engine.bucket_cors(p, &req.input.bucket).await.s3()? else {
        return Err(s3_error!(NoSuchCORSConfiguration, "The CORS configuration does not exist"));
    };
    let rules = rules
        .into_iter()
        .map(|r| CORSRule {
            allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
            allowed_methods: r.allowed_methods,
            allowed_origins: r.allowed_origins,
            expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
            id: r.id,
            max_age_seconds: r.max_age_secs.map(|s| s as i32),
        })
        .collect();
    Ok(S3Response::new(GetBucketCorsOutput { cors_rules: Some(rules) }))
}

pub async fn put_bucket_cors(
    engine: &Engine,
    p: &Principal,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let input = req.input;
    let mut rules = Vec::new();
    for r in input.cors_configuration.cors_rules {
        let max_age_secs = match r.max_age_seconds {
            Some(s) if s < 0 => return Err(s3_error!(MalformedXML, "MaxAgeSeconds must not be negative")),
            s => s.map(|s| s as u32),
        };
        rules.push(CorsRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: r.allowed_headers.unwrap_or_default(),
            expose_headers: r.expose_headers.unwrap_or_default(),
            max_age_secs,
        });
    }
    engine.put_bucket_cors(p, &input.bucket, rules).await.s3()?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub async fn delete_bucket_cors(
    engine: &Engine,
    p: &Principal,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    engine.delete_bucket_cors(p, &req.input.bucket).await.s3()?;
    Ok(S3Response::new(DeleteBucketCorsOutput {}))
}

fn header(v: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(v).ok()
}

/// Adds what `answer` allows to a response's headers (`Vary` always, since the answer
/// depends on the request's origin).
pub(crate) fn apply(headers: &mut HeaderMap, answer: Option<&CorsAnswer>, preflight: bool) {
    let vary =
        if preflight { "Origin, Access-Control-Request-Headers, Access-Control-Request-Method" } else { "Origin" };
    headers.append(http::header::VARY, HeaderValue::from_static(vary));
    let Some(a) = answer else { return };
    let mut set = |name: http::header::HeaderName, value: Option<HeaderValue>| {
        if let Some(v) = value {
            headers.insert(name, v);
        }
    };
    use http::header as h;
    set(h::ACCESS_CONTROL_ALLOW_ORIGIN, header(&a.allow_origin));
    set(h::ACCESS_CONTROL_ALLOW_METHODS, header(&a.allow_methods.join(", ")));
    if a.allow_credentials {
        set(h::ACCESS_CONTROL_ALLOW_CREDENTIALS, Some(HeaderValue::from_static("true")));
    }
    if !a.expose_headers.is_empty() {
        set(h::ACCESS_CONTROL_EXPOSE_HEADERS, header(&a.expose_headers.join(", ")));
    }
    if preflight {
        if !a.allow_headers.is_empty() {
            set(h::ACCESS_CONTROL_ALLOW_HEADERS, header(&a.allow_headers.join(", ")));
        }
        if let Some(secs) = a.max_age_secs {
            set(h::ACCESS_CONTROL_MAX_AGE, header(&secs.to_string()));
        }
    }
}

/// The names listed in `Access-Control-Request-Headers`.
pub(crate) fn requested_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .collect()
}

/// S3's answer to a preflight (`OPTIONS`) of `bucket`.
pub(crate) async fn preflight(engine: &Engine, bucket: Option<&str>, headers: &HeaderMap) -> Response<s3s::Body> {
    let origin = headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
    let method = headers.get(http::header::ACCESS_CONTROL_REQUEST_METHOD).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(method)) = (origin, method) else {
        return crate::service::xml_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let requested = requested_headers(headers);
    let answer = match bucket {
        Some(b) => engine.cors_decision(b, origin, method, &requested).await.ok().flatten(),
        None => None,
    };
    let Some(answer) = answer else {
        return crate::service::xml_error(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: This CORS request is not allowed. This is usually because the evaluation of Origin, \
             request method / Access-Control-Request-Method or Access-Control-Request-Headers are not \
             whitelisted by the resource's CORS spec.",
        );
    };
    let mut resp = Response::new(s3s::Body::empty());
    apply(resp.headers_mut(), Some(&answer), true);
    resp
}
