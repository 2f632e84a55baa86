//! Tokens: refresh tokens issued by `chuan admin`, access tokens issued by `/v2/account/token`.
//!
//! Both are the core's bearer credentials: stored as the SHA-256 of the token (a leaked
//! database does not leak usable tokens), never usable to sign requests of another dialect.

use chuan_core::store::{now_ms, CredentialKind};
use chuan_core::{CoreError, Principal};
use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{AdriveError, AdriveResult};
use crate::wire;
use crate::{AdriveDialect, Resp};

#[derive(Debug, Serialize)]
pub struct IssuedRefreshToken {
    pub tenant: String,
    pub refresh_token: String,
    pub default_drive_id: String,
    /// The id to revoke it by (`DELETE /_chuan/admin/credentials?access_key=<id>`); revoking
    /// it revokes the access tokens bought with it.
    pub credential_id: String,
}

/// The token in `Authorization` (raw, as aligo sends it, or `Bearer <token>`).
pub fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.trim();
    let t = chuan_api_common::auth_scheme(v, "Bearer").unwrap_or(v).trim();
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
    /// Issues a refresh token for `tenant` on the authority of `issuer` (the root), creating
    /// the tenant's default drive if it has none.
    pub async fn issue_refresh_token(&self, issuer: &Principal, tenant: &str) -> Result<IssuedRefreshToken, CoreError> {
        let drive = default_drive(tenant);
        match self.engine.create_bucket_for(issuer, tenant, &drive).await {
            Ok(()) | Err(CoreError::BucketAlreadyOwnedByYou) => {}
            Err(e) => return Err(e),
        }
        let token = self.engine.issue_bearer(issuer, tenant, CredentialKind::AdriveRefresh, None).await?;
        let credential_id = chuan_core::Engine::bearer_credential_id(CredentialKind::AdriveRefresh, &token);
        Ok(IssuedRefreshToken {
            tenant: tenant.to_owned(),
            refresh_token: token,
            default_drive_id: drive,
            credential_id,
        })
    }

    /// `POST /v2/account/token`: a refresh token buys an access token.
    pub(crate) async fn token(&self, v: &Value) -> AdriveResult<Resp> {
        let refresh = wire::required(v, "refresh_token")?;
        let ttl = self.config.token_ttl;
        let Some((access, tenant)) = self
            .engine
            .exchange_bearer(CredentialKind::AdriveRefresh, refresh, CredentialKind::AdriveAccess, ttl)
            .await?
        else {
            return Err(AdriveError::bad_request("InvalidParameter.RefreshToken", "The refresh_token is not valid."));
        };
        let ttl = ttl.as_millis() as i64;
        let drive = default_drive(&tenant);
        Ok(wire::json(
            StatusCode::OK,
            &json!({
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": ttl / 1000,
                "expire_time": wire::iso(now_ms() + ttl),
                "token_type": "Bearer",
                "user_id": tenant,
                "user_name": tenant,
                "nick_name": tenant,
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
        match self.engine.bearer(CredentialKind::AdriveAccess, token).await? {
            Some(p) => Ok(p),
            None => Err(AdriveError::token_invalid()),
        }
    }

    pub(crate) async fn user_get(&self, p: &Principal) -> AdriveResult<Resp> {
        let drive = default_drive(p.tenant());
        Ok(wire::json(
            StatusCode::OK,
            &json!({
                "domain_id": "chuan", "user_id": p.tenant(), "user_name": p.tenant(), "nick_name": p.tenant(),
                "default_drive_id": drive, "role": "user", "status": "enabled", "avatar": "",
                "created_at": 0, "updated_at": 0, "description": "", "email": "", "phone": "",
            }),
        ))
    }
}
