//! The management API (`/?Action=...` on the server's own address): buckets and scoped tokens.
//!
//! Signed as UCloud's API (and ufile's `BucketManager`) sign: a `PublicKey` parameter and
//! `Signature` = hex SHA-1 of the sorted `key+value` pairs followed by the private key.
//! Parameters come in the query string or an `application/x-www-form-urlencoded` body.
//! Answers `{"RetCode": 0, "Action": "<Action>Response", ...}`; failures the 150xx codes of
//! the OSS document.

use chuan_core::store::{now_ms, CredentialRecord};
use chuan_core::{CoreError, Op, Principal, Scope};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::error::{UfileError, UfileResult};
use crate::router::Query;
use crate::{json, Resp, UfileDialect};

const TOKEN_KIND: &str = "ufile-token";
const MAX_FORM: usize = 64 << 10;

/// The signature of the UCloud API over all parameters but `Signature`.
pub fn api_signature(params: &[(String, String)], private_key: &str) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "Signature").collect();
    sorted.sort();
    let mut h = Sha1::new();
    for (k, v) in sorted {
        h.update(k.as_bytes());
        h.update(v.as_bytes());
    }
    h.update(private_key.as_bytes());
    hex::encode(h.finalize())
}

/// A token's scope as stored, with the token's name beside the core's fields.
#[derive(Serialize, Deserialize, Default)]
struct TokenScope {
    #[serde(flatten)]
    scope: Scope,
    #[serde(default)]
    name: String,
    #[serde(default)]
    allowed_ops: Vec<String>,
}

fn op_of(name: &str) -> Option<Option<Op>> {
    Some(match name {
        "TOKEN_ALLOW_NONE" => None,
        "TOKEN_ALLOW_READ" | "TOKEN_ALLOW_IOP" => Some(Op::Read),
        "TOKEN_ALLOW_WRITE" => Some(Op::Write),
        "TOKEN_ALLOW_DELETE" => Some(Op::Delete),
        "TOKEN_ALLOW_LIST" => Some(Op::List),
        _ => return None,
    })
}

/// `Name.0`, `Name.1`, ... in order.
fn indexed(q: &Query, name: &str) -> Vec<String> {
    (0..).map_while(|i| q.get(&format!("{name}.{i}")).map(str::to_owned)).collect()
}

fn ok(action: &str, mut extra: Value) -> Resp {
    extra["RetCode"] = json!(0);
    extra["Action"] = json!(format!("{action}Response"));
    json(StatusCode::OK, &extra)
}

fn mgmt_error(e: CoreError) -> UfileError {
    match e {
        CoreError::NoSuchBucket => UfileError::new(StatusCode::BAD_REQUEST, 15010, "bucket not exist"),
        CoreError::AccessDenied => UfileError::new(StatusCode::FORBIDDEN, 15037, "no permission"),
        CoreError::BucketExists => UfileError::new(StatusCode::BAD_REQUEST, 15000, "bucket name already taken"),
        CoreError::BucketNotEmpty => UfileError::new(StatusCode::BAD_REQUEST, 15023, "bucket not empty"),
        CoreError::InvalidBucketName(m) => UfileError::new(StatusCode::BAD_REQUEST, 15001, m),
        other => other.into(),
    }
}

impl UfileDialect {
    pub async fn handle_management(&self, req: http::Request<chuan_api_common::RequestBody>) -> Resp {
        match self.management(req).await {
            Ok(r) => r,
            Err(e) => crate::error_response(&e),
        }
    }

    async fn management(&self, req: http::Request<chuan_api_common::RequestBody>) -> UfileResult<Resp> {
        let (parts, body) = req.into_parts();
        let mut params = Query::parse(parts.uri.query()).0;
        let form = chuan_api_common::read_limited_boxed(body, MAX_FORM)
            .await
            .map_err(|_| UfileError::bad_request("body too large"))?;
        if !form.is_empty() {
            params.extend(Query::parse(Some(&String::from_utf8_lossy(&form))).0);
        }
        let q = Query(params);
        let public = q.get("PublicKey").ok_or_else(UfileError::no_auth)?;
        let sig = q.get("Signature").ok_or_else(UfileError::no_auth)?;
        let (secret, p) = self.engine.credential(public).await?.ok_or_else(UfileError::signature)?;
        if !crate::auth::constant_time_eq(&api_signature(&q.0, &secret), &sig.to_ascii_lowercase()) {
            return Err(UfileError::signature());
        }
        if p.scope.is_some() {
            return Err(UfileError::new(StatusCode::FORBIDDEN, 15037, "tokens cannot use the management API"));
        }
        let action = q.get("Action").unwrap_or("").to_owned();
        match action.as_str() {
            "CreateBucket" => self.create_bucket(&p, &q).await,
            "DescribeBucket" => self.describe_bucket(&p, &q).await,
            "UpdateBucket" => self.update_bucket(&p, &q).await,
            "DeleteBucket" => self.delete_bucket(&p, &q).await,
            "CreateUFileToken" => self.create_token(&p, &q).await,
            "UpdateUFileToken" => self.update_token(&p, &q).await,
            "DeleteUFileToken" => self.delete_token(&p, &q).await,
            "DescribeUFileToken" => self.describe_token(&p, &q).await,
            other => Err(UfileError::new(StatusCode::BAD_REQUEST, 15002, format!("unknown Action {other:?}"))),
        }
    }

    fn bucket_type(q: &Query) -> UfileResult<Option<bool>> {
        match q.get("Type") {
            None | Some("") => Ok(None),
            Some("public") => Ok(Some(true)),
            Some("private") => Ok(Some(false)),
            Some(_) => Err(UfileError::new(StatusCode::BAD_REQUEST, 15003, "Type must be public or private")),
        }
    }

    async fn create_bucket(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let name = q
            .get("BucketName")
            .ok_or_else(|| UfileError::new(StatusCode::BAD_REQUEST, 15002, "BucketName is required"))?;
        let public = Self::bucket_type(q)?.unwrap_or(false);
        self.engine.create_bucket(p, name, q.get("Region").filter(|r| !r.is_empty())).await.map_err(mgmt_error)?;
        if public {
            self.engine.set_bucket_public(p, name, true).await.map_err(mgmt_error)?;
        }
        Ok(ok("CreateBucket", json!({"BucketName": name, "BucketId": format!("ufile-{name}")})))
    }

    async fn describe_bucket(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let name = q.get("BucketName").or_else(|| q.get("Name")).filter(|n| !n.is_empty());
        let mut buckets = self.engine.list_buckets(p).await.map_err(mgmt_error)?;
        if let Some(n) = name {
            buckets.retain(|b| b.name == n);
            if buckets.is_empty() {
                return Err(mgmt_error(CoreError::NoSuchBucket));
            }
        } else {
            let offset = q.get("Offset").and_then(|o| o.parse().ok()).unwrap_or(0usize);
            let limit = q.get("Limit").and_then(|l| l.parse().ok()).unwrap_or(20usize);
            buckets = buckets.into_iter().skip(offset).take(limit).collect();
        }
        let set: Vec<Value> = buckets
            .iter()
            .map(|b| {
                json!({"BucketName": b.name, "BucketId": format!("ufile-{}", b.name),
                       "Domain": {"Src": [], "Cdn": [], "CustomSrc": [], "CustomCdn": []},
                       "CdnDomainId": [], "Type": if b.public { "public" } else { "private" },
                       "CreateTime": b.created_ms / 1000, "ModifyTime": b.created_ms / 1000,
                       "Biz": "general", "Region": b.region, "Tag": "Default", "HasUserDomain": 0})
            })
            .collect();
        Ok(ok("DescribeBucket", json!({"DataSet": set})))
    }

    async fn update_bucket(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let name = q
            .get("BucketName")
            .ok_or_else(|| UfileError::new(StatusCode::BAD_REQUEST, 15002, "BucketName is required"))?;
        let public =
            Self::bucket_type(q)?.ok_or_else(|| UfileError::new(StatusCode::BAD_REQUEST, 15002, "Type is required"))?;
        self.engine.set_bucket_public(p, name, public).await.map_err(mgmt_error)?;
        Ok(ok("UpdateBucket", json!({"BucketName": name, "BucketId": format!("ufile-{name}")})))
    }

    async fn delete_bucket(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let name = q
            .get("BucketName")
            .ok_or_else(|| UfileError::new(StatusCode::BAD_REQUEST, 15002, "BucketName is required"))?;
        self.engine.delete_bucket(p, name).await.map_err(mgmt_error)?;
        Ok(ok("DeleteBucket", json!({"BucketName": name, "BucketId": format!("ufile-{name}")})))
    }

    /// The token's scope from `AllowedOps.n`, `AllowedPrefixes.n`, `AllowedBuckets.n`.
    fn token_scope(q: &Query, name: String) -> UfileResult<TokenScope> {
        let allowed_ops = indexed(q, "AllowedOps");
        let mut ops = Vec::new();
        for o in &allowed_ops {
            match op_of(o) {
                Some(Some(op)) if !ops.contains(&op) => ops.push(op),
                Some(_) => {}
                None => {
                    return Err(UfileError::new(
                        StatusCode::BAD_REQUEST,
                        15017,
                        format!("unknown AllowedOps value {o:?}"),
                    ))
                }
            }
        }
        let prefixes = indexed(q, "AllowedPrefixes");
        let buckets = indexed(q, "AllowedBuckets");
        Ok(TokenScope {
            scope: Scope {
                ops: Some(ops),
                buckets: (!buckets.is_empty()).then_some(buckets),
                prefixes: (!prefixes.is_empty()).then_some(prefixes),
            },
            name,
            allowed_ops,
        })
    }

    fn expire(q: &Query) -> UfileResult<Option<i64>> {
        match q.get("ExpireTime").filter(|e| !e.is_empty()) {
            None => Ok(None),
            Some(e) => e
                .parse::<i64>()
                .map(|s| Some(s * 1000))
                .map_err(|_| UfileError::new(StatusCode::BAD_REQUEST, 15017, "ExpireTime must be a unix timestamp")),
        }
    }

    async fn token_of(&self, p: &Principal, q: &Query) -> UfileResult<CredentialRecord> {
        let id =
            q.get("TokenId").ok_or_else(|| UfileError::new(StatusCode::BAD_REQUEST, 15002, "TokenId is required"))?;
        match self.engine.meta().get_credential(&format!("TOKEN_{id}")).await.map_err(CoreError::from)? {
            Some(c) if c.kind == TOKEN_KIND && (c.tenant == p.tenant || p.admin) => Ok(c),
            _ => Err(UfileError::new(StatusCode::BAD_REQUEST, 15040, "token not found")),
        }
    }

    async fn create_token(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let scope = Self::token_scope(q, q.get("TokenName").unwrap_or("").to_owned())?;
        for b in scope.scope.buckets.iter().flatten() {
            self.engine.check_bucket(p, b).await.map_err(mgmt_error)?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let private = hex::encode(rand::random::<[u8; 20]>());
        let cred = CredentialRecord {
            access_key: format!("TOKEN_{id}"),
            secret: private.clone(),
            tenant: p.tenant.clone(),
            kind: TOKEN_KIND.into(),
            created_ms: now_ms(),
            expires_ms: Self::expire(q)?,
            scope: Some(serde_json::to_string(&scope).expect("serialisable")),
        };
        self.engine.meta().put_credential(cred).await.map_err(CoreError::from)?;
        Ok(ok("CreateUFileToken", json!({"TokenId": id, "PublicKey": format!("TOKEN_{id}"), "PrivateKey": private})))
    }

    async fn update_token(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let mut cred = self.token_of(p, q).await?;
        let old: TokenScope = cred.scope.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
        let name = q.get("TokenName").map(str::to_owned).unwrap_or(old.name);
        let mut scope = Self::token_scope(q, name)?;
        // Lists not given keep their old values.
        if indexed(q, "AllowedOps").is_empty() {
            scope.scope.ops = old.scope.ops;
            scope.allowed_ops = old.allowed_ops;
        }
        if indexed(q, "AllowedPrefixes").is_empty() {
            scope.scope.prefixes = old.scope.prefixes;
        }
        if indexed(q, "AllowedBuckets").is_empty() {
            scope.scope.buckets = old.scope.buckets;
        }
        for b in scope.scope.buckets.iter().flatten() {
            self.engine.check_bucket(p, b).await.map_err(mgmt_error)?;
        }
        if let Some(e) = Self::expire(q)? {
            cred.expires_ms = Some(e);
        }
        cred.scope = Some(serde_json::to_string(&scope).expect("serialisable"));
        self.engine.meta().put_credential(cred).await.map_err(CoreError::from)?;
        Ok(ok("UpdateUFileToken", json!({})))
    }

    async fn delete_token(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let cred = self.token_of(p, q).await?;
        self.engine.meta().delete_credential(&cred.access_key).await.map_err(CoreError::from)?;
        Ok(ok("DeleteUFileToken", json!({})))
    }

    async fn describe_token(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let creds: Vec<CredentialRecord> = if q.get("TokenId").is_some_and(|t| !t.is_empty()) {
            vec![self.token_of(p, q).await?]
        } else {
            let all = self.engine.meta().list_credentials().await.map_err(CoreError::from)?;
            all.into_iter().filter(|c| c.kind == TOKEN_KIND && (c.tenant == p.tenant || p.admin)).collect()
        };
        let set: Vec<Value> = creds
            .iter()
            .map(|c| {
                let s: TokenScope = c.scope.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
                json!({"TokenId": c.access_key.trim_start_matches("TOKEN_"), "TokenName": s.name,
                       "PublicKey": c.access_key, "PrivateKey": c.secret, "AllowedOps": s.allowed_ops,
                       "AllowedPrefixes": s.scope.prefixes.unwrap_or_default(),
                       "AllowedBuckets": s.scope.buckets.unwrap_or_default(),
                       "ExpireTime": c.expires_ms.map(|e| e / 1000).unwrap_or(0),
                       "CreateTime": c.created_ms / 1000, "ModifyTime": c.created_ms / 1000, "BlackIPList": []})
            })
            .collect();
        Ok(ok("DescribeUFileToken", json!({"DataSet": set})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_sha1_of_sorted_pairs_and_key() {
        let params = vec![
            ("Action".to_owned(), "UpdateBucket".to_owned()),
            ("BucketName".to_owned(), "blue".to_owned()),
            ("PublicKey".to_owned(), "pub".to_owned()),
            ("Signature".to_owned(), "ignored".to_owned()),
        ];
        let expect = hex::encode(Sha1::digest(b"ActionUpdateBucketBucketNamebluePublicKeypubsecret"));
        assert_eq!(api_signature(&params, "secret"), expect);
    }
}
