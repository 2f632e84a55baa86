//! Who is asking, and what they may do: principals, scopes, and the one place every
//! operation's access is decided.
//!
//! Every dialect resolves its caller to a [`Principal`] (from a credential through
//! [`Engine::credential`] or [`Engine::bearer`], from a signed URL grant, or
//! [`Principal::anonymous`]) and passes it to every engine call. The engine then decides,
//! inside each operation and for every key the operation names (copy sources, rename targets,
//! multipart completion keys, instant-upload claims, listings of sessions and parts):
//! 1. the principal's scope allows the operation class on that bucket and key;
//! 2. the bucket's and the object's access control lists allow it (`acl.rs`): by default the
//!    bucket's owner (and the root) alone; other tenants and anonymous callers get what is
//!    granted to them, anonymous callers also the objects of public buckets.
//!
//! Deciding and metering are separate steps: `admit`, `admit_bucket` and `read_access`
//! decide and charge nothing; an operation charges the request (to the bucket it writes, or
//! reads) once every key it names has been admitted, so refused and anonymous requests never
//! consume a tenant's allowances (see `metering.rs`).

use chuan_store::{BucketRecord, ContentRecord, CredentialKind, ObjectRecord, Permission, Within};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::acl::{bucket_allows, object_allows};
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};

/// Operation classes a scope grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Read,
    Write,
    Delete,
    List,
}

/// Restrictions of a credential; `None` in a field means "no restriction on this axis".
/// Expiry is the credential's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<Op>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<Vec<String>>,
}

impl Scope {
    /// Full rights on one bucket (UpYun operators and form secrets).
    pub fn bucket(bucket: &str) -> Self {
        Scope { ops: None, buckets: Some(vec![bucket.to_owned()]), prefixes: None }
    }

    pub fn allows_op(&self, op: Op) -> bool {
        self.ops.as_ref().is_none_or(|ops| ops.contains(&op))
    }

    pub fn allows_bucket(&self, bucket: &str) -> bool {
        self.buckets.as_ref().is_none_or(|b| b.iter().any(|x| x == bucket))
    }

    /// Whether `op` on `key` (a key, or a listing prefix for `List`) in `bucket` is granted.
    pub fn allows(&self, op: Op, bucket: &str, key: &str) -> bool {
        self.allows_op(op)
            && self.allows_bucket(bucket)
            && self.prefixes.as_ref().is_none_or(|ps| ps.iter().any(|p| key.starts_with(p.as_str())))
    }
}

/// Per-request state a principal carries: whether this request has been metered yet.
#[derive(Debug, Default)]
struct RequestState {
    charged: AtomicBool,
    admitted: AtomicBool,
}

/// Who is asking, for one request. Resolved afresh for every request (a revoked or expired
/// credential stops working at once), and carrying that request's metering state, so a
/// request is charged once however many engine calls it makes. Only the core makes or
/// changes one: its fields are read through accessors.
#[derive(Debug, Clone)]
pub struct Principal {
    pub(crate) tenant: String,
    pub(crate) access_key: String,
    pub(crate) kind: Option<CredentialKind>,
    pub(crate) admin: bool,
    pub(crate) scope: Option<Scope>,
    /// The address the request came from (set by the listener; `None` in-process).
    client: Option<std::net::IpAddr>,
    request: Arc<RequestState>,
}

const ANONYMOUS: &str = "anonymous";

impl Principal {
    pub(crate) fn new(
        tenant: String,
        access_key: String,
        kind: Option<CredentialKind>,
        admin: bool,
        scope: Option<Scope>,
    ) -> Self {
        let client = crate::throttle::current_client();
        Self { tenant, access_key, kind, admin, scope, client, request: Default::default() }
    }

    /// A tenant-wide principal, for trusted in-process callers (tests, tools). Dialects get
    /// principals from credentials, bearer tokens and URL grants, never from this.
    pub fn of_tenant(tenant: &str, access_key: &str) -> Self {
        Self::new(tenant.to_owned(), access_key.to_owned(), Some(CredentialKind::TenantKey), false, None)
    }

    /// The same principal restricted to `scope`, for trusted in-process callers (tests,
    /// tools); dialects never (checked by the architecture test).
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The operator of this machine, for `chuan admin` commands run against a data directory:
    /// root rights without a credential. Dialects never use it.
    pub fn operator() -> Self {
        Self::new("root".into(), "operator".into(), Some(CredentialKind::Root), true, None)
    }

    /// An unauthenticated caller: it may do what ACLs grant to everyone (`AllUsers`) and
    /// read the objects of public buckets, nothing else.
    pub fn anonymous() -> Self {
        Self::new(String::new(), ANONYMOUS.into(), None, false, None)
    }

    /// The tenant acted for (empty for anonymous callers).
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The credential's access key, or a label for grants and anonymous callers.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The kind of credential behind it; `None` for anonymous callers and URL grants.
    pub fn kind(&self) -> Option<CredentialKind> {
        self.kind
    }

    /// Root credentials: may act on every tenant's buckets and use the admin API.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Restrictions of a scoped credential (tokens, devices, operators, grants).
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// The client's address, when the request came over the network.
    pub fn client(&self) -> Option<std::net::IpAddr> {
        self.client
    }

    pub fn is_anonymous(&self) -> bool {
        self.tenant.is_empty() && self.kind.is_none() && self.access_key == ANONYMOUS
    }

    /// Marks this request admitted (rate-limited); `true` the first time.
    pub(crate) fn first_admission(&self) -> bool {
        !self.request.admitted.swap(true, Ordering::SeqCst)
    }

    /// Marks this request metered; `true` the first time.
    pub(crate) fn first_charge(&self) -> bool {
        !self.request.charged.swap(true, Ordering::SeqCst)
    }

    /// Whether this request has been metered.
    pub(crate) fn charged(&self) -> bool {
        self.request.charged.load(Ordering::SeqCst)
    }

    /// Undoes [`Principal::first_charge`] when the charge was refused.
    pub(crate) fn request_uncharged(&self) {
        self.request.charged.store(false, Ordering::SeqCst);
    }

    /// Where this principal may read: the objects an instant-upload claim may hit without a
    /// proof. `None` when it may read nothing (write-only or anonymous).
    pub(crate) fn readable(&self) -> Option<Within> {
        if self.is_anonymous() {
            return None;
        }
        match &self.scope {
            None => Some(Within::default()),
            Some(s) if s.allows_op(Op::Read) => {
                Some(Within { buckets: s.buckets.clone(), prefixes: s.prefixes.clone() })
            }
            Some(_) => None,
        }
    }
}

impl Op {
    /// The bucket permission an operation of this class needs (`Read` of an object is the
    /// object's own; on the bucket it is what a public bucket or a `READ` grant gives).
    fn bucket_permission(self) -> Permission {
        match self {
            Op::Read | Op::List => Permission::Read,
            Op::Write | Op::Delete => Permission::Write,
        }
    }
}

/// The read decision of [`Engine::read_access`].
fn may_read(b: &BucketRecord, p: &Principal, obj: Option<&ObjectRecord>) -> CoreResult<()> {
    let allowed = match obj {
        Some(o) => object_allows(b, o, p, Permission::Read),
        // A public bucket answers anonymous reads of missing keys as missing (as UFile's and
        // COS's public buckets do); a tenant learns of missing keys only by a READ grant.
        None => bucket_allows(b, p, Permission::Read) || (b.public && p.is_anonymous()),
    };
    if allowed {
        Ok(())
    } else {
        Err(CoreError::AccessDenied)
    }
}

impl Engine {
    /// The scope check and the bucket every decision starts with. Scope refusals come
    /// before any lookup, so they reveal nothing.
    async fn scoped_bucket(&self, p: &Principal, op: Op, bucket: &str, key: Option<&str>) -> CoreResult<BucketRecord> {
        if let Some(s) = &p.scope {
            let allowed = match key {
                Some(key) => s.allows(op, bucket, key),
                None => s.allows_op(op) && s.allows_bucket(bucket),
            };
            if !allowed {
                return Err(CoreError::AccessDenied);
            }
        }
        self.throttle(p)?;
        self.bucket_record(bucket).await?.ok_or(CoreError::NoSuchBucket)
    }

    /// The access decision: may `p` do `op` on `key` (a key, or a listing prefix for
    /// `Op::List`) of `bucket`? Returns the bucket; charges nothing. The bucket's ACL
    /// decides (`acl.rs`): its owner alone by default; `Op::Read` without an object (a
    /// folder, a missing key) also passes for anonymous callers of a public bucket (as
    /// [`Engine::read_access`] decides).
    pub(crate) async fn admit(&self, p: &Principal, op: Op, bucket: &str, key: &str) -> CoreResult<BucketRecord> {
        let b = self.scoped_bucket(p, op, bucket, Some(key)).await?;
        if bucket_allows(&b, p, op.bucket_permission()) || (op == Op::Read && b.public && p.is_anonymous()) {
            Ok(b)
        } else {
            Err(CoreError::AccessDenied)
        }
    }

    /// Bucket-level access (head, location, usage, a check before a body is read): the scope
    /// must allow the bucket, and `p` must own it or hold a `READ` or `WRITE` grant on it.
    /// Charges nothing.
    pub(crate) async fn admit_bucket(&self, p: &Principal, bucket: &str) -> CoreResult<BucketRecord> {
        if p.scope.as_ref().is_some_and(|s| !s.allows_bucket(bucket)) {
            return Err(CoreError::AccessDenied);
        }
        self.throttle(p)?;
        let b = self.bucket_record(bucket).await?.ok_or(CoreError::NoSuchBucket)?;
        if bucket_allows(&b, p, Permission::Read) || bucket_allows(&b, p, Permission::Write) {
            Ok(b)
        } else {
            Err(CoreError::AccessDenied)
        }
    }

    /// What only a bucket's owner (or the root) may do with an unscoped credential:
    /// delete it, switch it public, set its CORS rules. Charges nothing.
    pub(crate) async fn admit_owner(&self, p: &Principal, bucket: &str) -> CoreResult<BucketRecord> {
        if p.scope.is_some() || p.is_anonymous() {
            return Err(CoreError::AccessDenied);
        }
        self.throttle(p)?;
        let b = self.bucket_record(bucket).await?.ok_or(CoreError::NoSuchBucket)?;
        if p.admin || p.tenant == b.tenant {
            Ok(b)
        } else {
            Err(CoreError::AccessDenied)
        }
    }

    /// May `p` use the ACL of `bucket` (`ReadAcp`, `WriteAcp`)? Scoped credentials need the
    /// bucket in scope and read (or write) rights.
    pub(crate) async fn admit_permission(
        &self,
        p: &Principal,
        bucket: &str,
        perm: Permission,
    ) -> CoreResult<BucketRecord> {
        let op = if perm == Permission::WriteAcp { Op::Write } else { Op::Read };
        let b = self.scoped_bucket(p, op, bucket, None).await?;
        if bucket_allows(&b, p, perm) {
            Ok(b)
        } else {
            Err(CoreError::AccessDenied)
        }
    }

    /// May `p` use `perm` on the object at `key`? The object must exist (`NoSuchKey` only
    /// to those who may list the bucket; others are refused alike either way).
    pub(crate) async fn admit_object(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        perm: Permission,
    ) -> CoreResult<(BucketRecord, ObjectRecord)> {
        let op = if matches!(perm, Permission::Write | Permission::WriteAcp) { Op::Write } else { Op::Read };
        let b = self.scoped_bucket(p, op, bucket, Some(key)).await?;
        match self.meta.get_object(bucket, key).await? {
            Some(o) if object_allows(&b, &o, p, perm) => Ok((b, o)),
            Some(_) => Err(CoreError::AccessDenied),
            None if bucket_allows(&b, p, Permission::Read) => Err(CoreError::NoSuchKey),
            None => Err(CoreError::AccessDenied),
        }
    }

    /// May `p` read this object (or, `None`, learn that `key` holds none)? The object's ACL
    /// decides (`acl.rs`); a missing object is reported only to callers who may list the
    /// bucket (or read a public one), so no one else learns anything of its keys.
    pub(crate) async fn read_access(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        obj: Option<&ObjectRecord>,
    ) -> CoreResult<BucketRecord> {
        let b = self.scoped_bucket(p, Op::Read, bucket, Some(key)).await?;
        may_read(&b, p, obj)?;
        Ok(b)
    }

    /// The object at `key` and its bucket, if `p` may read it ([`Engine::read_access`]
    /// with the object looked up after the scope check).
    pub(crate) async fn read_object(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
    ) -> CoreResult<(Option<ObjectRecord>, BucketRecord)> {
        let b = self.scoped_bucket(p, Op::Read, bucket, Some(key)).await?;
        let obj = self.meta.get_object(bucket, key).await?;
        may_read(&b, p, obj.as_ref())?;
        Ok((obj, b))
    }

    /// [`Engine::read_object`] with the object's content (small objects' bytes included), in
    /// one metadata round trip.
    pub(crate) async fn read_object_for_download(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
    ) -> CoreResult<(Option<(ObjectRecord, ContentRecord)>, BucketRecord)> {
        let b = self.scoped_bucket(p, Op::Read, bucket, Some(key)).await?;
        let found = self.meta.get_object_for_read(bucket, key).await?;
        may_read(&b, p, found.as_ref().map(|(o, _)| o))?;
        Ok((found, b))
    }

    /// Checks, before a body is read, that `p` may do `op` on `key` of `bucket` (the same
    /// decision the operation itself makes) and that the owner's request allowance is not used
    /// up. Charges nothing: the operation does.
    pub async fn check_access(&self, p: &Principal, op: Op, bucket: &str, key: &str) -> CoreResult<BucketRecord> {
        let b = self.admit(p, op, bucket, key).await?;
        self.check_allowance(p, &b).await?;
        Ok(b)
    }

    /// Account management (buckets, credentials, quotas, reports, prices) is for a tenant's
    /// own keys and the root, never for scoped credentials or anonymous callers.
    pub fn check_management(&self, p: &Principal) -> CoreResult<()> {
        if p.scope.is_some() || p.is_anonymous() {
            return Err(CoreError::AccessDenied);
        }
        self.throttle(p)
    }

    /// Checks that the bucket exists, the principal may use it and the owner's request
    /// allowance is not used up (before a body is read). Charges nothing.
    pub async fn check_bucket(&self, p: &Principal, name: &str) -> CoreResult<BucketRecord> {
        let b = self.admit_bucket(p, name).await?;
        self.check_allowance(p, &b).await?;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_axis_restricts() {
        let s =
            Scope { ops: Some(vec![Op::Write]), buckets: Some(vec!["b".into()]), prefixes: Some(vec!["P/D/".into()]) };
        assert!(s.allows(Op::Write, "b", "P/D/f.txt"));
        assert!(!s.allows(Op::Read, "b", "P/D/f.txt"));
        assert!(!s.allows(Op::Write, "c", "P/D/f.txt"));
        assert!(!s.allows(Op::Write, "b", "P/E/f.txt"));
        assert!(Scope::default().allows(Op::Delete, "any", "thing"));
    }

    #[test]
    fn what_a_principal_may_read() {
        assert_eq!(Principal::of_tenant("t", "k").readable(), Some(Within::default()));
        assert_eq!(Principal::anonymous().readable(), None);
        let mut p = Principal::of_tenant("t", "k");
        p.scope = Some(Scope { ops: Some(vec![Op::Write]), buckets: None, prefixes: None });
        assert_eq!(p.readable(), None, "a write-only scope reads nothing");
        p.scope = Some(Scope { ops: None, buckets: Some(vec!["b".into()]), prefixes: Some(vec!["pub/".into()]) });
        assert_eq!(p.readable(), Some(Within { buckets: Some(vec!["b".into()]), prefixes: Some(vec!["pub/".into()]) }));
    }

    #[test]
    fn a_request_is_charged_once_across_clones() {
        let p = Principal::of_tenant("t", "k");
        let q = p.clone();
        assert!(p.first_charge());
        assert!(!q.first_charge());
        assert!(Principal::of_tenant("t", "k").first_charge(), "another request starts afresh");
    }
}
