//! The rules the engine decides for every dialect: access for every key an operation names,
//! instant-upload claims within a credential's scope, metering after authorization, identity,
//! single-use and URL grants, and upload sessions (kinds, expiry, checked completion).

mod common;

use chuan_core::store::{CredentialKind, GrantKind, ObjectAccess, UploadKind};
use chuan_core::{
    AliasKind, Claim, Completion, CoreError, CredentialSpec, CredentialUpdate, ListQuery, NewUpload, Op, PartList,
    Possession, Principal, Quota, Redeemed, Scope, KEY_PAIRS,
};
use common::*;
use std::time::Duration;

fn denied<T: std::fmt::Debug>(r: Result<T, CoreError>) {
    assert!(matches!(r, Err(CoreError::AccessDenied)), "expected AccessDenied, got {r:?}");
}

fn scoped(ops: Option<Vec<Op>>, prefixes: &[&str]) -> Principal {
    alice().with_scope(Scope {
        ops,
        buckets: Some(vec!["bkt".into()]),
        prefixes: Some(prefixes.iter().map(|s| s.to_string()).collect()),
    })
}

async fn part(
    e: &chuan_core::Engine,
    p: &Principal,
    up: &chuan_core::store::UploadRecord,
    n: u32,
    data: &[u8],
) -> String {
    let staged = e.stage(&alice(), body(data, 1000)).await.unwrap();
    e.commit_part(p, up, n, staged).await.unwrap().etag
}

#[tokio::test]
async fn a_completion_target_is_admitted_like_a_write() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    put(&e, "secret/x.bin", b"precious").await;
    let token = scoped(None, &["pub/"]);
    let up = e.create_upload(&token, NewUpload::new(UploadKind::Ufile, "bkt", "pub/mp")).await.unwrap();
    let etag = part(&e, &token, &up, 1, b"evil").await;
    let mut c = Completion::new(PartList::Listed(vec![(1, etag.clone())]));
    c.key = Some("secret/x.bin".into());
    denied(e.complete_upload(&token, &up, c).await);
    assert_eq!(read_all(&e, "secret/x.bin").await, b"precious", "the target is untouched");
    // Inside the scope the same completion works, and the session is still there for it.
    let mut c = Completion::new(PartList::Listed(vec![(1, etag)]));
    c.key = Some("pub/renamed".into());
    e.complete_upload(&token, &up, c).await.unwrap();
    assert_eq!(read_all(&e, "pub/renamed").await, b"evil");
    // Rename and copy targets too.
    denied(e.move_entry(&token, "bkt", "pub/renamed", "secret/y", Default::default()).await);
    denied(e.copy_object(&token, "bkt", "pub/renamed", chuan_core::PutTarget::new("bkt", "secret/x.bin"), false).await);
    denied(e.copy_object(&token, "bkt", "secret/x.bin", chuan_core::PutTarget::new("bkt", "pub/stolen"), false).await);
    assert_eq!(read_all(&e, "secret/x.bin").await, b"precious");
}

#[tokio::test]
async fn sessions_and_parts_outside_a_scope_are_out_of_reach() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let theirs = e.create_upload(&alice(), NewUpload::new(UploadKind::Ufile, "bkt", "secret/mp")).await.unwrap();
    let ours = e.create_upload(&alice(), NewUpload::new(UploadKind::Ufile, "bkt", "pub/mp")).await.unwrap();
    let token = scoped(None, &["pub/"]);
    denied(e.list_uploads(&token, "bkt", "", None, 100).await);
    let listed = e.list_uploads(&token, "bkt", "pub/", None, 100).await.unwrap();
    assert_eq!(listed.iter().map(|u| u.key.as_str()).collect::<Vec<_>>(), ["pub/mp"]);
    denied(e.upload_by_id(&token, &theirs.id).await);
    denied(e.list_parts(&token, &theirs, 0, 10).await);
    denied(e.abort_upload(&token, &theirs).await);
    assert_eq!(e.upload_by_id(&token, &ours.id).await.unwrap().id, ours.id);
    // Another tenant's session is answered as if it did not exist.
    assert!(matches!(e.upload_by_id(&bob(), &ours.id).await, Err(CoreError::NoSuchUpload)));
}

#[tokio::test]
async fn instant_upload_claims_only_content_the_credential_could_read() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let data = pseudo_random(4000, 1);
    let d = chuan_core::hash::digest_all(&data);
    let held = put(&e, "secret/f", &data).await;
    // Tenant-wide: a hit; inside a prefix that holds it: a hit.
    assert_eq!(
        e.claimable_content(&alice(), "sha1", &d.sha1, 4000, &Possession::None).await.unwrap().map(|h| h.content_id()),
        Some(held.content_id)
    );
    let reader = scoped(Some(vec![Op::Read, Op::Write]), &["secret/"]);
    assert!(e.claimable_content(&reader, "sha1", &d.sha1, 4000, &Possession::None).await.unwrap().is_some());
    // A prefix-scoped token elsewhere, a write-only token, an IoT-like device: a miss, exactly
    // like unknown content (no oracle).
    for p in
        [scoped(None, &["pub/"]), scoped(Some(vec![Op::Write]), &["secret/"]), scoped(Some(vec![Op::Write]), &[""])]
    {
        assert_eq!(e.claimable_content(&p, "sha1", &d.sha1, 4000, &Possession::None).await.unwrap(), None);
        assert_eq!(e.claimable_content(&p, "sha1", &"0".repeat(40), 4000, &Possession::None).await.unwrap(), None);
        let c = e.issue_challenge(&p, "bkt", "pub/x", 4000, &d.sha256).await;
        if let Ok(c) = c {
            assert!(c.proof_required, "a challenge must not reveal the content to {p:?}");
        }
    }
    // With a proof of possession the bytes are the caller's anyway: granted.
    let proof = Possession::Bytes(vec![(10, data[10..18].to_vec())]);
    let token = scoped(None, &["pub/"]);
    let id = e.claimable_content(&token, "sha1", &d.sha1, 4000, &proof).await.unwrap().unwrap();
    e.instant_put(&token, chuan_core::PutTarget::new("bkt", "pub/f"), id, None).await.unwrap();
    denied(e.instant_put(&token, chuan_core::PutTarget::new("bkt", "secret/g"), id, None).await);
}

#[tokio::test]
async fn the_own_copy_is_found_whatever_other_tenants_hold() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let data = pseudo_random(3000, 2);
    let d = chuan_core::hash::digest_all(&data);
    for i in 0..20 {
        let t = format!("t{i}");
        e.create_tenant(&Principal::operator(), &t).await.unwrap();
        let p = Principal::of_tenant(&t, "K");
        e.create_bucket(&p, &format!("bkt{i}"), None).await.unwrap();
        let staged = e.stage(&alice(), body(&data, 999)).await.unwrap();
        e.commit_put(&p, chuan_core::PutTarget::new(&format!("bkt{i}"), "f"), staged).await.unwrap();
    }
    let mine = put(&e, "f", &data).await;
    for algo in [("sha1", &d.sha1), ("md5", &d.md5), ("sha256", &d.sha256)] {
        assert_eq!(
            e.claimable_content(&alice(), algo.0, algo.1, 3000, &Possession::None)
                .await
                .unwrap()
                .map(|h| h.content_id()),
            Some(mine.content_id)
        );
    }
}

#[tokio::test]
async fn anonymous_reads_follow_bucket_and_object_access() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let anon = Principal::anonymous();
    let mut rec = put(&e, "private", b"p").await;
    denied(e.head_object(&anon, "bkt", "private").await);
    denied(e.head_object(&anon, "bkt", "missing").await);
    // User metadata cannot open an object (whatever it says); the access flag can.
    let mut meta = rec.meta.clone();
    meta.user.insert("cos-authority".into(), "eWPrivateRPublic".into());
    rec = e.update_object_meta(&alice(), &rec, meta.clone()).await.unwrap();
    denied(e.head_object(&anon, "bkt", "private").await);
    meta.access = ObjectAccess::PublicRead;
    e.update_object_meta(&alice(), &rec, meta).await.unwrap();
    assert_eq!(read_as(&e, &anon, "bkt", "private").await.unwrap(), b"p");
    // A public bucket: objects inherit, unless private.
    e.set_bucket_public(&alice(), "bkt", true).await.unwrap();
    let closed = put(&e, "closed", b"c").await;
    assert_eq!(read_as(&e, &anon, "bkt", "closed").await.unwrap(), b"c");
    assert!(matches!(e.head_object(&anon, "bkt", "missing").await, Err(CoreError::NoSuchKey)));
    let mut m = closed.meta.clone();
    m.access = ObjectAccess::Private;
    e.update_object_meta(&alice(), &closed, m).await.unwrap();
    denied(e.head_object(&anon, "bkt", "closed").await);
    // Anonymous callers never write, delete or list.
    denied(e.delete_object(&anon, "bkt", "closed").await);
    denied(e.list_objects(&anon, "bkt", &ListQuery { max_keys: 10, ..Default::default() }).await);
    denied(e.put_empty(&anon, chuan_core::PutTarget::new("bkt", "x")).await);
    // A copy starts with the default access (as S3 drops ACLs on copy).
    e.set_bucket_public(&alice(), "bkt", false).await.unwrap();
    e.copy_object(&alice(), "bkt", "private", chuan_core::PutTarget::new("bkt", "copy"), false).await.unwrap();
    denied(e.head_object(&anon, "bkt", "copy").await);
}

#[tokio::test]
async fn only_admitted_requests_are_metered() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    put(&e, "k", b"0123456789").await;
    let quota = Quota { requests: Some(3), download_bytes: Some(1000), ..Default::default() };
    e.set_quota(&Principal::operator(), "alice", quota).await.unwrap();
    // 50 refused requests: anonymous on a private object, another tenant, an out-of-scope token.
    for _ in 0..50 {
        denied(e.head_object(&Principal::anonymous(), "bkt", "k").await);
        denied(e.head_object(&bob(), "bkt", "k").await);
        denied(e.head_object(&scoped(None, &["pub/"]), "bkt", "k").await);
    }
    // A request refused on its second key (a copy into a key outside the scope) charges nothing,
    // nor does a check made before a body is read.
    let reader =
        alice().with_scope(Scope { ops: None, buckets: None, prefixes: Some(vec!["k".into(), "pub/".into()]) });
    for _ in 0..10 {
        denied(e.copy_object(&reader, "bkt", "k", chuan_core::PutTarget::new("bkt", "secret/x"), false).await);
        e.check_access(&alice(), Op::Write, "bkt", "k2").await.unwrap();
    }
    // Anonymous reads of public data are free for the owner.
    e.set_bucket_public(&alice(), "bkt", true).await.unwrap();
    for _ in 0..50 {
        assert_eq!(read_as(&e, &Principal::anonymous(), "bkt", "k").await.unwrap().len(), 10);
    }
    let q = e.quota("alice").await.unwrap().unwrap();
    assert_eq!((q.used_requests, q.used_download_bytes), (1, 0), "only the owner's own set_bucket_public counted");
    // The owner's requests count, one per request.
    assert_eq!(read_all(&e, "k").await.len(), 10);
    assert_eq!(read_all(&e, "k").await.len(), 10);
    assert!(matches!(e.head_object(&alice(), "bkt", "k").await, Err(CoreError::QuotaExceeded(_))));
    e.flush_usage().await.unwrap();
    let now = chuan_core::store::now_ms();
    let day = e.usage_report(&alice(), now - 1000, now).await.unwrap();
    assert_eq!((day[0].requests, day[0].downloads), (4, 20), "the usage report shows the owner's requests alone");
}

#[tokio::test]
async fn identity_is_issued_by_whom_it_may_be() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    e.create_bucket(&bob(), "bobs", None).await.unwrap();
    let root = Principal::operator();
    // A tenant issues tokens over its own buckets only.
    let mut spec = CredentialSpec::new("alice", CredentialKind::UfileToken);
    spec.scope = Some(Scope { ops: Some(vec![Op::Read]), buckets: Some(vec!["bkt".into()]), prefixes: None });
    spec.access_key = Some("TOKEN_1".into());
    let token = e.issue_credential(&alice(), spec.clone()).await.unwrap();
    let mut theirs = spec.clone();
    theirs.scope = Some(Scope::bucket("bobs"));
    theirs.access_key = Some("TOKEN_2".into());
    denied(e.issue_credential(&alice(), theirs).await);
    // ... and nothing else: keys, devices, tokens of other tenants, tokens from tokens.
    denied(e.issue_credential(&alice(), CredentialSpec::new("alice", CredentialKind::TenantKey)).await);
    let mut other = spec.clone();
    other.tenant = "bob".into();
    denied(e.issue_credential(&alice(), other).await);
    let (_, token_p) = e.credential(&token.access_key, KEY_PAIRS).await.unwrap().unwrap();
    denied(e.issue_credential(&token_p, spec.clone()).await);
    // Scoped kinds need a scope; keys cannot have one.
    let mut device = CredentialSpec::new("alice", CredentialKind::IotDevice);
    assert!(matches!(e.issue_credential(&root, device.clone()).await, Err(CoreError::InvalidArgument(_))));
    device.scope = Some(Scope::bucket("bobs"));
    denied(e.issue_credential(&root, device).await);
    assert!(matches!(
        e.issue_credential(&root, CredentialSpec::new("nobody", CredentialKind::TenantKey)).await,
        Err(CoreError::NoSuchTenant)
    ));
    // Update, revoke; a revoked or expired credential stops at once.
    let update = CredentialUpdate { expires_ms: Some(chuan_core::store::now_ms() - 1), ..Default::default() };
    e.update_credential(&alice(), "TOKEN_1", update).await.unwrap();
    assert!(e.credential("TOKEN_1", KEY_PAIRS).await.unwrap().is_none());
    assert!(matches!(e.revoke_credential(&bob(), "TOKEN_1").await, Err(CoreError::NoSuchCredential)));
    e.revoke_credential(&alice(), "TOKEN_1").await.unwrap();
    assert!(e.managed_credential(&alice(), "TOKEN_1").await.unwrap().is_none());
    // Bearer tokens: only their hash is kept; they do not sign.
    let refresh = e.issue_bearer(&root, "alice", CredentialKind::AdriveRefresh, None).await.unwrap();
    assert!(e.credential(&refresh, &[CredentialKind::AdriveRefresh]).await.unwrap().is_none(), "bearers never sign");
    let (access, tenant) = e
        .exchange_bearer(CredentialKind::AdriveRefresh, &refresh, CredentialKind::AdriveAccess, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tenant, "alice");
    assert_eq!(e.bearer(CredentialKind::AdriveAccess, &access).await.unwrap().unwrap().tenant(), "alice");
    // Looked up (and so cached), then revoked: refused at once, key pairs and bought tokens alike.
    let key = e.issue_credential(&root, CredentialSpec::new("alice", CredentialKind::TenantKey)).await.unwrap();
    assert!(e.credential(&key.access_key, KEY_PAIRS).await.unwrap().is_some());
    e.revoke_credential(&root, &key.access_key).await.unwrap();
    assert!(
        e.credential(&key.access_key, KEY_PAIRS).await.unwrap().is_none(),
        "a revoked key is not served from a cache"
    );
    let refresh_id = chuan_core::Engine::bearer_credential_id(CredentialKind::AdriveRefresh, &refresh);
    let (bought, _) = e
        .exchange_bearer(CredentialKind::AdriveRefresh, &refresh, CredentialKind::AdriveAccess, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(e.bearer(CredentialKind::AdriveAccess, &bought).await.unwrap().is_some());
    e.revoke_credential(&root, &refresh_id).await.unwrap();
    assert!(e.bearer(CredentialKind::AdriveAccess, &bought).await.unwrap().is_none(), "dies with its refresh token");
    assert!(e.bearer(CredentialKind::AdriveAccess, &access).await.unwrap().is_none());
    assert!(e.bearer(CredentialKind::AdriveAccess, &refresh).await.unwrap().is_none(), "kinds do not mix");
    denied(e.issue_bearer(&alice(), "alice", CredentialKind::AdriveRefresh, None).await);
}

#[tokio::test]
async fn a_refresh_token_buys_a_burst_of_access_tokens_then_one_a_minute() {
    // An Aliyun Drive access token decides where its v1 proof window falls: buying tokens
    // without limit would let a caller pick the window it knows.
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let root = Principal::operator();
    let refresh = e.issue_bearer(&root, "alice", CredentialKind::AdriveRefresh, None).await.unwrap();
    let other = e.issue_bearer(&root, "alice", CredentialKind::AdriveRefresh, None).await.unwrap();
    let buy = |token: String| {
        let e = e.clone();
        async move {
            e.exchange_bearer(
                CredentialKind::AdriveRefresh,
                &token,
                CredentialKind::AdriveAccess,
                Duration::from_secs(60),
            )
            .await
        }
    };
    for i in 0..60 {
        assert!(buy(refresh.clone()).await.unwrap().is_some(), "exchange {i} of the burst refused");
    }
    assert!(matches!(buy(refresh.clone()).await, Err(CoreError::SlowDown)), "the 61st exchange was not refused");
    // The limit is the refresh token's: another one still buys.
    assert!(buy(other).await.unwrap().is_some());
}

#[tokio::test]
async fn upload_tokens_are_scoped_expiring_bearers_a_tenant_issues() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let scope = |prefix: &str| Scope {
        ops: Some(vec![Op::Write]),
        buckets: Some(vec!["bkt".into()]),
        prefixes: Some(vec![prefix.into()]),
    };
    let hour = Duration::from_secs(3600);
    let (token, id, expires) =
        e.issue_upload_token(&alice(), "alice", "page".into(), scope("in/"), hour).await.unwrap();
    assert_eq!(id, chuan_core::Engine::bearer_credential_id(CredentialKind::UploadToken, &token));
    assert!(expires > chuan_core::store::now_ms());
    // A bearer of alice held to its scope, and never a key pair.
    let p = e.bearer(CredentialKind::UploadToken, &token).await.unwrap().unwrap();
    assert_eq!(p.tenant(), "alice");
    assert!(e.credential(&token, KEY_PAIRS).await.unwrap().is_none(), "bearers never sign");
    assert!(e.credential(&id, KEY_PAIRS).await.unwrap().is_none(), "nor does their id");
    assert!(e.bearer(CredentialKind::AdriveAccess, &token).await.unwrap().is_none(), "kinds do not mix");
    let staged = e.stage(&p, body(b"ok", 100)).await.unwrap();
    e.commit_put(&p, target("bkt", "in/a"), staged).await.unwrap();
    let staged = e.stage(&p, body(b"no", 100)).await.unwrap();
    denied(e.commit_put(&p, target("bkt", "out/a"), staged).await);
    denied(read_as(&e, &p, "bkt", "in/a").await);
    // Who issues: the tenant's own unscoped key or the root; for the tenant's buckets only.
    denied(e.issue_upload_token(&bob(), "alice", String::new(), scope(""), hour).await);
    denied(e.issue_upload_token(&scoped(None, &["in/"]), "alice", String::new(), scope(""), hour).await);
    denied(e.issue_upload_token(&p, "alice", String::new(), scope(""), hour).await);
    denied(e.issue_upload_token(&bob(), "bob", String::new(), scope(""), hour).await);
    for ttl in [Duration::ZERO, chuan_core::UPLOAD_TOKEN_MAX_TTL + Duration::from_secs(1)] {
        assert!(matches!(
            e.issue_upload_token(&alice(), "alice", String::new(), scope(""), ttl).await,
            Err(CoreError::InvalidArgument(_))
        ));
    }
    let read_only = Scope { ops: Some(vec![Op::Read, Op::List]), ..scope("") };
    assert!(matches!(
        e.issue_upload_token(&alice(), "alice", String::new(), read_only, hour).await,
        Err(CoreError::InvalidArgument(_))
    ));
    let unbounded = Scope { ops: None, buckets: None, prefixes: None };
    assert!(matches!(
        e.issue_upload_token(&alice(), "alice", String::new(), unbounded, hour).await,
        Err(CoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        e.issue_credential(&alice(), CredentialSpec::new("alice", CredentialKind::UploadToken)).await,
        Err(CoreError::AccessDenied)
    ));
    // Listed for its tenant (by id), revoked by it: refused at once.
    let listed = e.list_credentials(&alice(), None, Some(CredentialKind::UploadToken)).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.access_key.as_str()).collect::<Vec<_>>(), [id.as_str()]);
    assert!(matches!(e.revoke_credential(&bob(), &id).await, Err(CoreError::NoSuchCredential)));
    assert!(matches!(
        e.update_credential(&alice(), &id, CredentialUpdate { scope: Some(scope("")), ..Default::default() }).await,
        Err(CoreError::InvalidArgument(_))
    ));
    e.revoke_credential(&alice(), &id).await.unwrap();
    assert!(e.bearer(CredentialKind::UploadToken, &token).await.unwrap().is_none());

    // Tokens a stored key issued die with it (a leaked key's tokens go when it is revoked).
    let key = e
        .issue_credential(&Principal::operator(), CredentialSpec::new("alice", CredentialKind::TenantKey))
        .await
        .unwrap();
    let (_, issuer) = e.credential(&key.access_key, KEY_PAIRS).await.unwrap().unwrap();
    let (token, id, _) = e.issue_upload_token(&issuer, "alice", "app".into(), scope(""), hour).await.unwrap();
    let (other, _, _) = e.issue_upload_token(&alice(), "alice", String::new(), scope(""), hour).await.unwrap();
    let listed = e.list_credentials(&alice(), None, Some(CredentialKind::UploadToken)).await.unwrap();
    let mine = listed.iter().find(|c| c.access_key == id).unwrap();
    assert_eq!((mine.label.as_str(), mine.issued_by.as_deref()), ("app", Some(key.access_key.as_str())));
    assert!(e.bearer(CredentialKind::UploadToken, &token).await.unwrap().is_some());
    e.revoke_credential(&Principal::operator(), &key.access_key).await.unwrap();
    assert!(e.bearer(CredentialKind::UploadToken, &token).await.unwrap().is_none(), "gone with its issuer");
    let left = e.list_credentials(&alice(), None, Some(CredentialKind::UploadToken)).await.unwrap();
    assert!(left.iter().all(|c| c.access_key != id), "deleted, not only refused");
    assert!(e.bearer(CredentialKind::UploadToken, &other).await.unwrap().is_some(), "others stay");
}

#[tokio::test]
async fn gc_deletes_bearer_tokens_an_hour_after_they_expire() {
    use chuan_store::{CredentialRecord, IdentityStore};
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let scope = Scope { ops: Some(vec![Op::Write]), buckets: Some(vec!["bkt".into()]), prefixes: None };
    let (_, fresh, _) =
        e.issue_upload_token(&alice(), "alice", String::new(), scope.clone(), Duration::from_secs(1)).await.unwrap();
    let (live, _, _) =
        e.issue_upload_token(&alice(), "alice", String::new(), scope, Duration::from_secs(3600)).await.unwrap();
    let key = e
        .issue_credential(&Principal::operator(), CredentialSpec::new("alice", CredentialKind::TenantKey))
        .await
        .unwrap();
    // Two bearers that expired two hours ago, and an expired key pair, written as an older
    // process would have left them.
    let store = chuan_store::SqlMetaStore::open_sqlite(&dir.path().join("meta.db")).unwrap();
    let two_hours_ago = chuan_core::store::now_ms() - 7_200_000;
    let old = |id: &str, kind| CredentialRecord {
        access_key: id.into(),
        secret: "s".into(),
        tenant: "alice".into(),
        kind,
        label: String::new(),
        created_ms: two_hours_ago - 1000,
        expires_ms: Some(two_hours_ago),
        scope: None,
    };
    store.put_credential(old("upload-token:00", CredentialKind::UploadToken)).await.unwrap();
    store.put_credential(old("adrive-access:00", CredentialKind::AdriveAccess)).await.unwrap();
    store.put_credential(old("TOKEN_old", CredentialKind::UfileToken)).await.unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(e.gc(Duration::from_secs(3600)).await.unwrap().credentials_purged, 2);
    let listed: Vec<String> = e
        .list_credentials(&Principal::operator(), Some("alice"), None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.access_key)
        .collect();
    assert!(!listed.iter().any(|k| k == "upload-token:00" || k == "adrive-access:00"), "{listed:?}");
    // Expired within the hour (a late request is told "expired", not "unknown"), live tokens
    // and key pairs stay.
    for kept in [fresh.as_str(), key.access_key.as_str(), "TOKEN_old"] {
        assert!(listed.iter().any(|k| k == kept), "{kept} in {listed:?}");
    }
    assert!(e.bearer(CredentialKind::UploadToken, &live).await.unwrap().is_some());
}

#[tokio::test]
async fn aliases_are_random_stable_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let a = e.tenant_alias(AliasKind::CosAppid, "alice").await.unwrap();
    let b = e.tenant_alias(AliasKind::CosAppid, "bob").await.unwrap();
    assert_ne!(a, b);
    assert_eq!(e.tenant_alias(AliasKind::CosAppid, "alice").await.unwrap(), a);
    assert_eq!(a.len(), 10);
    assert_eq!(e.tenant_of_alias(AliasKind::CosAppid, &a).await.unwrap().as_deref(), Some("alice"));
    assert_eq!(
        e.tenant_of_alias(AliasKind::CosAppid, "1250000000").await.unwrap().filter(|t| t != "alice" && t != "bob"),
        None
    );
    assert!(matches!(e.tenant_alias(AliasKind::CosAppid, "nobody").await, Err(CoreError::NoSuchTenant)));
    // Another engine gives the same tenant name another alias: it is not derived from the name.
    let dir2 = tempfile::tempdir().unwrap();
    let e2 = setup(dir2.path()).await;
    let mut differs = false;
    for _ in 0..3 {
        let d = tempfile::tempdir().unwrap();
        let e3 = setup(d.path()).await;
        differs |= e3.tenant_alias(AliasKind::CosAppid, "alice").await.unwrap() != a;
    }
    assert!(differs || e2.tenant_alias(AliasKind::CosAppid, "alice").await.unwrap() != a);
}

#[tokio::test]
async fn single_use_grants() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let id = e.issue_grant(GrantKind::IotUpload, &"payload", Duration::from_secs(60)).await.unwrap();
    assert!(
        matches!(e.peek_grant::<String>(GrantKind::IotUpload, &id).await.unwrap(), Redeemed::Granted(ref s) if s == "payload")
    );
    assert!(matches!(e.peek_grant::<String>(GrantKind::Challenge, &id).await.unwrap(), Redeemed::Unknown));
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let (e, id) = (e.clone(), id.clone());
            tokio::spawn(async move {
                matches!(e.redeem_grant::<String>(GrantKind::IotUpload, &id).await.unwrap(), Redeemed::Granted(_))
            })
        })
        .collect();
    let mut granted = 0;
    for r in racers {
        granted += r.await.unwrap() as u32;
    }
    assert_eq!(granted, 1);
    assert!(matches!(e.redeem_grant::<String>(GrantKind::IotUpload, &id).await.unwrap(), Redeemed::Used));
    let short = e.issue_grant(GrantKind::IotUpload, &1, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(e.redeem_grant::<i32>(GrantKind::IotUpload, &short).await.unwrap(), Redeemed::Expired));
    assert!(e.spend_once(GrantKind::CosOnce, "sig", Duration::from_secs(60)).await.unwrap());
    assert!(!e.spend_once(GrantKind::CosOnce, "sig", Duration::from_secs(60)).await.unwrap());
}

#[tokio::test]
async fn url_grants_stand_for_one_session_or_object() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    put(&e, "other", b"not yours").await;
    let up = e.create_upload(&alice(), NewUpload::new(UploadKind::Adrive, "bkt", "f")).await.unwrap();
    let q = e.sign_part_upload(&alice(), &up, 1, Duration::from_secs(60)).await.unwrap();
    let (p, got) = e.part_upload_grant(&up.id, 1, Some(&q)).await.unwrap();
    assert_eq!(got.id, up.id);
    part(&e, &p, &up, 1, b"data").await;
    denied(e.head_object(&p, "bkt", "other").await);
    assert!(matches!(e.part_upload_grant(&up.id, 2, Some(&q)).await, Err(CoreError::GrantInvalid(_))));
    assert!(matches!(
        e.part_upload_grant(&up.id, 1, Some(&q.replace("sig=", "sig=0"))).await,
        Err(CoreError::GrantInvalid(_))
    ));
    denied(e.sign_part_upload(&bob(), &up, 1, Duration::from_secs(60)).await);
    let rec = put(&e, "f2", b"download me").await;
    let q = e.sign_download(&alice(), "bkt", &rec.id, Duration::from_secs(60)).await.unwrap();
    let (p, got) = e.download_grant("bkt", &rec.id, Some(&q)).await.unwrap();
    assert_eq!(read_as(&e, &p, "bkt", &got.key).await.unwrap(), b"download me");
    denied(e.head_object(&p, "bkt", "other").await);
}

#[tokio::test]
async fn completion_checks_every_part_the_size_and_the_claim() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let up = e.create_upload(&alice(), NewUpload::new(UploadKind::Cos, "bkt", "f")).await.unwrap();
    part(&e, &alice(), &up, 1, b"aaaa").await;
    part(&e, &alice(), &up, 3, b"cc").await;
    let all = |count| Completion::new(PartList::All { count });
    let r = e.complete_upload(&alice(), &up, all(3)).await;
    assert!(matches!(r, Err(CoreError::MissingParts(ref m)) if m == &[2]), "{r:?}");
    part(&e, &alice(), &up, 2, b"bbb").await;
    let mut sized = all(3);
    sized.size = Some(10);
    assert!(matches!(
        e.complete_upload(&alice(), &up, sized).await,
        Err(CoreError::SizeMismatch { expected: 10, actual: 9 })
    ));
    // A wrong claim aborts the session: the bytes are not the file the client meant.
    let mut claimed = all(3);
    claimed.claims = vec![Claim::Md5(chuan_core::hash::digest_all(b"something else").md5)];
    assert!(matches!(e.complete_upload(&alice(), &up, claimed).await, Err(CoreError::BadDigest { algorithm: "MD5" })));
    assert!(matches!(e.upload(&alice(), "bkt", "f", &up.id).await, Err(CoreError::NoSuchUpload)));
    assert!(matches!(e.head_object(&alice(), "bkt", "f").await, Err(CoreError::NoSuchKey)));
    // A right one completes, with digests indexed at once (instant upload can hit it).
    let up = e.create_upload(&alice(), NewUpload::new(UploadKind::Cos, "bkt", "f")).await.unwrap();
    for (n, d) in [(1, &b"aaaa"[..]), (2, b"bbb"), (3, b"cc")] {
        part(&e, &alice(), &up, n, d).await;
    }
    let whole = chuan_core::hash::digest_all(b"aaaabbbcc");
    let mut claimed = all(3);
    claimed.claims = vec![Claim::Sha1(whole.sha1.clone()), Claim::Md5(whole.md5.to_uppercase())];
    let done = e.complete_upload(&alice(), &up, claimed).await.unwrap();
    assert_eq!(done.digests.unwrap(), whole);
    assert_eq!(read_all(&e, "f").await, b"aaaabbbcc");
    assert_eq!(
        e.claimable_content(&alice(), "sha1", &whole.sha1, 9, &Possession::None).await.unwrap().map(|h| h.content_id()),
        Some(done.object.content_id)
    );
    // Open sessions of a kind for a key, newest first.
    let a = e.create_upload(&alice(), NewUpload::new(UploadKind::Cos, "bkt", "g")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let b = e.create_upload(&alice(), NewUpload::new(UploadKind::Cos, "bkt", "g")).await.unwrap();
    e.create_upload(&alice(), NewUpload::new(UploadKind::Upyun, "bkt", "g")).await.unwrap();
    let open: Vec<String> =
        e.open_uploads(&alice(), "bkt", "g", UploadKind::Cos).await.unwrap().into_iter().map(|u| u.id).collect();
    assert_eq!(open, [b.id, a.id]);
}

#[tokio::test]
async fn ufile_sessions_take_whole_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    let up = e.create_upload(&alice(), NewUpload::new(UploadKind::Ufile, "bkt", "u")).await.unwrap();
    let t1 = part(&e, &alice(), &up, 1, &[1u8; 100]).await;
    let t2 = part(&e, &alice(), &up, 2, &[2u8; 10]).await;
    let r = e.complete_upload(&alice(), &up, Completion::new(PartList::Listed(vec![(1, t1), (2, t2)]))).await;
    assert!(matches!(r, Err(CoreError::InvalidPart(_))), "every part but the last is a 4 MiB block: {r:?}");
    let staged = e.stage(&alice(), body(&vec![0u8; (4 << 20) + 1], 1 << 20)).await.unwrap();
    assert!(matches!(e.commit_part(&alice(), &up, 3, staged).await, Err(CoreError::InvalidPart(_))));
}

/// Issue 11: every tree operation admits every key it names, so a prefix-scoped or
/// read-only credential cannot reach outside its scope through folders, copies, the trash,
/// search, sizes or ids; another tenant's drive is unknown to it.
#[tokio::test]
async fn tree_operations_stay_inside_a_scope() {
    use chuan_core::store::{FolderQuery, OnConflict, TreeOrder};
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    put(&e, "pub/a.txt", b"a").await;
    put(&e, "secret/s.txt", b"s").await;
    let secret_id = e.entry(&alice(), "bkt", "secret/").await.unwrap().id().to_owned();
    let token = scoped(None, &["pub/"]);
    // Moving a folder that holds out-of-scope keys, or into or out of the scope.
    denied(e.move_entry(&token, "bkt", "secret/", "pub/stolen/", OnConflict::Refuse).await);
    denied(e.move_entry(&token, "bkt", "pub/", "elsewhere/", OnConflict::Refuse).await);
    denied(e.copy_entry(&token, "bkt", "secret/", "pub/copy/", OnConflict::Refuse).await);
    denied(e.copy_entry(&token, "bkt", "pub/a.txt", "secret/a.txt", OnConflict::Replace).await);
    denied(e.move_entry(&token, "bkt", "pub/a.txt", "secret/s.txt", OnConflict::Replace).await);
    denied(e.delete_entry(&token, "bkt", "secret/", true).await);
    denied(e.trash_entry(&token, "bkt", "secret/s.txt").await);
    denied(e.create_folder(&token, "bkt", "outside/", OnConflict::Refuse).await);
    denied(e.entry_by_id(&token, "bkt", &secret_id).await);
    denied(e.folder_usage(&token, "bkt", "").await);
    let everywhere = chuan_core::store::SearchQuery { name: "s".into(), ..Default::default() };
    denied(e.search(&token, "bkt", &everywhere, None, 10).await);
    denied(e.list_folder(&token, "bkt", &FolderQuery::new("", TreeOrder::default()), None, 10).await);
    denied(e.list_trash(&token, "bkt", None, 10).await);
    // Inside the scope all of it works.
    e.copy_entry(&token, "bkt", "pub/a.txt", "pub/b.txt", OnConflict::Refuse).await.unwrap();
    let page = e.list_folder(&token, "bkt", &FolderQuery::new("pub/", TreeOrder::default()), None, 10).await.unwrap();
    assert_eq!(page.items.len(), 2);
    // A trashed out-of-scope entry can be neither restored nor purged by the token.
    let item = e.trash_entry(&alice(), "bkt", "secret/s.txt").await.unwrap();
    denied(e.restore(&token, "bkt", &item.id).await);
    denied(e.purge(&token, "bkt", &item.id).await);
    e.restore(&alice(), "bkt", &item.id).await.unwrap();
    assert_eq!(read_all(&e, "secret/s.txt").await, b"s");
    // A name auto-renamed out of the scope is refused like any other (team/a/ → team/a(1)/).
    let team = scoped(None, &["team/a/"]);
    put(&e, "team/a/f", b"f").await;
    let item = e.trash_entry(&team, "bkt", "team/a/").await.unwrap();
    e.create_folder(&team, "bkt", "team/a/", OnConflict::Refuse).await.unwrap();
    denied(e.restore(&team, "bkt", &item.id).await);
    denied(e.copy_entry(&team, "bkt", "team/a/", "team/a/", OnConflict::AutoRename).await);
    assert_eq!(e.restore(&alice(), "bkt", &item.id).await.unwrap().key(), "team/a(1)/");
    // Read-only: no tree writes at all.
    let reader = scoped(Some(vec![Op::Read, Op::List]), &["pub/"]);
    denied(e.move_entry(&reader, "bkt", "pub/a.txt", "pub/c.txt", OnConflict::Refuse).await);
    denied(e.update_attributes(&reader, "bkt", "pub/a.txt", Default::default()).await);
    // Another tenant: the bucket is not theirs.
    assert!(e.move_entry(&bob(), "bkt", "pub/a.txt", "pub/z.txt", OnConflict::Refuse).await.is_err());
    assert!(e.list_trash(&bob(), "bkt", None, 10).await.is_err());
    assert_eq!(read_all(&e, "pub/a.txt").await, b"a");
}

#[tokio::test]
async fn acls_decide_for_other_tenants_and_anonymous_callers_in_every_protocol() {
    use chuan_core::store::{Grant, Grantee, Permission};
    use chuan_core::{AclSpec, CannedAcl};
    let dir = tempfile::tempdir().unwrap();
    let e = setup(dir.path()).await;
    put(&e, "mine.txt", b"alice's").await;
    let anon = Principal::anonymous();
    // Default: the owner alone; a missing key is not told apart from a denied one.
    denied(read_as(&e, &bob(), "bkt", "mine.txt").await);
    denied(read_as(&e, &bob(), "bkt", "missing.txt").await);
    denied(e.list_objects(&bob(), "bkt", &ListQuery { max_keys: 10, ..Default::default() }).await);
    denied(e.bucket_acl(&bob(), "bkt").await);

    // A READ grant to bob: he lists (and learns of missing keys) but reads no object the
    // grant does not reach, and writes nothing.
    let read = AclSpec::Grants(vec![
        Grant { grantee: Grantee::Tenant("alice".into()), permission: Permission::FullControl },
        Grant { grantee: Grantee::Tenant("bob".into()), permission: Permission::Read },
    ]);
    e.put_bucket_acl(&alice(), "bkt", &read).await.unwrap();
    assert_eq!(
        e.list_objects(&bob(), "bkt", &ListQuery { max_keys: 10, ..Default::default() }).await.unwrap().objects.len(),
        1
    );
    assert!(matches!(read_as(&e, &bob(), "bkt", "missing.txt").await, Err(CoreError::NoSuchKey)));
    denied(read_as(&e, &bob(), "bkt", "mine.txt").await);
    let staged = e.stage(&bob(), body(b"bob's", 100)).await.unwrap();
    denied(e.commit_put(&bob(), target("bkt", "bobs.txt"), staged).await);
    denied(e.put_bucket_acl(&bob(), "bkt", &AclSpec::Canned(CannedAcl::PublicReadWrite)).await);

    // Grants to unknown tenants are refused and change nothing.
    let ghost = AclSpec::Grants(vec![Grant { grantee: Grantee::Tenant("ghost".into()), permission: Permission::Read }]);
    assert!(matches!(e.put_bucket_acl(&alice(), "bkt", &ghost).await, Err(CoreError::InvalidArgument(_))));
    assert_eq!(e.bucket_acl(&alice(), "bkt").await.unwrap().grants.len(), 2);

    // public-read-write: anyone writes; what bob writes is bob's, and alice reads it only
    // when bob grants it; deleting stays the bucket owner's right by her WRITE.
    e.put_bucket_acl(&alice(), "bkt", &AclSpec::Canned(CannedAcl::PublicReadWrite)).await.unwrap();
    let staged = e.stage(&bob(), body(b"bob's", 100)).await.unwrap();
    let rec = e.commit_put(&bob(), target("bkt", "bobs.txt"), staged).await.unwrap();
    assert_eq!(rec.meta.acl.as_ref().unwrap().owner, "bob");
    assert_eq!(read_as(&e, &bob(), "bkt", "bobs.txt").await.unwrap(), b"bob's");
    denied(read_as(&e, &alice(), "bkt", "bobs.txt").await);
    e.put_object_acl(&bob(), "bkt", "bobs.txt", &AclSpec::Canned(CannedAcl::BucketOwnerRead)).await.unwrap();
    assert_eq!(read_as(&e, &alice(), "bkt", "bobs.txt").await.unwrap(), b"bob's");
    denied(e.put_object_acl(&alice(), "bkt", "bobs.txt", &AclSpec::Canned(CannedAcl::Private)).await);
    let staged = e.stage(&anon, body(b"anon", 100)).await.unwrap();
    e.commit_put(&anon, target("bkt", "anon.txt"), staged).await.unwrap();
    assert_eq!(read_as(&e, &alice(), "bkt", "anon.txt").await.unwrap(), b"anon", "anonymous writes are the owner's");
    denied(read_as(&e, &anon, "bkt", "mine.txt").await);

    // What bob wrote into alice's bucket is not content alice holds: an instant-upload
    // claim by its digest alone misses for her (it would hand her bob's bytes).
    let d = chuan_core::hash::digest_all(b"bob's");
    assert!(e.own_content(&alice(), "sha256", &d.sha256, 5).await.unwrap().is_none());
    assert!(e.own_content(&bob(), "sha256", &d.sha256, 5).await.unwrap().is_none(), "not in bob's buckets either");

    // A scoped credential may not open the bucket (nor read its grants), nor publish what it
    // writes: it sets no ACL but `private`.
    let device = alice().with_scope(Scope {
        ops: Some(vec![Op::Write]),
        buckets: Some(vec!["bkt".into()]),
        prefixes: Some(vec!["dev1/".into()]),
    });
    denied(e.put_bucket_acl(&device, "bkt", &AclSpec::Canned(CannedAcl::PublicReadWrite)).await);
    denied(e.bucket_acl(&device, "bkt").await);
    denied(e.requested_acl(&device, "bkt", "dev1/x", &AclSpec::Canned(CannedAcl::PublicRead)).await);
    e.requested_acl(&device, "bkt", "dev1/x", &AclSpec::Canned(CannedAcl::Private)).await.unwrap();
    denied(e.requested_acl(&device, "bkt", "other/x", &AclSpec::Canned(CannedAcl::Private)).await);

    // A scoped credential of bob's keeps its scope whatever the ACL grants.
    let scoped_bob = bob().with_scope(Scope { ops: Some(vec![Op::Read]), buckets: None, prefixes: None });
    let staged = e.stage(&scoped_bob, body(b"x", 100)).await.unwrap();
    denied(e.commit_put(&scoped_bob, target("bkt", "scoped.txt"), staged).await);

    // An explicit ACL binds the owner too (S3): without WRITE she cannot write, but she
    // keeps her ACL rights and restores them.
    let nothing = AclSpec::Grants(vec![]);
    e.put_bucket_acl(&alice(), "bkt", &nothing).await.unwrap();
    let staged = e.stage(&alice(), body(b"y", 100)).await.unwrap();
    denied(e.commit_put(&alice(), target("bkt", "y.txt"), staged).await);
    e.put_bucket_acl(&alice(), "bkt", &AclSpec::Canned(CannedAcl::Private)).await.unwrap();
    put(&e, "y.txt", b"y").await;
    // Asking for an ACL tells a caller who may not write nothing, not even which tenants exist.
    denied(e.requested_acl(&Principal::anonymous(), "bkt", "k", &ghost).await);
    // In a public bucket anyone reads the objects, but only callers who may list it learn
    // that a key is missing: anonymous callers (as UFile's and COS's public buckets answer)
    // and listers get NoSuchKey, another tenant AccessDenied.
    e.set_bucket_public(&alice(), "bkt", true).await.unwrap();
    assert_eq!(read_as(&e, &bob(), "bkt", "y.txt").await.unwrap(), b"y");
    denied(read_as(&e, &bob(), "bkt", "missing.txt").await);
    assert!(matches!(read_as(&e, &Principal::anonymous(), "bkt", "missing.txt").await, Err(CoreError::NoSuchKey)));
    // Only the owner deletes the bucket, whatever else is granted.
    e.put_bucket_acl(&alice(), "bkt", &AclSpec::Canned(CannedAcl::PublicReadWrite)).await.unwrap();
    denied(e.delete_bucket(&bob(), "bkt").await);
    denied(e.put_bucket_cors(&bob(), "bkt", vec![]).await);
}
