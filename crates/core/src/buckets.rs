//! Buckets: creation (names are global), deletion when empty, visibility, listing.

use chuan_store::{now_ms, Acl, BucketConfig, BucketRecord, StoreError};

use crate::access::Principal;
use crate::acl::AclSpec;
use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};
use crate::names::validate_bucket;

impl Engine {
    /// Creates a bucket owned by the principal's tenant. Scoped credentials cannot.
    /// `BucketAlreadyOwnedByYou` when the tenant has it already, `BucketExists` when another
    /// tenant does.
    pub async fn create_bucket(&self, p: &Principal, name: &str, region: Option<&str>) -> CoreResult<()> {
        self.create_bucket_with(p, name, region, None).await
    }

    /// [`Engine::create_bucket`] with the ACL the request asks for (S3's `x-amz-acl` and
    /// `x-amz-grant-*`); `InvalidArgument` for grants to unknown tenants, nothing created.
    pub async fn create_bucket_with(
        &self,
        p: &Principal,
        name: &str,
        region: Option<&str>,
        acl: Option<&AclSpec>,
    ) -> CoreResult<()> {
        if p.scope.is_some() || p.is_anonymous() {
            return Err(CoreError::AccessDenied);
        }
        let acl = match acl {
            Some(spec) => {
                let b = BucketRecord {
                    name: name.to_owned(),
                    tenant: p.tenant.clone(),
                    public: false,
                    region: String::new(),
                    created_ms: 0,
                    config: BucketConfig::default(),
                };
                Some(self.resolve_acl(spec, &p.tenant, &b).await?)
            }
            None => None,
        };
        self.create_bucket_of(&p.tenant, name, region, acl).await
    }

    /// Creates a bucket for `tenant` (the root acting for a tenant: default drives, tools).
    pub async fn create_bucket_for(&self, p: &Principal, tenant: &str, name: &str) -> CoreResult<()> {
        if !p.admin {
            return Err(CoreError::AccessDenied);
        }
        if !self.tenant_exists(tenant).await? {
            return Err(CoreError::NoSuchTenant);
        }
        self.create_bucket_of(tenant, name, None, None).await
    }

    async fn create_bucket_of(
        &self,
        tenant: &str,
        name: &str,
        region: Option<&str>,
        acl: Option<Acl>,
    ) -> CoreResult<()> {
        validate_bucket(name)?;
        let rec = BucketRecord {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            public: false,
            region: region.unwrap_or(&self.config.region).to_owned(),
            created_ms: now_ms(),
            config: BucketConfig { acl, cors: None },
        };
        let r = self.meta.create_bucket(rec).await;
        self.forget_bucket(name);
        match r {
            Err(StoreError::Exists) => match self.meta.get_bucket(name).await? {
                Some(b) if b.tenant == tenant => Err(CoreError::BucketAlreadyOwnedByYou),
                _ => Err(CoreError::BucketExists),
            },
            r => Ok(r?),
        }
    }

    /// Deletes an empty bucket (open upload sessions are aborted with it); its owner only.
    pub async fn delete_bucket(&self, p: &Principal, name: &str) -> CoreResult<()> {
        let b = self.admit_owner(p, name).await?;
        self.charge_request(p, &b).await?;
        let r = self.meta.delete_bucket(name).await;
        self.forget_bucket(name);
        match r {
            Err(StoreError::NotEmpty) => Err(CoreError::BucketNotEmpty),
            Err(StoreError::NotFound) => Err(CoreError::NoSuchBucket),
            r => Ok(r?),
        }
    }

    /// Public buckets serve reads unsigned (in dialects that have that notion).
    pub async fn set_bucket_public(&self, p: &Principal, name: &str, public: bool) -> CoreResult<()> {
        let b = self.admit_owner(p, name).await?;
        self.charge_request(p, &b).await?;
        let r = self.meta.set_bucket_public(name, public).await;
        self.forget_bucket(name);
        match r {
            Err(StoreError::NotFound) => Err(CoreError::NoSuchBucket),
            r => Ok(r?),
        }
    }

    /// Replaces a bucket's settings and forgets the cached record.
    pub(crate) async fn store_bucket_config(&self, name: &str, config: &BucketConfig) -> CoreResult<()> {
        let r = self.meta.set_bucket_config(name, config).await;
        self.forget_bucket(name);
        match r {
            Err(StoreError::NotFound) => Err(CoreError::NoSuchBucket),
            r => Ok(r?),
        }
    }

    /// The buckets the principal may see: its tenant's (every tenant's for the root), within
    /// its scope.
    pub async fn list_buckets(&self, p: &Principal) -> CoreResult<Vec<BucketRecord>> {
        if p.is_anonymous() {
            return Err(CoreError::AccessDenied);
        }
        let all = self.meta.list_buckets(if p.admin { None } else { Some(&p.tenant) }).await?;
        Ok(all.into_iter().filter(|b| p.scope.as_ref().is_none_or(|s| s.allows_bucket(&b.name))).collect())
    }

    /// Whether `bucket` exists and belongs to `tenant` (for routing requests whose host names
    /// both, such as COS download hosts; not an access decision).
    pub async fn bucket_owned_by(&self, bucket: &str, tenant: &str) -> CoreResult<bool> {
        Ok(self.bucket_record(bucket).await?.is_some_and(|b| b.tenant == tenant))
    }
}
