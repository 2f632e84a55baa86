//! The management API (`/?Action=...` on the server's own address): buckets and scoped tokens.
//!
//! Signed as UCloud's API (and ufile's `BucketManager`) sign: a `PublicKey` parameter and
//! `Signature` = hex SHA-1 of the sorted `key+value` pairs followed by the private key.
//! Parameters come in the query string or an `application/x-www-form-urlencoded` body.
//! Answers `{"RetCode": 0, "Action": "<Action>Response", ...}`; failures the 150xx codes of
//! the OSS document.

use chuan_core::store::CredentialKind;
use chuan_core::{CoreError, Credential, CredentialSpec, CredentialUpdate, Op, Principal, Scope, KEY_PAIRS};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::error::{UfileError, UfileResult};
use crate::router::Query;
use crate::{json, Resp, UfileDialect};

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

/// `AllowedOps` as the service names them, from a scope's operation classes.
fn op_names(scope: &Scope) -> Vec<&'static str> {
    let ops = scope.ops.clone().unwrap_or_else(|| vec![Op::Read, Op::Write, Op::Delete, Op::List]);
    if ops.is_empty() {
        return vec!["TOKEN_ALLOW_NONE"];
    }
    ops.iter()
        .map(|op| match op {
            Op::Read => "TOKEN_ALLOW_READ",
            Op::Write => "TOKEN_ALLOW_WRITE",
            Op::Delete => "TOKEN_ALLOW_DELETE",
            Op::List => "TOKEN_ALLOW_LIST",
        })
        .collect()
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
        CoreError::BucketExists | CoreError::BucketAlreadyOwnedByYou => {
            UfileError::new(StatusCode::BAD_REQUEST, 15000, "bucket name already taken")
        }
        CoreError::NoSuchCredential => UfileError::new(StatusCode::BAD_REQUEST, 15040, "token not found"),
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
        let mut q = crate::router::parse_query(parts.uri.query());
        let form = chuan_api_common::read_limited(body, MAX_FORM)
            .await
            .map_err(|e| e.or_timeout(|_| UfileError::bad_request("body too large")))?;
        if !form.is_empty() {
            q.extend(crate::router::WIRE.form(&form));
        }
        let public = q.get("PublicKey").ok_or_else(UfileError::no_auth)?;
        let sig = q.get("Signature").ok_or_else(UfileError::no_auth)?;
        let (secret, p) = self.engine.credential(public, KEY_PAIRS).await?.ok_or_else(UfileError::signature)?;
        if !chuan_core::constant_time_eq(api_signature(&q.0, &secret).as_bytes(), sig.to_ascii_lowercase().as_bytes()) {
            return Err(UfileError::signature());
        }
        self.engine.check_management(&p).map_err(mgmt_error)?;
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

    /// The token's scope from `AllowedOps.n`, `AllowedPrefixes.n`, `AllowedBuckets.n`; lists
    /// not given are `None`.
    fn token_scope(q: &Query) -> UfileResult<Scope> {
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
        let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
        Ok(Scope {
            ops: (!allowed_ops.is_empty()).then_some(ops),
            prefixes: list(indexed(q, "AllowedPrefixes")),
            buckets: list(indexed(q, "AllowedBuckets")),
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

    fn token_key(q: &Query) -> UfileResult<String> {
        let id =
            q.get("TokenId").ok_or_else(|| UfileError::new(StatusCode::BAD_REQUEST, 15002, "TokenId is required"))?;
        Ok(format!("TOKEN_{id}"))
    }

    async fn token_of(&self, p: &Principal, q: &Query) -> UfileResult<Credential> {
        match self.engine.managed_credential(p, &Self::token_key(q)?).await.map_err(mgmt_error)? {
            Some(c) if c.kind == CredentialKind::UfileToken => Ok(c),
            _ => Err(mgmt_error(CoreError::NoSuchCredential)),
        }
    }

    async fn create_token(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let given = Self::token_scope(q)?;
        let id = uuid::Uuid::new_v4().to_string();
        let mut spec = CredentialSpec::new(p.tenant(), CredentialKind::UfileToken);
        spec.access_key = Some(format!("TOKEN_{id}"));
        spec.secret = Some(hex::encode(rand::random::<[u8; 20]>()));
        // No AllowedOps: a token that may do nothing.
        spec.scope = Some(Scope { ops: Some(given.ops.unwrap_or_default()), ..given });
        spec.expires_ms = Self::expire(q)?;
        spec.label = q.get("TokenName").unwrap_or("").to_owned();
        let token = self.engine.issue_credential(p, spec).await.map_err(mgmt_error)?;
        Ok(ok("CreateUFileToken", json!({"TokenId": id, "PublicKey": token.access_key, "PrivateKey": token.secret})))
    }

    async fn update_token(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let old = self.token_of(p, q).await?;
        let given = Self::token_scope(q)?;
        // Lists not given keep their old values.
        let was = old.scope.unwrap_or_default();
        let scope = Scope {
            ops: given.ops.or(was.ops),
            prefixes: given.prefixes.or(was.prefixes),
            buckets: given.buckets.or(was.buckets),
        };
        let update = CredentialUpdate {
            scope: Some(scope),
            expires_ms: Self::expire(q)?,
            label: q.get("TokenName").map(str::to_owned),
        };
        self.engine.update_credential(p, &old.access_key, update).await.map_err(mgmt_error)?;
        Ok(ok("UpdateUFileToken", json!({})))
    }

    async fn delete_token(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let token = self.token_of(p, q).await?;
        self.engine.revoke_credential(p, &token.access_key).await.map_err(mgmt_error)?;
        Ok(ok("DeleteUFileToken", json!({})))
    }

    async fn describe_token(&self, p: &Principal, q: &Query) -> UfileResult<Resp> {
        let creds: Vec<Credential> = if q.get("TokenId").is_some_and(|t| !t.is_empty()) {
            vec![self.token_of(p, q).await?]
        } else {
            // The core lists a tenant's own tokens (every tenant's for the root).
            self.engine.list_credentials(p, None, Some(CredentialKind::UfileToken)).await.map_err(mgmt_error)?
        };
        let set: Vec<Value> = creds
            .iter()
            .map(|c| {
                let s = c.scope.clone().unwrap_or_default();
                json!({"TokenId": c.access_key.trim_start_matches("TOKEN_"), "TokenName": c.label,
                       "PublicKey": c.access_key, "PrivateKey": c.secret, "AllowedOps": op_names(&s),
                       "AllowedPrefixes": s.prefixes.unwrap_or_default(),
                       "AllowedBuckets": s.buckets.unwrap_or_default(),
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
        let (q, stored) = self.engine.quota_status(p).await.map_err(mgmt_error)?;
        let q = q.unwrap_or_default();
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
        let days = self.engine.usage_report(p, start * 1000, end * 1000).await.map_err(mgmt_error)?;
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
        let prices: Prices = match self.engine.setting(PRICES_SETTING).await? {
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
