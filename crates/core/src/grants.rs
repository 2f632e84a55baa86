//! Grants: single-use grants (one mechanism for COS once-signatures, IoT upload tokens and
//! native instant-upload challenges) and signed URL grants (expiring URLs that stand for a
//! principal: Aliyun Drive part uploads and downloads).
//!
//! Single-use grants live in the MetaStore, so they are single-use across nodes: redeeming
//! marks a grant used in the same transaction that reads it, and of concurrent redemptions
//! exactly one wins. Signed URL grants are stateless: an HMAC-SHA256, keyed with a secret
//! kept in the MetaStore, over what the URL grants and its expiry.

use chuan_store::{now_ms, GrantKind, GrantRecord, StoreError, UploadRecord};
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;
use std::time::Duration;

use crate::access::{Op, Principal, Scope};
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};

/// The outcome of presenting a single-use grant.
#[derive(Debug)]
pub enum Redeemed<T> {
    /// Valid (and, for [`Engine::redeem_grant`], now used): what it grants.
    Granted(T),
    Used,
    Expired,
    Unknown,
}

impl Engine {
    /// Issues a single-use grant carrying `payload`, valid for `ttl`; returns its id (48 hex
    /// digits, unguessable).
    pub async fn issue_grant<T: Serialize>(&self, kind: GrantKind, payload: &T, ttl: Duration) -> CoreResult<String> {
        let id = hex::encode(rand::random::<[u8; 24]>());
        let rec = GrantRecord {
            kind,
            id: id.clone(),
            payload: serde_json::to_string(payload).map_err(|e| CoreError::Internal(e.to_string()))?,
            expires_ms: now_ms() + ttl.as_millis() as i64,
            used: false,
        };
        self.meta.create_grant(rec).await?;
        Ok(id)
    }

    fn outcome<T: DeserializeOwned>(rec: Option<GrantRecord>) -> CoreResult<Redeemed<T>> {
        let Some(g) = rec else { return Ok(Redeemed::Unknown) };
        if g.used {
            return Ok(Redeemed::Used);
        }
        if now_ms() > g.expires_ms {
            return Ok(Redeemed::Expired);
        }
        let payload =
            serde_json::from_str(&g.payload).map_err(|_| CoreError::Internal(format!("bad grant {}", g.id)))?;
        Ok(Redeemed::Granted(payload))
    }

    /// What a grant would give, without using it (to check a request before its body is read).
    pub async fn peek_grant<T: DeserializeOwned>(&self, kind: GrantKind, id: &str) -> CoreResult<Redeemed<T>> {
        Self::outcome(self.meta.get_grant(kind, id).await?)
    }

    /// Uses a grant: `Granted` to exactly one caller, `Used` to every later one. An expired
    /// grant is used up too (it can never be granted again).
    pub async fn redeem_grant<T: DeserializeOwned>(&self, kind: GrantKind, id: &str) -> CoreResult<Redeemed<T>> {
        Self::outcome(self.meta.redeem_grant(kind, id).await?)
    }

    /// Spends a single-use value the client made up (a COS once-signature): `true` the first
    /// time it is seen, `false` ever after, for as long as `remember` (which must outlast the
    /// value's own validity).
    pub async fn spend_once(&self, kind: GrantKind, id: &str, remember: Duration) -> CoreResult<bool> {
        let rec = GrantRecord {
            kind,
            id: id.to_owned(),
            payload: "null".into(),
            expires_ms: now_ms() + remember.as_millis() as i64,
            used: true,
        };
        match self.meta.create_grant(rec).await {
            Ok(()) => Ok(true),
            Err(StoreError::Exists) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    // ----- signed URL grants

    async fn url_key(&self) -> CoreResult<&[u8]> {
        let key = self
            .url_key
            .get_or_try_init(|| async {
                let hex_key =
                    self.meta.setting_or_init("url-grant-key", hex::encode(rand::random::<[u8; 32]>())).await?;
                Ok::<_, CoreError>(hex::decode(hex_key).unwrap_or_default())
            })
            .await?;
        Ok(key)
    }

    async fn url_mac(&self, what: &str, expires: i64) -> CoreResult<String> {
        let mut h = <Hmac<Sha256> as Mac>::new_from_slice(self.url_key().await?).expect("any key length");
        h.update(what.as_bytes());
        h.update(b"\n");
        h.update(expires.to_string().as_bytes());
        Ok(hex::encode(h.finalize().into_bytes()))
    }

    /// `expires=<unix secs>&sig=<hex>`: the query of a URL granting `what`.
    async fn sign_url(&self, what: &str, ttl: Duration) -> CoreResult<String> {
        let expires = now_ms() / 1000 + ttl.as_secs() as i64;
        Ok(format!("expires={expires}&sig={}", self.url_mac(what, expires).await?))
    }

    async fn verify_url(&self, what: &str, query: Option<&str>) -> CoreResult<()> {
        let q = query.unwrap_or("");
        let get =
            |name: &str| q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v);
        let expires: i64 =
            get("expires").and_then(|e| e.parse().ok()).ok_or(CoreError::GrantInvalid("missing expiry"))?;
        let sig = get("sig").ok_or(CoreError::GrantInvalid("missing signature"))?;
        let want = self.url_mac(what, expires).await?;
        if !crate::constant_time_eq(want.as_bytes(), sig.as_bytes()) {
            return Err(CoreError::GrantInvalid("signature mismatch"));
        }
        if now_ms() / 1000 > expires {
            return Err(CoreError::GrantInvalid("expired"));
        }
        Ok(())
    }

    /// The query of a URL that lets its holder upload part `part` of session `upload`, for
    /// `ttl`. Only someone who may write the session's key gets one.
    pub async fn sign_part_upload(
        &self,
        p: &Principal,
        upload: &UploadRecord,
        part: u32,
        ttl: Duration,
    ) -> CoreResult<String> {
        let b = self.admit(p, Op::Write, &upload.bucket, &upload.key).await?;
        self.charge_request(p, &b).await?;
        self.sign_url(&format!("PUT {}/{part}", upload.id), ttl).await
    }

    /// Redeems a part-upload URL: the principal it stands for (the session's tenant, allowed
    /// to write the session's key and nothing else) and the session.
    pub async fn part_upload_grant(
        &self,
        upload_id: &str,
        part: u32,
        query: Option<&str>,
    ) -> CoreResult<(Principal, UploadRecord)> {
        self.verify_url(&format!("PUT {upload_id}/{part}"), query).await?;
        let up = self.meta.get_upload(upload_id).await?.filter(crate::uploads::live).ok_or(CoreError::NoSuchUpload)?;
        let scope = Scope {
            ops: Some(vec![Op::Write]),
            buckets: Some(vec![up.bucket.clone()]),
            prefixes: Some(vec![up.key.clone()]),
        };
        let p = Principal::new(up.tenant.clone(), format!("url:{upload_id}"), None, false, Some(scope));
        Ok((p, up))
    }

    /// The query of a URL that lets its holder download the object with id `object_id` of
    /// `bucket`, for `ttl`. Only someone who may read it gets one.
    pub async fn sign_download(
        &self,
        p: &Principal,
        bucket: &str,
        object_id: &str,
        ttl: Duration,
    ) -> CoreResult<String> {
        self.object_by_id(p, bucket, object_id).await?;
        self.sign_url(&format!("GET {bucket}/{object_id}"), ttl).await
    }

    /// Redeems a download URL: the principal it stands for (the bucket's owner, allowed to
    /// read that object only) and the object.
    pub async fn download_grant(
        &self,
        bucket: &str,
        object_id: &str,
        query: Option<&str>,
    ) -> CoreResult<(Principal, chuan_store::ObjectRecord)> {
        self.verify_url(&format!("GET {bucket}/{object_id}"), query).await?;
        let owner = self.bucket_record(bucket).await?.ok_or(CoreError::NoSuchKey)?.tenant;
        let rec = self.meta.get_object_by_id(bucket, object_id).await?.ok_or(CoreError::NoSuchKey)?;
        let scope = Scope {
            ops: Some(vec![Op::Read]),
            buckets: Some(vec![bucket.to_owned()]),
            prefixes: Some(vec![rec.key.clone()]),
        };
        let p = Principal::new(owner, format!("url:{bucket}/{object_id}"), None, false, Some(scope));
        Ok((p, rec))
    }
}
