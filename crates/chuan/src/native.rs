//! Chuan's native instant-upload API (`/_chuan/v1/instant/...`): a challenge–response proof of
//! possession, what Chuan's own CLI and web console use.
//!
//! ```text
//! POST /_chuan/v1/instant/challenge  {"bucket","key","size","sha256"[,"content_type"][,"prove":true]}
//!   → 200 {"challenge_id","proof_required","nonce","ranges":[[offset,length],...],"expires_at"}
//! POST /_chuan/v1/instant/commit     {"challenge_id","proof": hex(HMAC-SHA256(nonce, file[r0]‖file[r1]‖…))}
//!   → 200 {"hit":true,"bucket","key","etag","size"} | 200 {"hit":false}
//!   → 409 {"error":"ChallengeUsed"} | 410 {"error":"ChallengeExpired"} | 404 {"error":"NoSuchChallenge"}
//! ```
//! Auth: HTTP Basic with a key pair of the caller's tenant, or an upload token (`Authorization:
//! Bearer`), each held to its scope. The challenge is
//! answered identically for known and unknown content; `proof_required` is false only when
//! the caller's own tenant already holds the content. With `"prove": true` (a caller that has
//! the file) the challenge always asks for a proof and looks nothing up, so it is answered at
//! once; the proof is checked at commit ([`chuan_core::ChallengeOptions::prove`]). Probes are
//! rate-limited (429 SlowDown).

use chuan_core::{ChallengeOptions, ChallengeOutcome, CoreError, Engine, Principal};
use http::StatusCode;
use serde::Deserialize;

use crate::admin::{error, json, Resp};

#[derive(Deserialize)]
struct ChallengeRequest {
    bucket: String,
    key: String,
    size: u64,
    sha256: String,
    /// The object's content type on a hit.
    content_type: Option<String>,
    /// The caller will answer with a proof whoever holds the content.
    #[serde(default)]
    prove: bool,
}

#[derive(Deserialize)]
struct CommitRequest {
    challenge_id: String,
    proof: Option<String>,
}

fn core_error(e: CoreError) -> Resp {
    let (status, code) = match &e {
        CoreError::SlowDown => (StatusCode::TOO_MANY_REQUESTS, "SlowDown"),
        CoreError::NoSuchBucket => (StatusCode::NOT_FOUND, "NoSuchBucket"),
        CoreError::NoSuchCredential => (StatusCode::NOT_FOUND, "NoSuchCredential"),
        CoreError::NoSuchTenant => (StatusCode::NOT_FOUND, "NoSuchTenant"),
        CoreError::AccessDenied => (StatusCode::FORBIDDEN, "AccessDenied"),
        CoreError::QuotaExceeded(_) => (StatusCode::FORBIDDEN, "QuotaExceeded"),
        CoreError::PreconditionFailed | CoreError::AlreadyExists => (StatusCode::CONFLICT, "AlreadyExists"),
        CoreError::InvalidKey(_) | CoreError::KeyTooLong | CoreError::InvalidArgument(_) => {
            (StatusCode::BAD_REQUEST, "InvalidArgument")
        }
        CoreError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
    };
    json(status, &serde_json::json!({ "error": code, "message": e.to_string() }))
}

pub async fn handle(engine: &Engine, p: &Principal, op: &str, body: &[u8]) -> Resp {
    match op {
        "challenge" => {
            let Ok(req) = serde_json::from_slice::<ChallengeRequest>(body) else {
                return error(StatusCode::BAD_REQUEST, "expected JSON {bucket, key, size, sha256}");
            };
            let options = ChallengeOptions { content_type: req.content_type, prove: req.prove };
            match engine.issue_challenge_with(p, &req.bucket, &req.key, req.size, &req.sha256, &options).await {
                Ok(c) => json(
                    StatusCode::OK,
                    &serde_json::json!({
                        "challenge_id": c.id,
                        "proof_required": c.proof_required,
                        "nonce": c.nonce,
                        "ranges": c.ranges,
                        "expires_at": c.expires_ms,
                    }),
                ),
                Err(e) => core_error(e),
            }
        }
        "commit" => {
            let Ok(req) = serde_json::from_slice::<CommitRequest>(body) else {
                return error(StatusCode::BAD_REQUEST, "expected JSON {challenge_id, proof}");
            };
            // A proof that is not even hex is simply a wrong answer: it uses up the challenge
            // and is a miss like any other.
            let mac = req.proof.as_deref().map(|h| hex::decode(h).unwrap_or_default());
            match engine.answer_challenge(p, &req.challenge_id, mac.as_deref()).await {
                Ok(ChallengeOutcome::Hit(rec)) => json(
                    StatusCode::OK,
                    &serde_json::json!({"hit": true, "bucket": rec.bucket, "key": rec.key, "etag": rec.etag, "size": rec.size}),
                ),
                Ok(ChallengeOutcome::Miss) => json(StatusCode::OK, &serde_json::json!({"hit": false})),
                Ok(ChallengeOutcome::Used) => {
                    json(StatusCode::CONFLICT, &serde_json::json!({"error": "ChallengeUsed"}))
                }
                Ok(ChallengeOutcome::Expired) => {
                    json(StatusCode::GONE, &serde_json::json!({"error": "ChallengeExpired"}))
                }
                Ok(ChallengeOutcome::Unknown) => {
                    json(StatusCode::NOT_FOUND, &serde_json::json!({"error": "NoSuchChallenge"}))
                }
                Err(e) => core_error(e),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such instant-upload operation"),
    }
}

/// `GET /_chuan/v1/account`: who is signed in, what the tenant stores and its quota (the web
/// console's account page). Tenant keys only (a scoped token manages nothing: 403).
///
/// ```text
/// → 200 {"tenant","access_key","stored_bytes","quota":{"storage_bytes",...}|null}
/// ```
pub async fn account(engine: &Engine, p: &Principal) -> Resp {
    match engine.quota_status(p).await {
        Ok((quota, stored)) => json(
            StatusCode::OK,
            &serde_json::json!({
                "tenant": p.tenant(), "access_key": p.access_key(), "stored_bytes": stored, "quota": quota,
            }),
        ),
        Err(e) => core_error(e),
    }
}

/// What `POST /_chuan/v1/tokens` issues.
/// Required: a missing `type` is refused rather than read as the stronger of the two (a key
/// pair signs any S3 request within its scope; an upload token only uploads).
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum TokenType {
    /// A key pair (access key and secret): signs S3 requests, HTTP Basic elsewhere.
    KeyPair,
    /// An upload token: one string for `Authorization: Bearer` on tus, the IETF resumable
    /// uploads and the native instant-upload API (browsers and apps); always expires.
    Upload,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    #[serde(rename = "type")]
    kind: TokenType,
    #[serde(default)]
    label: String,
    bucket: String,
    #[serde(default)]
    prefix: String,
    /// `read`, `write`, `list`, `delete`; when missing, all for a key pair, `write` for an
    /// upload token.
    ops: Option<Vec<chuan_core::Op>>,
    /// Lifetime in seconds; none: until revoked (key pairs only).
    ttl_secs: Option<u64>,
}

/// Scoped tokens a tenant issues from its own key (the web console's token page): key pairs,
/// or upload tokens (bearer), limited to one bucket, optionally a prefix and some operations;
/// key pairs optionally expiring, upload tokens always (at most
/// [`chuan_core::UPLOAD_TOKEN_MAX_TTL`]).
///
/// ```text
/// GET    /_chuan/v1/tokens        → 200 [{"type","access_key","label","scope","expires_at","created_at","issued_by"}]
///                                   (for an upload token, access_key is its id: upload-token:<SHA-256 hex>,
///                                   and issued_by the key it dies with; times in ms since the Unix epoch)
/// POST   /_chuan/v1/tokens        {"type":"key-pair"|"upload","label","bucket","prefix","ops":["read",...],"ttl_secs"}
///                                 → 201 {"access_key","secret","expires_at"} (key pair)
///                                 → 201 {"token","id","expires_at"} (upload token; shown once)
/// DELETE /_chuan/v1/tokens/{key}  → 204 (an access key or an upload token's id; `%XX`-decoded)
/// ```
/// Expired tokens are not listed (expired upload tokens are deleted by GC).
pub async fn tokens(engine: &Engine, p: &Principal, method: &http::Method, rest: &str, body: &[u8]) -> Resp {
    use chuan_core::store::CredentialKind;
    match (method, rest) {
        (&http::Method::GET, "") => {
            let mut out = Vec::new();
            for (kind, name) in [(CredentialKind::UfileToken, "key-pair"), (CredentialKind::UploadToken, "upload")] {
                let now = chuan_core::store::now_ms();
                match engine.list_credentials(p, None, Some(kind)).await {
                    Ok(list) => {
                        out.extend(list.into_iter().filter(|c| c.expires_ms.is_none_or(|e| e > now)).map(|c| {
                            serde_json::json!({
                                "type": name, "access_key": c.access_key, "label": c.label, "scope": c.scope,
                                "expires_at": c.expires_ms, "created_at": c.created_ms, "issued_by": c.issued_by,
                            })
                        }))
                    }
                    Err(e) => return core_error(e),
                }
            }
            json(StatusCode::OK, &out)
        }
        (&http::Method::POST, "") => {
            let req = match serde_json::from_slice::<NewToken>(body) {
                Ok(req) => req,
                Err(e) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "{e}; expected JSON {{\"type\": \"upload\" or \"key-pair\", \"bucket\": name, \"label\", \
                             \"prefix\", \"ops\": some of [\"read\", \"write\", \"list\", \"delete\"], \"ttl_secs\": \
                             seconds (1 to {} days for an upload token)}}",
                            chuan_core::UPLOAD_TOKEN_MAX_TTL.as_secs() / 86400
                        ),
                    )
                }
            };
            let scope = chuan_core::Scope {
                ops: req.ops,
                buckets: Some(vec![req.bucket]),
                prefixes: (!req.prefix.is_empty()).then(|| vec![req.prefix]),
            };
            if req.kind == TokenType::Upload {
                let Some(ttl) = req.ttl_secs else {
                    return error(StatusCode::BAD_REQUEST, "an upload token needs ttl_secs (it always expires)");
                };
                let ttl = std::time::Duration::from_secs(ttl);
                return match engine.issue_upload_token(p, p.tenant(), req.label, scope, ttl).await {
                    Ok((token, id, expires_ms)) => json(
                        StatusCode::CREATED,
                        &serde_json::json!({"token": token, "id": id, "expires_at": expires_ms}),
                    ),
                    Err(e) => core_error(e),
                };
            }
            let mut spec = chuan_core::CredentialSpec::new(p.tenant(), CredentialKind::UfileToken);
            spec.label = req.label;
            spec.scope = Some(scope);
            spec.expires_ms =
                req.ttl_secs.map(|s| chuan_core::store::now_ms() + (s.min(10 * 365 * 86400) as i64) * 1000);
            match engine.issue_credential(p, spec).await {
                Ok(c) => json(
                    StatusCode::CREATED,
                    &serde_json::json!({"access_key": c.access_key, "secret": c.secret, "expires_at": c.expires_ms}),
                ),
                Err(e) => core_error(e),
            }
        }
        (&http::Method::DELETE, key) if !key.is_empty() => {
            match engine.revoke_credential(p, &chuan_api_common::query::percent_decode(key)).await {
                Ok(()) => crate::admin::respond(StatusCode::NO_CONTENT, "text/plain", ""),
                Err(e) => core_error(e),
            }
        }
        _ => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET or POST /_chuan/v1/tokens, DELETE /_chuan/v1/tokens/{access_key}",
        ),
    }
}
