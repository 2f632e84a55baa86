//! Identity: tenants, credentials of every kind, bearer tokens and tenant aliases.
//!
//! Every dialect's credentials are issued, listed, revoked and resolved here, so their kinds
//! are typed, their scopes are checked against the buckets they name, and one rule says who
//! may issue what:
//! * the root (or the operator at the console) issues anything for any tenant;
//! * a tenant's own unscoped key issues UFile tokens (scoped key pairs) and upload tokens
//!   (scoped bearer tokens, [`Engine::issue_upload_token`]) for that tenant, over its own
//!   buckets;
//! * nobody else issues anything.
//!
//! A bearer token bought with or issued by another credential dies with it: its label starts
//! with `issued-by:` and that credential's id (then, after a space, the issuer's own label).

use chuan_store::{now_ms, CredentialFilter, CredentialKind, CredentialRecord, StoreError, TenantRecord};
use rand::Rng;
use sha2::{Digest, Sha256};
use std::time::Duration;

use crate::access::{Op, Principal, Scope};
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};

/// The key pairs requests of S3, UFile, COS and the native API are signed with: the root's,
/// tenants' own keys, UFile tokens and IoT device secrets (the scoped ones held to their scope
/// in every protocol). UpYun operators and form secrets sign UpYun requests only; bearer
/// tokens sign nothing.
pub const KEY_PAIRS: &[CredentialKind] =
    &[CredentialKind::Root, CredentialKind::TenantKey, CredentialKind::UfileToken, CredentialKind::IotDevice];

/// How long an alias found to name no tenant is remembered as such (on this node).
const ALIAS_MISS_TTL: Duration = Duration::from_secs(5);

/// What to issue.
#[derive(Debug, Clone)]
pub struct CredentialSpec {
    pub tenant: String,
    pub kind: CredentialKind,
    /// The access key, in the dialect's own format (`TOKEN_<id>`, `upyun:<operator>`, ...);
    /// generated (`CK` + 18 characters) when `None`.
    pub access_key: Option<String>,
    /// The secret; generated (40 characters) when `None`.
    pub secret: Option<String>,
    /// Required for scoped kinds (tokens, devices, operators, form secrets); its buckets must
    /// be the tenant's.
    pub scope: Option<Scope>,
    pub expires_ms: Option<i64>,
    /// A name for people (UFile `TokenName`).
    pub label: String,
}

impl CredentialSpec {
    pub fn new(tenant: &str, kind: CredentialKind) -> Self {
        Self {
            tenant: tenant.to_owned(),
            kind,
            access_key: None,
            secret: None,
            scope: None,
            expires_ms: None,
            label: String::new(),
        }
    }
}

/// A credential as its owner may see it (secret included: UFile shows token secrets to their
/// owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub access_key: String,
    pub secret: String,
    pub tenant: String,
    pub kind: CredentialKind,
    /// The label its issuer gave it.
    pub label: String,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub scope: Option<Scope>,
    /// The credential it was issued by or bought with, which it dies with (bearer tokens).
    pub issued_by: Option<String>,
}

/// Changes to a credential; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct CredentialUpdate {
    pub scope: Option<Scope>,
    pub expires_ms: Option<i64>,
    pub label: Option<String>,
}

/// Kinds of tenant aliases: other names a protocol knows a tenant by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasKind {
    /// Tencent COS `appid`: ten digits from 1250000000, random (so it says nothing of the
    /// tenant's name), allocated on first use and never changed.
    CosAppid,
}

impl AliasKind {
    fn as_str(&self) -> &'static str {
        match self {
            AliasKind::CosAppid => "cos-appid",
        }
    }

    fn generate(&self) -> String {
        match self {
            AliasKind::CosAppid => rand::thread_rng().gen_range(1_250_000_000u64..1_950_000_000).to_string(),
        }
    }
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char).collect()
}

/// A new access key: `CK` and 18 upper-case letters or digits.
pub fn new_access_key() -> String {
    format!("CK{}", random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
}

/// A new secret: 40 letters or digits.
pub fn new_secret() -> String {
    random_string(40, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
}

/// Tenant names: 1–64 letters, digits, `-` and `_`; `root` is the operator's.
pub fn validate_tenant(name: &str) -> CoreResult<()> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(CoreError::InvalidArgument(
            "tenant names are 1-64 characters of letters, digits, '-' and '_'".into(),
        ));
    }
    if name == "root" {
        return Err(CoreError::InvalidArgument("the name root is the operator's".into()));
    }
    Ok(())
}

/// The label of a bearer token bought with another: this prefix and the other's credential id.
const ISSUED_BY: &str = "issued-by:";

fn bearer_key(kind: CredentialKind, token: &str) -> String {
    format!("{}:{}", kind.as_str(), hex::encode(Sha256::digest(token.as_bytes())))
}

/// A stored label's parts: the credential it was issued by (`issued-by:<id>[ <label>]`), if
/// any, and the issuer's own label.
fn split_label(label: &str) -> (Option<&str>, &str) {
    match label.strip_prefix(ISSUED_BY) {
        Some(rest) => match rest.split_once(' ') {
            Some((parent, own)) => (Some(parent), own),
            None => (Some(rest), ""),
        },
        None => (None, label),
    }
}

fn parse_scope(c: &CredentialRecord) -> CoreResult<Option<Scope>> {
    c.scope
        .as_deref()
        .map(|s| {
            serde_json::from_str(s).map_err(|e| CoreError::Internal(format!("bad scope of {}: {e}", c.access_key)))
        })
        .transpose()
}

fn info(c: CredentialRecord) -> CoreResult<Credential> {
    let scope = parse_scope(&c)?;
    let (issued_by, label) = match c.kind.is_bearer() {
        true => split_label(&c.label),
        false => (None, c.label.as_str()),
    };
    Ok(Credential {
        issued_by: issued_by.map(str::to_owned),
        label: label.to_owned(),
        access_key: c.access_key,
        secret: c.secret,
        tenant: c.tenant,
        kind: c.kind,
        created_ms: c.created_ms,
        expires_ms: c.expires_ms,
        scope,
    })
}

fn scoped(kind: CredentialKind) -> bool {
    matches!(
        kind,
        CredentialKind::UfileToken
            | CredentialKind::IotDevice
            | CredentialKind::UpyunOperator
            | CredentialKind::UpyunFormSecret
            | CredentialKind::UploadToken
    )
}

/// The longest an upload token lives.
pub const UPLOAD_TOKEN_MAX_TTL: Duration = Duration::from_secs(30 * 86400);

/// The kinds a tenant's own unscoped key issues and manages for itself.
const TENANT_ISSUED: [CredentialKind; 2] = [CredentialKind::UfileToken, CredentialKind::UploadToken];

impl Engine {
    // ----- tenants

    /// Creates a tenant; `false` if it existed already.
    pub async fn create_tenant(&self, p: &Principal, name: &str) -> CoreResult<bool> {
        if !p.admin {
            return Err(CoreError::AccessDenied);
        }
        validate_tenant(name)?;
        match self.meta.create_tenant(TenantRecord { name: name.to_owned(), created_ms: now_ms() }).await {
            Ok(()) => Ok(true),
            Err(StoreError::Exists) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn tenant_exists(&self, name: &str) -> CoreResult<bool> {
        Ok(!name.is_empty() && self.meta.get_tenant(name).await?.is_some())
    }

    pub async fn list_tenants(&self, p: &Principal) -> CoreResult<Vec<TenantRecord>> {
        if !p.admin {
            return Err(CoreError::AccessDenied);
        }
        Ok(self.meta.list_tenants().await?)
    }

    // ----- credentials

    /// Who may issue or manage a credential of `tenant`: the root, or (for UFile tokens and
    /// upload tokens) the tenant's own unscoped key.
    fn may_manage(p: &Principal, tenant: &str, kind: CredentialKind) -> bool {
        p.admin || (TENANT_ISSUED.contains(&kind) && p.scope.is_none() && !p.is_anonymous() && p.tenant == tenant)
    }

    /// Every bucket a scope names must be the tenant's.
    async fn check_scope_buckets(&self, tenant: &str, scope: &Scope) -> CoreResult<()> {
        for b in scope.buckets.iter().flatten() {
            match self.bucket_record(b).await? {
                None => return Err(CoreError::NoSuchBucket),
                Some(rec) if rec.tenant != tenant => return Err(CoreError::AccessDenied),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Issues a credential (replacing one with the same access key); returns it with its
    /// secret.
    pub async fn issue_credential(&self, p: &Principal, spec: CredentialSpec) -> CoreResult<Credential> {
        if !Self::may_manage(p, &spec.tenant, spec.kind) || spec.kind == CredentialKind::Root || spec.kind.is_bearer() {
            return Err(CoreError::AccessDenied);
        }
        if !self.tenant_exists(&spec.tenant).await? {
            return Err(CoreError::NoSuchTenant);
        }
        match (&spec.scope, scoped(spec.kind)) {
            (Some(s), true) => self.check_scope_buckets(&spec.tenant, s).await?,
            (None, true) => return Err(CoreError::InvalidArgument(format!("a {} needs a scope", spec.kind.as_str()))),
            (Some(_), false) => {
                return Err(CoreError::InvalidArgument(format!("a {} cannot be scoped", spec.kind.as_str())))
            }
            (None, false) => {}
        }
        if let Some(existing) = &spec.access_key {
            // A fixed name (device, operator) may be re-issued only by who manages its holder.
            if let Some(old) = self.meta.get_credential(existing).await? {
                if old.kind != spec.kind || !Self::may_manage(p, &old.tenant, old.kind) {
                    return Err(CoreError::AlreadyExists);
                }
                // Re-issuing re-keys or re-binds it for the same tenant; it never moves to
                // another tenant silently (the holder would start writing into their buckets).
                if old.tenant != spec.tenant {
                    return Err(CoreError::InvalidArgument(format!(
                        "{existing} is registered for tenant {}: revoke it first \
                         (DELETE /_chuan/admin/credentials?access_key={existing})",
                        old.tenant
                    )));
                }
            }
        }
        let rec = CredentialRecord {
            access_key: spec.access_key.unwrap_or_else(new_access_key),
            secret: spec.secret.unwrap_or_else(new_secret),
            tenant: spec.tenant,
            kind: spec.kind,
            label: spec.label,
            created_ms: now_ms(),
            expires_ms: spec.expires_ms,
            scope: spec.scope.as_ref().map(|s| serde_json::to_string(s).expect("serialisable")),
        };
        self.meta.put_credential(rec.clone()).await?;
        self.forget_credential(&rec.access_key);
        info(rec)
    }

    /// A credential `p` manages, by access key (`None` when there is none `p` may see).
    pub async fn managed_credential(&self, p: &Principal, access_key: &str) -> CoreResult<Option<Credential>> {
        match self.meta.get_credential(access_key).await? {
            Some(c) if Self::may_manage(p, &c.tenant, c.kind) => Ok(Some(info(c)?)),
            _ => Ok(None),
        }
    }

    /// Changes a credential's scope, expiry or label.
    pub async fn update_credential(
        &self,
        p: &Principal,
        access_key: &str,
        update: CredentialUpdate,
    ) -> CoreResult<Credential> {
        let mut c = match self.meta.get_credential(access_key).await? {
            Some(c) if Self::may_manage(p, &c.tenant, c.kind) => c,
            _ => return Err(CoreError::NoSuchCredential),
        };
        if c.kind.is_bearer() {
            // Their scope and lifetime were checked at issue (an upload token's bounds); a
            // different one is a new token.
            return Err(CoreError::InvalidArgument(format!(
                "a {} is not changed: revoke it and issue another",
                c.kind.as_str()
            )));
        }
        if let Some(scope) = update.scope {
            self.check_scope_buckets(&c.tenant, &scope).await?;
            c.scope = Some(serde_json::to_string(&scope).expect("serialisable"));
        }
        if let Some(e) = update.expires_ms {
            c.expires_ms = Some(e);
        }
        if let Some(l) = update.label {
            c.label = l;
        }
        self.meta.put_credential(c.clone()).await?;
        self.forget_credential(&c.access_key);
        info(c)
    }

    /// Revokes a credential; it stops working at once.
    pub async fn revoke_credential(&self, p: &Principal, access_key: &str) -> CoreResult<()> {
        match self.meta.get_credential(access_key).await? {
            Some(c) if Self::may_manage(p, &c.tenant, c.kind) => {
                self.meta.delete_credential(access_key).await?;
                self.forget_credential(access_key);
                // Tokens bought with it or issued by it go with it (an Aliyun Drive refresh
                // token's access tokens, the upload tokens a tenant key issued).
                {
                    let filter = CredentialFilter { tenant: Some(c.tenant.clone()), kind: None };
                    for child in self.meta.list_credentials(filter).await? {
                        if child.kind.is_bearer() && split_label(&child.label).0 == Some(access_key) {
                            self.meta.delete_credential(&child.access_key).await?;
                            self.forget_credential(&child.access_key);
                        }
                    }
                }
                Ok(())
            }
            _ => Err(CoreError::NoSuchCredential),
        }
    }

    /// The credentials `p` manages: every one for the root (filtered), its tenant's UFile
    /// tokens or upload tokens for a tenant key (`kind` names which).
    pub async fn list_credentials(
        &self,
        p: &Principal,
        tenant: Option<&str>,
        kind: Option<CredentialKind>,
    ) -> CoreResult<Vec<Credential>> {
        let filter = if p.admin {
            CredentialFilter { tenant: tenant.map(str::to_owned), kind }
        } else {
            if p.scope.is_some() || p.is_anonymous() || !kind.is_some_and(|k| TENANT_ISSUED.contains(&k)) {
                return Err(CoreError::AccessDenied);
            }
            CredentialFilter { tenant: Some(p.tenant.clone()), kind }
        };
        self.meta.list_credentials(filter).await?.into_iter().map(info).collect()
    }

    /// Resolves an access key to its secret and principal, if it is a credential of one of
    /// the `accepted` kinds (each protocol names the kinds its requests may be signed with;
    /// bearer tokens resolve through [`Engine::bearer`] only). `None` when unknown, expired or
    /// of another kind, alike.
    pub async fn credential(
        &self,
        access_key: &str,
        accepted: &[CredentialKind],
    ) -> CoreResult<Option<(String, Principal)>> {
        let now = now_ms();
        let Some(c) = self
            .credential_record(access_key)
            .await?
            .filter(|c| c.expires_ms.is_none_or(|e| e > now) && !c.kind.is_bearer() && accepted.contains(&c.kind))
        else {
            return Ok(None);
        };
        let scope = parse_scope(&c)?;
        let principal =
            Principal::new(c.tenant.clone(), c.access_key.clone(), Some(c.kind), c.kind == CredentialKind::Root, scope);
        Ok(Some((c.secret, principal)))
    }

    /// The principal of HTTP Basic credentials (RFC 7617): a key pair's access key as the
    /// user and its secret as the password (any of [`KEY_PAIRS`], scoped ones held to their
    /// scope). `None` when the key is unknown, expired, or the secret is wrong (compared in
    /// constant time); `Unavailable` when the store cannot be asked.
    pub async fn basic(&self, access_key: &str, secret: &str) -> CoreResult<Option<Principal>> {
        Ok(match self.credential(access_key, KEY_PAIRS).await? {
            Some((expected, p)) if crate::constant_time_eq(expected.as_bytes(), secret.as_bytes()) => Some(p),
            _ => None,
        })
    }

    /// Makes `access_key`/`secret` the root credential (from the environment or the data
    /// directory at start-up).
    pub async fn ensure_root_credential(&self, access_key: &str, secret: &str) -> CoreResult<()> {
        let rec = CredentialRecord {
            access_key: access_key.to_owned(),
            secret: secret.to_owned(),
            tenant: "root".into(),
            kind: CredentialKind::Root,
            label: "root".into(),
            created_ms: now_ms(),
            expires_ms: None,
            scope: None,
        };
        let key = rec.access_key.clone();
        self.meta.put_credential(rec).await?;
        self.forget_credential(&key);
        Ok(())
    }

    // ----- bearer tokens

    /// Issues a bearer token of `kind` for `tenant`: the client gets the token, the store
    /// keeps only its SHA-256 (a leaked database leaks no usable token). Refresh tokens are
    /// the root's to issue; access tokens are bought with a refresh token
    /// ([`Engine::exchange_bearer`]).
    pub async fn issue_bearer(
        &self,
        p: &Principal,
        tenant: &str,
        kind: CredentialKind,
        ttl: Option<Duration>,
    ) -> CoreResult<String> {
        if !p.admin || !kind.is_bearer() {
            return Err(CoreError::AccessDenied);
        }
        if !self.tenant_exists(tenant).await? {
            return Err(CoreError::NoSuchTenant);
        }
        if scoped(kind) {
            return Err(CoreError::InvalidArgument(format!("a {} needs a scope", kind.as_str())));
        }
        self.store_bearer(tenant, kind, ttl.map(|t| now_ms() + t.as_millis() as i64), String::new(), None).await
    }

    /// Issues an upload token for `tenant`: a bearer token for a browser or an app
    /// (`Authorization: Bearer <token>` on tus, the IETF resumable uploads and the native
    /// instant-upload API), held to `scope` (which names the tenant's buckets) and expiring
    /// after `ttl` (1 s to [`UPLOAD_TOKEN_MAX_TTL`]). Issued by the tenant's own unscoped key or
    /// the root; the store keeps only its SHA-256. Returns the token (shown once), its
    /// credential id (`upload-token:<SHA-256 hex>`, what listing shows and revocation takes)
    /// and its expiry (ms since the Unix epoch).
    ///
    /// Errors: `AccessDenied` for another issuer, `NoSuchTenant`, `NoSuchBucket` or
    /// `AccessDenied` for a bucket not the tenant's, `InvalidArgument` for a scope without
    /// buckets or without `write`, or a lifetime out of range. A scope without `ops` gets
    /// `write` alone.
    pub async fn issue_upload_token(
        &self,
        p: &Principal,
        tenant: &str,
        label: String,
        scope: Scope,
        ttl: Duration,
    ) -> CoreResult<(String, String, i64)> {
        let kind = CredentialKind::UploadToken;
        if !Self::may_manage(p, tenant, kind) {
            return Err(CoreError::AccessDenied);
        }
        if ttl.is_zero() || ttl > UPLOAD_TOKEN_MAX_TTL {
            return Err(CoreError::InvalidArgument(format!(
                "an upload token lives 1 s to {} days",
                UPLOAD_TOKEN_MAX_TTL.as_secs() / 86400
            )));
        }
        if scope.buckets.as_ref().is_none_or(|b| b.is_empty()) {
            return Err(CoreError::InvalidArgument("an upload token names its bucket".into()));
        }
        // Every request an upload token may make uploads: `write` unless more is asked, and
        // never without it (it could do nothing).
        let scope = Scope { ops: Some(scope.ops.unwrap_or_else(|| vec![Op::Write])), ..scope };
        if scope.ops.as_ref().is_some_and(|ops| !ops.contains(&Op::Write)) {
            return Err(CoreError::InvalidArgument("an upload token's ops include \"write\"".into()));
        }
        if !self.tenant_exists(tenant).await? {
            return Err(CoreError::NoSuchTenant);
        }
        self.check_scope_buckets(tenant, &scope).await?;
        let expires_ms = now_ms() + ttl.as_millis() as i64;
        // Dies with the key that issued it (a stolen key's tokens go when it is revoked); the
        // operator at the console holds no stored key.
        let label = match self.credential_record(p.access_key()).await? {
            Some(_) => format!("{ISSUED_BY}{} {label}", p.access_key()),
            None => label,
        };
        let token = self.store_bearer(tenant, kind, expires_ms.into(), label, Some(scope)).await?;
        let id = bearer_key(kind, &token);
        Ok((token, id, expires_ms))
    }

    /// The credential id (`<kind>:<sha256 hex of the token>`) under which a bearer token is
    /// kept: what `revoke_credential` and `DELETE /_chuan/admin/credentials` take.
    pub fn bearer_credential_id(kind: CredentialKind, token: &str) -> String {
        bearer_key(kind, token)
    }

    /// Stores a new bearer token. `label`: [`ISSUED_BY`] and the credential id of the token
    /// it was bought with, which it dies with (revoked together, and never valid once the
    /// parent is gone) — or the issuer's own label.
    async fn store_bearer(
        &self,
        tenant: &str,
        kind: CredentialKind,
        expires_ms: Option<i64>,
        label: String,
        scope: Option<Scope>,
    ) -> CoreResult<String> {
        let token = hex::encode(rand::random::<[u8; 24]>());
        let rec = CredentialRecord {
            access_key: bearer_key(kind, &token),
            secret: new_secret(),
            tenant: tenant.to_owned(),
            kind,
            label,
            created_ms: now_ms(),
            expires_ms,
            scope: scope.as_ref().map(|s| serde_json::to_string(s).expect("serialisable")),
        };
        self.meta.put_credential(rec).await?;
        Ok(token)
    }

    /// A new bearer token of kind `to` for the tenant of a valid `from` token (Aliyun Drive:
    /// a refresh token buys an access token). `None` when `token` is not a valid `from`;
    /// `SlowDown` when that token has bought its burst of 60 and not yet one a minute since.
    pub async fn exchange_bearer(
        &self,
        from: CredentialKind,
        token: &str,
        to: CredentialKind,
        ttl: Duration,
    ) -> CoreResult<Option<(String, String)>> {
        let Some(p) = self.bearer(from, token).await? else { return Ok(None) };
        if !to.is_bearer() {
            return Err(CoreError::AccessDenied);
        }
        if scoped(to) {
            return Err(CoreError::AccessDenied);
        }
        self.exchange_slot(&bearer_key(from, token)).await?;
        let label = format!("{ISSUED_BY}{}", bearer_key(from, token));
        let new = self.store_bearer(&p.tenant, to, Some(now_ms() + ttl.as_millis() as i64), label, None).await?;
        Ok(Some((new, p.tenant)))
    }

    /// The principal of a bearer token (`None` when unknown or expired).
    pub async fn bearer(&self, kind: CredentialKind, token: &str) -> CoreResult<Option<Principal>> {
        let now = now_ms();
        let Some(c) = self
            .credential_record(&bearer_key(kind, token))
            .await?
            .filter(|c| c.kind == kind && c.expires_ms.is_none_or(|e| e > now))
        else {
            return Ok(None);
        };
        // Bought with or issued by another credential: valid only while that one is (revoked
        // meanwhile, even during the exchange, it takes this one with it).
        if let (Some(parent), _) = split_label(&c.label) {
            if self.credential_record(parent).await?.is_none() {
                return Ok(None);
            }
        }
        let scope = parse_scope(&c)?;
        Ok(Some(Principal::new(
            c.tenant,
            format!("{}:{}", kind.as_str(), &c.access_key[c.access_key.len() - 12..]),
            Some(kind),
            false,
            scope,
        )))
    }

    // ----- aliases

    /// The tenant's alias of `kind`, allocated on first use (random, unique, never changed).
    pub async fn tenant_alias(&self, kind: AliasKind, tenant: &str) -> CoreResult<String> {
        if let Some(a) = self.meta.alias_of(kind.as_str(), tenant).await? {
            return Ok(a);
        }
        if !self.tenant_exists(tenant).await? {
            return Err(CoreError::NoSuchTenant);
        }
        for _ in 0..100 {
            match self.meta.claim_alias(kind.as_str(), &kind.generate(), tenant).await {
                Ok(a) => return Ok(a),
                Err(StoreError::Exists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(CoreError::Internal(format!("no free {} alias", kind.as_str())))
    }

    /// Whether a principal may act under `alias` (a COS appid in a request): the alias names
    /// its tenant, or it is the root. An unknown alias answers `false`, exactly like another
    /// tenant's, so the answer never says which aliases exist.
    pub async fn acts_as_alias(&self, kind: AliasKind, alias: &str, p: &Principal) -> CoreResult<bool> {
        if p.admin {
            return Ok(true);
        }
        Ok(!p.is_anonymous() && self.tenant_of_alias(kind, alias).await?.as_deref() == Some(p.tenant.as_str()))
    }

    /// The tenant an alias names (`None`: no tenant; callers must answer unknown aliases
    /// exactly as they answer known ones they may not use).
    pub async fn tenant_of_alias(&self, kind: AliasKind, alias: &str) -> CoreResult<Option<String>> {
        let cache_key = (kind.as_str(), alias.to_owned());
        if let Some((at, t)) = self.aliases.lock().get(&cache_key) {
            // Aliases never change once given: a found one is good for ever; an unknown one
            // is remembered briefly too, so known and unknown aliases cost the same.
            if t.is_some() || at.elapsed() < ALIAS_MISS_TTL {
                return Ok(t.clone());
            }
        }
        let t = self.meta.resolve_alias(kind.as_str(), alias).await?;
        let mut cache = self.aliases.lock();
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(cache_key, (std::time::Instant::now(), t.clone()));
        Ok(t)
    }
}
