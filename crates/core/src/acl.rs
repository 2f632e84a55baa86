//! Access control lists: who besides a bucket's owner may do what, on a bucket and on each
//! object (S3's ACL model, applied to every dialect).
//!
//! A bucket or object without an ACL of its own has the default one: its owner has full
//! control and nobody else has anything (public buckets aside, see `access.rs`). An explicit
//! ACL replaces the default whole, owner included, except that an owner may always read and
//! change the ACL itself (S3's rule: an owner can lock itself out of the data, never out of
//! the ACL). Grants to [`Grantee::Tenant`] name tenants (S3 canonical user ids are tenant
//! names); grants to groups reach anonymous callers ([`Grantee::AllUsers`]) or any caller
//! with a credential ([`Grantee::AuthenticatedUsers`]).
//!
//! An object's owner is the tenant that wrote it: a tenant writing into another tenant's
//! bucket (by a `WRITE` grant) owns what it writes, and the bucket's owner reads it only if
//! the object's ACL grants that (`bucket-owner-read`, `bucket-owner-full-control`), as in S3.

use chuan_store::{Acl, BucketRecord, Grant, Grantee, ObjectAccess, ObjectRecord, Permission};

use crate::access::Principal;
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};

/// The canonical id of the root credential (`Principal::operator` and root keys act as it).
const ROOT_ID: &str = "root";

/// S3's canned ACLs (`x-amz-acl`), by their wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CannedAcl {
    Private,
    PublicRead,
    PublicReadWrite,
    AuthenticatedRead,
    BucketOwnerRead,
    BucketOwnerFullControl,
    LogDeliveryWrite,
    AwsExecRead,
}

impl CannedAcl {
    /// The canned ACL called `name` (`private`, `public-read`, ...), if there is one.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "private" => Self::Private,
            "public-read" => Self::PublicRead,
            "public-read-write" => Self::PublicReadWrite,
            "authenticated-read" => Self::AuthenticatedRead,
            "bucket-owner-read" => Self::BucketOwnerRead,
            "bucket-owner-full-control" => Self::BucketOwnerFullControl,
            "log-delivery-write" => Self::LogDeliveryWrite,
            "aws-exec-read" => Self::AwsExecRead,
            _ => return None,
        })
    }

    /// The grants this canned ACL stands for, for a resource owned by `owner` in a bucket
    /// owned by `bucket_owner`: group grants first, then the owner's full control, then the
    /// bucket owner's (the order S3-compatible services list them in).
    fn grants(self, owner: &str, bucket_owner: &str) -> Vec<Grant> {
        let g = |grantee: Grantee, permission| Grant { grantee, permission };
        let mut v = Vec::new();
        match self {
            Self::PublicRead => v.push(g(Grantee::AllUsers, Permission::Read)),
            Self::PublicReadWrite => {
                v.push(g(Grantee::AllUsers, Permission::Read));
                v.push(g(Grantee::AllUsers, Permission::Write));
            }
            Self::AuthenticatedRead => v.push(g(Grantee::AuthenticatedUsers, Permission::Read)),
            Self::LogDeliveryWrite => {
                v.push(g(Grantee::LogDelivery, Permission::Write));
                v.push(g(Grantee::LogDelivery, Permission::ReadAcp));
            }
            _ => {}
        }
        v.push(g(Grantee::Tenant(owner.to_owned()), Permission::FullControl));
        if bucket_owner != owner {
            match self {
                Self::BucketOwnerRead => v.push(g(Grantee::Tenant(bucket_owner.to_owned()), Permission::Read)),
                Self::BucketOwnerFullControl => {
                    v.push(g(Grantee::Tenant(bucket_owner.to_owned()), Permission::FullControl))
                }
                _ => {}
            }
        }
        v
    }
}

/// The ACL a request asks for: a canned one, or explicit grants (S3's `x-amz-grant-*`
/// headers or an `AccessControlPolicy` body). An empty grant list is an ACL that grants
/// nothing (the owner keeps only its right to the ACL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclSpec {
    Canned(CannedAcl),
    Grants(Vec<Grant>),
}

/// Whether `grant` gives `p` `perm`.
fn grant_reaches(grant: &Grant, p: &Principal, perm: Permission) -> bool {
    let covers = grant.permission == perm || grant.permission == Permission::FullControl;
    covers
        && match &grant.grantee {
            Grantee::AllUsers => true,
            Grantee::AuthenticatedUsers => !p.is_anonymous(),
            Grantee::Tenant(t) => !p.is_anonymous() && p.tenant == *t,
            Grantee::LogDelivery => false,
        }
}

/// Whether an explicit ACL gives `p` `perm` (its owner always holds the ACL permissions).
fn acl_allows(acl: &Acl, p: &Principal, perm: Permission) -> bool {
    let owner = !p.is_anonymous() && p.tenant == acl.owner;
    (owner && matches!(perm, Permission::ReadAcp | Permission::WriteAcp))
        || acl.grants.iter().any(|g| grant_reaches(g, p, perm))
}

/// Whether `p` holds `perm` on bucket `b`.
pub(crate) fn bucket_allows(b: &BucketRecord, p: &Principal, perm: Permission) -> bool {
    if p.admin {
        return true;
    }
    match &b.config.acl {
        Some(acl) => acl_allows(acl, p, perm),
        None => !p.is_anonymous() && p.tenant == b.tenant,
    }
}

/// Whether `p` holds `perm` on object `o` of bucket `b`. Without an ACL of its own the
/// bucket's owner owns the object, and `ObjectAccess` (or a public bucket) opens reads.
pub(crate) fn object_allows(b: &BucketRecord, o: &ObjectRecord, p: &Principal, perm: Permission) -> bool {
    if p.admin {
        return true;
    }
    match &o.meta.acl {
        // A protocol's explicit public/private switch set after the ACL (COS `authority`,
        // UFile) decides for anonymous callers.
        Some(_) if p.is_anonymous() && o.meta.access == ObjectAccess::Private => false,
        Some(_) if p.is_anonymous() && o.meta.access == ObjectAccess::PublicRead && perm == Permission::Read => true,
        Some(acl) => acl_allows(acl, p, perm),
        None => {
            let public = match o.meta.access {
                ObjectAccess::PublicRead => true,
                ObjectAccess::Private => false,
                ObjectAccess::Inherit => b.public,
            };
            (!p.is_anonymous() && p.tenant == b.tenant) || (perm == Permission::Read && public)
        }
    }
}

/// The default ACL of a resource owned by `owner`: full control to it alone.
pub fn owner_acl(owner: &str) -> Acl {
    Acl { owner: owner.to_owned(), grants: CannedAcl::Private.grants(owner, owner) }
}

impl Engine {
    /// Resolves what a request asks for into an ACL owned by `owner` in bucket `b`: canned
    /// ACLs expand, grants to tenants must name existing tenants (`InvalidArgument`).
    pub(crate) async fn resolve_acl(&self, spec: &AclSpec, owner: &str, b: &BucketRecord) -> CoreResult<Acl> {
        let grants = match spec {
            AclSpec::Canned(c) => c.grants(owner, &b.tenant),
            AclSpec::Grants(grants) => {
                for g in grants {
                    if let Grantee::Tenant(t) = &g.grantee {
                        // The root's canonical id is "root" (what it is shown as), no tenant's.
                        if t != ROOT_ID && !self.tenant_exists(t).await? {
                            return Err(CoreError::InvalidArgument("Invalid id".into()));
                        }
                    }
                }
                grants.clone()
            }
        };
        Ok(Acl { owner: owner.to_owned(), grants })
    }

    /// The tenant that owns what `p` writes into bucket `b`: the writer itself, or the
    /// bucket's owner for anonymous writers and the root.
    fn writer_of(p: &Principal, b: &BucketRecord) -> String {
        if p.is_anonymous() || p.admin {
            b.tenant.clone()
        } else {
            p.tenant.clone()
        }
    }

    /// The ACL an object written by `p` into `b` gets: what the request asked for (see
    /// [`Engine::requested_acl`]), owned by the writer; with nothing asked, none of its own
    /// when the bucket's owner writes, and full control to the writer when another tenant
    /// does.
    pub(crate) fn acl_on_write(p: &Principal, b: &BucketRecord, asked: Option<Acl>) -> Option<Acl> {
        let owner = Self::writer_of(p, b);
        match asked {
            Some(mut acl) => {
                if acl.owner != owner {
                    // Resolved for another writer (cannot happen through `requested_acl`):
                    // the writer owns it, with what was granted to the other kept.
                    acl.owner = owner;
                }
                Some(acl)
            }
            None if owner != b.tenant => Some(owner_acl(&owner)),
            None => None,
        }
    }

    /// The ACL `p` asks a write into `bucket` to give the object (for `ObjectMeta::acl`),
    /// resolved before the body is read: `InvalidArgument` for grants to unknown tenants.
    /// Charges nothing and decides no access: the write itself is admitted as any other.
    pub async fn requested_acl(&self, p: &Principal, bucket: &str, key: &str, spec: &AclSpec) -> CoreResult<Acl> {
        // Admitted first, so a caller who may not write here learns nothing (not even which
        // tenants exist).
        let b = self.admit(p, crate::access::Op::Write, bucket, key).await?;
        Self::scoped_acl_rule(p, spec)?;
        self.resolve_acl(spec, &Self::writer_of(p, &b), &b).await
    }

    /// A scoped credential (token, device, operator) may not open what it writes to anyone
    /// else: it sets no ACL but the owner-only `private` (else it could publish, and then
    /// read anonymously, what its scope does not let it read).
    fn scoped_acl_rule(p: &Principal, spec: &AclSpec) -> CoreResult<()> {
        match (p.scope(), spec) {
            (None, _) | (Some(_), AclSpec::Canned(CannedAcl::Private)) => Ok(()),
            (Some(_), _) => Err(CoreError::AccessDenied),
        }
    }

    /// A bucket's ACL (its default one when none was set); needs `READ_ACP` and an
    /// unscoped credential (a bucket's grants are account management).
    pub async fn bucket_acl(&self, p: &Principal, bucket: &str) -> CoreResult<Acl> {
        if p.scope().is_some() {
            return Err(CoreError::AccessDenied);
        }
        let b = self.admit_permission(p, bucket, Permission::ReadAcp).await?;
        self.charge_request(p, &b).await?;
        Ok(b.config.acl.clone().unwrap_or_else(|| owner_acl(&b.tenant)))
    }

    /// Replaces a bucket's ACL; needs `WRITE_ACP` and an unscoped credential. The bucket's
    /// owner stays its owner.
    pub async fn put_bucket_acl(&self, p: &Principal, bucket: &str, spec: &AclSpec) -> CoreResult<()> {
        if p.scope().is_some() {
            return Err(CoreError::AccessDenied);
        }
        let b = self.admit_permission(p, bucket, Permission::WriteAcp).await?;
        let acl = self.resolve_acl(spec, &b.tenant, &b).await?;
        self.charge_request(p, &b).await?;
        let mut config = b.config.clone();
        config.acl = Some(acl);
        self.store_bucket_config(bucket, &config).await
    }

    /// An object's ACL (its default one when none was set); needs `READ_ACP` on the object.
    pub async fn object_acl(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<(ObjectRecord, Acl)> {
        let (b, rec) = self.admit_object(p, bucket, key, Permission::ReadAcp).await?;
        self.charge_request(p, &b).await?;
        let acl = rec.meta.acl.clone().unwrap_or_else(|| owner_acl(&b.tenant));
        Ok((rec, acl))
    }

    /// Replaces an object's ACL, keeping its content, metadata and owner; needs `WRITE_ACP`
    /// on the object.
    pub async fn put_object_acl(&self, p: &Principal, bucket: &str, key: &str, spec: &AclSpec) -> CoreResult<()> {
        let (b, rec) = self.admit_object(p, bucket, key, Permission::WriteAcp).await?;
        Self::scoped_acl_rule(p, spec)?;
        let owner = rec.meta.acl.as_ref().map_or_else(|| b.tenant.clone(), |a| a.owner.clone());
        let acl = self.resolve_acl(spec, &owner, &b).await?;
        self.charge_request(p, &b).await?;
        let mut meta = rec.meta.clone();
        meta.acl = Some(acl);
        // The ACL now decides anonymous reads; a protocol's earlier public/private switch
        // (UFile, COS) is replaced by it.
        meta.access = ObjectAccess::Inherit;
        self.replace_meta(&rec, meta).await?;
        Ok(())
    }
}
