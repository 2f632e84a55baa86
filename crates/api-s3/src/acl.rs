//! Access control lists on the wire: `x-amz-acl` and `x-amz-grant-*` headers, the
//! `AccessControlPolicy` document, and Get/Put Bucket/Object ACL. The core decides and
//! enforces (`chuan_core::AclSpec`); this file only translates.

use chuan_core::store::{Acl, Grant, Grantee, Permission};
use chuan_core::{AclSpec, CannedAcl, Engine, Principal};
use s3s::dto;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::error::OrS3;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

/// The `x-amz-grant-*` headers of an s3s input (`object`: the four an object write has;
/// `bucket`: with `x-amz-grant-write` too).
macro_rules! grant_headers {
    (object $i:expr) => {
        $crate::acl::GrantHeaders {
            read: $i.grant_read.as_deref(),
            write: None,
            read_acp: $i.grant_read_acp.as_deref(),
            write_acp: $i.grant_write_acp.as_deref(),
            full_control: $i.grant_full_control.as_deref(),
        }
    };
    (bucket $i:expr) => {
        $crate::acl::GrantHeaders { write: $i.grant_write.as_deref(), ..$crate::acl::grant_headers!(object $i) }
    };
}
pub(crate) use grant_headers;

/// The ACL an object write's `$input` asks for (`x-amz-acl` or `x-amz-grant-*`), resolved by
/// the core: `Option<Acl>` for `ObjectMeta::acl`.
macro_rules! object_acl {
    ($engine:expr, $p:expr, $input:expr) => {
        $crate::acl::for_object(
            $engine,
            $p,
            &$input.bucket,
            &$input.key,
            $input.acl.as_ref(),
            $crate::acl::grant_headers!(object $input),
        )
        .await
    };
}
pub(crate) use object_acl;

/// The `x-amz-grant-*` headers of a request, each a comma-separated list of
/// `id="..."`, `uri="..."` or `emailAddress="..."` grantees.
#[derive(Default)]
pub(crate) struct GrantHeaders<'a> {
    pub read: Option<&'a str>,
    pub write: Option<&'a str>,
    pub read_acp: Option<&'a str>,
    pub write_acp: Option<&'a str>,
    pub full_control: Option<&'a str>,
}

fn group(uri: &str) -> S3Result<Grantee> {
    match uri {
        ALL_USERS => Ok(Grantee::AllUsers),
        AUTHENTICATED_USERS => Ok(Grantee::AuthenticatedUsers),
        LOG_DELIVERY => Ok(Grantee::LogDelivery),
        _ => Err(s3_error!(InvalidArgument, "Invalid group uri")),
    }
}

/// Chuan's tenants have no e-mail addresses, so no grant by address can be resolved.
fn unresolvable_email() -> s3s::S3Error {
    s3_error!(
        UnresolvableGrantByEmailAddress,
        "The e-mail address you provided does not match any account on record; grant by canonical id instead."
    )
}

/// One header's grantee list.
fn parse_grantees(value: &str) -> S3Result<Vec<Grantee>> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, v) = item.split_once('=').ok_or_else(|| s3_error!(InvalidArgument, "Invalid grant header"))?;
        let v = v.trim().trim_matches('"');
        match kind.trim().to_ascii_lowercase().as_str() {
            "id" => out.push(Grantee::Tenant(v.to_owned())),
            "uri" => out.push(group(v)?),
            "emailaddress" => return Err(unresolvable_email()),
            _ => return Err(s3_error!(InvalidArgument, "Invalid grant header")),
        }
    }
    Ok(out)
}

/// What a write asks for: a canned ACL or grant headers (not both, as S3), or nothing.
pub(crate) fn requested(canned: Option<&str>, h: GrantHeaders<'_>) -> S3Result<Option<AclSpec>> {
    let headers = [
        (h.read, Permission::Read),
        (h.write, Permission::Write),
        (h.read_acp, Permission::ReadAcp),
        (h.write_acp, Permission::WriteAcp),
        (h.full_control, Permission::FullControl),
    ];
    let any_grant = headers.iter().any(|(v, _)| v.is_some());
    match canned {
        Some(_) if any_grant => {
            Err(s3_error!(InvalidRequest, "Specifying both Canned ACLs and Header Grants is not allowed"))
        }
        Some(name) => CannedAcl::parse(name)
            .map(|c| Some(AclSpec::Canned(c)))
            .ok_or_else(|| s3_error!(InvalidArgument, "Invalid canned ACL: {name}")),
        None if any_grant => {
            let mut grants = Vec::new();
            for (value, permission) in headers {
                for grantee in parse_grantees(value.unwrap_or_default())? {
                    grants.push(Grant { grantee, permission });
                }
            }
            Ok(Some(AclSpec::Grants(grants)))
        }
        None => Ok(None),
    }
}

/// The ACL an object write asks for, resolved by the core for `ObjectMeta::acl`.
pub(crate) async fn for_object(
    engine: &Engine,
    p: &Principal,
    bucket: &str,
    key: &str,
    canned: Option<&ObjectCannedACL>,
    h: GrantHeaders<'_>,
) -> S3Result<Option<Acl>> {
    match requested(canned.map(|c| c.as_str()), h)? {
        Some(spec) => Ok(Some(engine.requested_acl(p, bucket, key, &spec).await.s3()?)),
        None => Ok(None),
    }
}

fn permission_of(p: &dto::Permission) -> S3Result<Permission> {
    Ok(match p.as_str() {
        dto::Permission::READ => Permission::Read,
        dto::Permission::WRITE => Permission::Write,
        dto::Permission::READ_ACP => Permission::ReadAcp,
        dto::Permission::WRITE_ACP => Permission::WriteAcp,
        dto::Permission::FULL_CONTROL => Permission::FullControl,
        other => return Err(s3_error!(MalformedACLError, "Unknown permission {other}")),
    })
}

/// An `AccessControlPolicy` document as grants.
fn from_policy(policy: &AccessControlPolicy) -> S3Result<AclSpec> {
    let mut grants = Vec::new();
    for g in policy.grants.iter().flatten() {
        let (Some(grantee), Some(perm)) = (&g.grantee, &g.permission) else {
            return Err(s3_error!(MalformedACLError, "A grant needs a grantee and a permission"));
        };
        let grantee = match grantee.type_.as_str() {
            Type::CANONICAL_USER => Grantee::Tenant(
                grantee
                    .id
                    .clone()
                    .ok_or_else(|| s3_error!(MalformedACLError, "A CanonicalUser grantee needs an ID"))?,
            ),
            Type::GROUP => group(grantee.uri.as_deref().unwrap_or_default())?,
            Type::AMAZON_CUSTOMER_BY_EMAIL => return Err(unresolvable_email()),
            _ => return Err(s3_error!(MalformedACLError, "Unknown grantee type")),
        };
        grants.push(Grant { grantee, permission: permission_of(perm)? });
    }
    Ok(AclSpec::Grants(grants))
}

/// A Put*Acl request's ACL: a document, a canned ACL or grant headers (exactly one).
fn put_spec(policy: Option<&AccessControlPolicy>, canned: Option<&str>, h: GrantHeaders<'_>) -> S3Result<AclSpec> {
    let from_headers = requested(canned, h)?;
    match (policy, from_headers) {
        (Some(_), Some(_)) => Err(s3_error!(UnexpectedContent, "This request does not support content")),
        (Some(policy), None) => from_policy(policy),
        (None, Some(spec)) => Ok(spec),
        (None, None) => Err(s3_error!(MissingSecurityHeader, "Your request is missing a required header: x-amz-acl")),
    }
}

fn owner(id: &str) -> Owner {
    Owner { display_name: Some(id.to_owned()), id: Some(id.to_owned()) }
}

fn render(acl: &Acl) -> (Owner, Grants) {
    let grants = acl
        .grants
        .iter()
        .map(|g| {
            let grantee = match &g.grantee {
                Grantee::Tenant(t) => dto::Grantee {
                    display_name: Some(t.clone()),
                    email_address: None,
                    id: Some(t.clone()),
                    type_: Type::from_static(Type::CANONICAL_USER),
                    uri: None,
                },
                group => dto::Grantee {
                    display_name: None,
                    email_address: None,
                    id: None,
                    type_: Type::from_static(Type::GROUP),
                    uri: Some(
                        match group {
                            Grantee::AllUsers => ALL_USERS,
                            Grantee::AuthenticatedUsers => AUTHENTICATED_USERS,
                            _ => LOG_DELIVERY,
                        }
                        .to_owned(),
                    ),
                },
            };
            let permission = match g.permission {
                Permission::Read => dto::Permission::READ,
                Permission::Write => dto::Permission::WRITE,
                Permission::ReadAcp => dto::Permission::READ_ACP,
                Permission::WriteAcp => dto::Permission::WRITE_ACP,
                Permission::FullControl => dto::Permission::FULL_CONTROL,
            };
            dto::Grant { grantee: Some(grantee), permission: Some(dto::Permission::from_static(permission)) }
        })
        .collect();
    (owner(&acl.owner), grants)
}

/// The S3 owner of a record: its ACL's owner, or the bucket's owner.
pub(crate) fn owner_of(acl: Option<&Acl>, bucket_owner: &str) -> Owner {
    owner(acl.map_or(bucket_owner, |a| a.owner.as_str()))
}

pub async fn get_bucket_acl(
    engine: &Engine,
    p: &Principal,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let acl = engine.bucket_acl(p, &req.input.bucket).await.s3()?;
    let (owner, grants) = render(&acl);
    Ok(S3Response::new(GetBucketAclOutput { grants: Some(grants), owner: Some(owner) }))
}

pub async fn put_bucket_acl(
    engine: &Engine,
    p: &Principal,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let i = &req.input;
    let spec =
        put_spec(i.access_control_policy.as_ref(), i.acl.as_ref().map(|a| a.as_str()), grant_headers!(bucket i))?;
    engine.put_bucket_acl(p, &i.bucket, &spec).await.s3()?;
    Ok(S3Response::new(PutBucketAclOutput {}))
}

pub async fn get_object_acl(
    engine: &Engine,
    p: &Principal,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let (_, acl) = engine.object_acl(p, &req.input.bucket, &req.input.key).await.s3()?;
    let (owner, grants) = render(&acl);
    Ok(S3Response::new(GetObjectAclOutput { grants: Some(grants), owner: Some(owner), ..Default::default() }))
}

pub async fn put_object_acl(
    engine: &Engine,
    p: &Principal,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let i = &req.input;
    let spec =
        put_spec(i.access_control_policy.as_ref(), i.acl.as_ref().map(|a| a.as_str()), grant_headers!(bucket i))?;
    engine.put_object_acl(p, &i.bucket, &i.key, &spec).await.s3()?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_headers_parse_as_s3_writes_them() {
        let spec = requested(
            None,
            GrantHeaders {
                read: Some(r#"id="alice", uri="http://acs.amazonaws.com/groups/global/AllUsers""#),
                write_acp: Some("id=bob"),
                ..Default::default()
            },
        )
        .unwrap()
        .unwrap();
        let AclSpec::Grants(g) = spec else { panic!("grants expected") };
        assert_eq!(g.len(), 3);
        assert_eq!(g[0], Grant { grantee: Grantee::Tenant("alice".into()), permission: Permission::Read });
        assert_eq!(g[1].grantee, Grantee::AllUsers);
        assert_eq!(g[2], Grant { grantee: Grantee::Tenant("bob".into()), permission: Permission::WriteAcp });
        assert!(requested(Some("private"), GrantHeaders { read: Some("id=a"), ..Default::default() }).is_err());
        assert!(requested(Some("nope"), GrantHeaders::default()).is_err());
        assert!(requested(None, GrantHeaders { read: Some("uri=http://x/"), ..Default::default() }).is_err());
        assert!(requested(None, GrantHeaders { read: Some("emailAddress=a@b"), ..Default::default() }).is_err());
        assert_eq!(requested(None, GrantHeaders::default()).unwrap(), None);
    }
}
