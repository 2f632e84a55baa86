//! Tokens: refresh tokens issued by `chuan admin`, access tokens issued by `/v2/account/token`.
//!
//! Both are stored as credentials named by the SHA-256 of the token (a leaked database does
//! not leak usable tokens), each with a random secret that is never handed out, so the row
//! cannot be used to sign requests of another dialect.

use chuan_core::store::{now_ms, CredentialRecord};
use chuan_core::{CoreError, Principal};
use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{AdriveError, AdriveResult};
use crate::wire;
use crate::{AdriveDialect, Resp};

const REFRESH: &str = "adrive-refresh";
const ACCESS: &str = "adrive-access";

#[derive(Debug, Serialize)]
pub struct IssuedRefreshToken {
    pub tenant: String,
    pub refresh_token: String,
    pub default_drive_id: String,
}

fn key_for(kind: &str, token: &str) -> String {
    format!("{kind}:{}", hex::encode(Sha256::digest(token.as_bytes())))
}

fn new_token() -> String {
    hex::encode(rand::random::<[u8; 24]>())
}

/// The token in `Authorization` (raw, as aligo sends it, or `Bearer <token>`).
pub fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let t = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")).unwrap_or(v).trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// The default drive of a tenant: a bucket named after it.
pub fn default_drive(tenant: &str) -> String {
    let mut name: String =
        tenant.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    name.truncate(56);
    format!("drive-{}", name.trim_matches('-'))
}

impl AdriveDialect {
    pub async fn issue_refresh_token(&self, tenant: &str) -> Result<IssuedRefreshToken, CoreError> {
        let drive = default_drive(tenant);
        let owner = crate::url_principal(tenant);
        match self.engine.create_bucket(&owner, &drive, None).await {
            Ok(()) => {}
            Err(CoreError::BucketExists) => {
                self.engine.check_bucket(&owner, &drive).await?;
            }
            Err(e) => return Err(e),
        }
        let token = new_token();
        self.store_token(REFRESH, &token, tenant, None).await?;
        Ok(IssuedRefreshToken { tenant: tenant.to_owned(), refresh_token: token, default_drive_id: drive })
    }

    async fn store_token(
        &self,
        kind: &str,
        token: &str,
        tenant: &str,
        expires_ms: Option<i64>,
    ) -> Result<(), CoreError> {
        self.engine
            .meta()
            .put_credential(CredentialRecord {
                access_key: key_for(kind, token),
                secret: new_token(),
                tenant: tenant.to_owned(),
                kind: kind.to_owned(),
                created_ms: now_ms(),
                expires_ms,
                scope: None,
            })
            .await?;
        Ok(())
    }

    /// `POST /v2/account/token`: a refresh token buys an access token.
    pub(crate) async fn token(&self, v: &Value) -> AdriveResult<Resp> {
        let refresh = wire::required(v, "refresh_token")?;
        let rec = self.engine.meta().get_credential(&key_for(REFRESH, refresh)).await.map_err(CoreError::from)?;
        let Some(rec) = rec.filter(|r| r.kind == REFRESH) else {
            return Err(AdriveError::bad_request("InvalidParameter.RefreshToken", "The refresh_token is not valid."));
        };
        let access = new_token();
        let ttl = self.config.token_ttl.as_millis() as i64;
        self.store_token(ACCESS, &access, &rec.tenant, Some(now_ms() + ttl)).await?;
        let drive = default_drive(&rec.tenant);
        Ok(wire::json(
            StatusCode::OK,
            &json!({
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": ttl / 1000,
                "expire_time": wire::iso(now_ms() + ttl),
                "token_type": "Bearer",
                "user_id": rec.tenant,
                "user_name": rec.tenant,
                "nick_name": rec.tenant,
                "avatar": "",
                "default_drive_id": drive,
                "default_sbox_drive_id": drive,
                "role": "user",
                "status": "enabled",
                "device_id": "chuan",
                "domain_id": "chuan",
                "is_first_login": false,
                "need_link": false,
                "pin_setup": true,
                "need_rp_verify": false,
                "exist_link": [],
                "state": "",
            }),
        ))
    }

    /// The principal of an access token; 401 `AccessTokenInvalid` when unknown or expired
    /// (aligo then refreshes and retries).
    pub(crate) async fn principal(&self, token: &str) -> AdriveResult<Principal> {
        match self.engine.credential(&key_for(ACCESS, token)).await? {
            Some((_, p)) => Ok(p),
            None => Err(AdriveError::token_invalid()),
        }
    }

    pub(crate) async fn user_get(&self, p: &Principal) -> AdriveResult<Resp> {
        let drive = default_drive(&p.tenant);
        Ok(wire::json(
            StatusCode::OK,
            &json!({
                "domain_id": "chuan", "user_id": p.tenant, "user_name": p.tenant, "nick_name": p.tenant,
                "default_drive_id": drive, "role": "user", "status": "enabled", "avatar": "",
                "created_at": 0, "updated_at": 0, "description": "", "email": "", "phone": "",
            }),
        ))
    }
}
