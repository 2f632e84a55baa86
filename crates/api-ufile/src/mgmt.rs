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
            "GetUFileQuota" => self.get_quota(&p, &q).await,
            "GetUFileQuotaInfo" => self.get_quota_info(&p).await,
            "GetUFileReport" => self.get_report(&p, &q).await,
            "GetUFileQuotaPrice" => self.get_quota_price(&q).await,
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

/// Prices in fen: per GB·day stored, per GB downloaded, per 10,000 requests. Configurable
/// through the `ufile.prices` setting (`chuan` admin API); the defaults reproduce the OSS
/// document's example (200 GB·day + 5 GB + 20,000 requests = 346 fen).
#[derive(Serialize, Deserialize)]
pub struct Prices {
    pub storage_per_gb_day: f64,
    pub download_per_gb: f64,
    pub requests_per_10k: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self { storage_per_gb_day: 1.5, download_per_gb: 8.0, requests_per_10k: 3.0 }
    }
}

pub const PRICES_SETTING: &str = "ufile.prices";
const GB: f64 = 1e9;

/// What is left of each quota (GB, GB, 10k requests); -1 when unlimited.
struct Left {
    storage: f64,
    download: f64,
    requests: f64,
}

impl UfileDialect {
    async fn left(&self, p: &Principal) -> UfileResult<Left> {
        let q = self.engine.quota(&p.tenant).await?.unwrap_or_default();
        let stored = self.engine.tenant_bytes(&p.tenant).await?;
        let left = |limit: Option<u64>, used: u64, unit: f64| limit.map_or(-1.0, |l| (l as f64 - used as f64) / unit);
        Ok(Left {
            storage: left(q.storage_bytes, stored, GB),
            download: left(q.download_bytes, q.used_download_bytes, GB),
            requests: left(q.requests, q.used_requests, 1e4),
        })
    }

    async fn get_quota(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let left = self.left(p).await?;
        let value = match q.get("QuotaType").unwrap_or("") {
            "storage-volume" => left.storage,
            "download-traffic" => left.download,
            "request-count" => left.requests,
            other => {
                return Err(UfileError::new(StatusCode::BAD_REQUEST, 15017, format!("unknown QuotaType {other:?}")))
            }
        };
        Ok(ok("GetUFileQuota", json!({"LeftQuota": value})))
    }

    async fn get_quota_info(&self, p: &Principal) -> UfileResult<Resp> {
        let left = self.left(p).await?;
        let owe = [left.storage, left.download, left.requests].iter().any(|v| *v != -1.0 && *v <= 0.0);
        Ok(ok(
            "GetUFileQuotaInfo",
            json!({"DataSet": [{"Region": self.engine.config.region, "Owe": owe as u8,
                   "Storage": {"Left": left.storage}, "DownloadFlow": {"Left": left.download},
                   "RequestCnt": {"Left": left.requests}}]}),
        ))
    }

    async fn get_report(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let time = |n: &str| -> UfileResult<i64> {
            q.get(n).and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| {
                UfileError::new(StatusCode::BAD_REQUEST, 15002, format!("{n} (unix seconds) is required"))
            })
        };
        let (start, end) = (time("StartTime")?, time("EndTime")?);
        if end < start || end - start > 366 * 86_400 {
            return Err(UfileError::new(
                StatusCode::BAD_REQUEST,
                15018,
                "EndTime must follow StartTime by less than a year",
            ));
        }
        let days = self.engine.usage_report(&p.tenant, start * 1000, end * 1000).await?;
        let set: Vec<Value> = days
            .iter()
            .map(|d| {
                json!({"Time": d.day * 86_400, "StorageVolume": d.storage as f64 / GB,
                       "DownloadTraffic": d.downloads as f64 / GB, "RequestCount": d.requests as f64 / 1e4})
            })
            .collect();
        Ok(ok("GetUFileReport", json!({"DataSet": set})))
    }

    async fn get_quota_price(&self, q: &Query) -> UfileResult<Resp> {
        let num = |n: &str, max: f64| -> UfileResult<f64> {
            match q.get(n).filter(|v| !v.is_empty()) {
                None => Ok(0.0),
                Some(v) => match v.parse::<f64>() {
                    Ok(x) if (0.0..=max).contains(&x) => Ok(x),
                    _ => Err(UfileError::new(StatusCode::BAD_REQUEST, 15018, format!("{n} is out of range"))),
                },
            }
        };
        let storage = num("StorageVolume", 30_000_000.0)?;
        if storage % 100.0 != 0.0 {
            return Err(UfileError::new(StatusCode::BAD_REQUEST, 15017, "StorageVolume must be a multiple of 100"));
        }
        let (download, requests) = (num("DownloadTraffic", 60_000.0)?, num("RequestCount", 1_000_000.0)?);
        let prices: Prices = match self.engine.meta().get_setting(PRICES_SETTING).await.map_err(CoreError::from)? {
            Some(j) => serde_json::from_str(&j).unwrap_or_default(),
            None => Prices::default(),
        };
        let price = storage * prices.storage_per_gb_day
            + download * prices.download_per_gb
            + requests * prices.requests_per_10k;
        Ok(ok("GetUFileQuotaPrice", json!({"Price": price.round()})))
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
