//! The [`MetaStore`] contract: one test suite every implementation must pass.
//!
//! Each function here exercises one concern against a fresh, empty store and panics on the
//! first departure from the contract. An implementation runs them all with
//! [`meta_store_contract!`](crate::meta_store_contract), giving it an async expression that
//! opens a fresh store:
//!
//! ```ignore
//! chuan_store::meta_store_contract!(async {
//!     let dir = tempfile::tempdir().unwrap();
//!     let store = SqlMetaStore::open_sqlite(&dir.path().join("meta.db")).unwrap();
//!     (std::sync::Arc::new(store) as std::sync::Arc<dyn chuan_store::MetaStore>, dir)
//! });
//! ```
//!
//! The expression yields the store and a guard kept alive for the test (a temp dir, a
//! database handle). What is covered: identity (tenants, credentials, aliases), settings,
//! single-use grants (including concurrent redemption), buckets, objects (conditions, ids,
//! renames, reference counts, quotas, concurrent writers), listing order and paging, the hash
//! index (own content first, scoped lookups, pending contents), upload sessions (parts,
//! completion without copying, expiry, listings), usage, callbacks, maintenance and inline
//! blobs (bytes kept with their rows: written, read, shared, assembled, checked, freed).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::meta::*;
use crate::model::*;
use crate::now_ms;

/// Generates one `#[tokio::test]` per contract function for the store `make` opens.
#[macro_export]
macro_rules! meta_store_contract {
    ($make:expr) => {
        $crate::meta_store_contract!(@tests $make;
            identity, settings, grants, grants_are_single_use_under_concurrency, buckets, objects,
            tree_moves, tree_copies, tree_listing, tree_trash, tree_kinds, references, quotas, quotas_hold_under_concurrency,
            allowances, allowances_hold_under_concurrency, token_buckets, listing, hash_index,
            uploads, resumable_appends, upload_listing, usage_and_callbacks, callbacks_are_claimed_once_under_concurrency, maintenance, blob_reservations, inline_blobs);
    };
    (@tests $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (store, _guard) = $make.await;
                $crate::contract::$name(store).await;
            }
        )*
    };
}

type Store = Arc<dyn MetaStore>;

fn digests(seed: &str) -> Digests {
    let h = |n: &str| format!("{seed}-{n}");
    Digests {
        md5: h("md5"),
        sha1: h("sha1"),
        sha256: format!("{:0>64}", seed.bytes().map(|b| format!("{b:02x}")).collect::<String>()),
        crc32: 1,
        crc32c: 2,
        crc64nvme: 3,
        crc64xz: 4,
        sha1_head: String::new(),
    }
}

fn new_content(seed: &str, size: u64) -> NewContent {
    let d = digests(seed);
    NewContent {
        size,
        etag: d.md5.clone(),
        extents: vec![Extent::stored(d.sha256.clone(), size, d.clone())],
        digests: Some(d),
        ufile_etag: Some(format!("{seed}-ufile")),
    }
}

fn write(bucket: &str, key: &str, content: ContentSource) -> ObjectWrite {
    ObjectWrite {
        id: None,
        bucket: bucket.into(),
        key: key.into(),
        content,
        meta: ObjectMeta::default(),
        modified_ms: now_ms(),
        condition: None,
        tree: TreeRule::Flat,
    }
}

async fn bucket(s: &Store, name: &str, tenant: &str) {
    s.create_bucket(BucketRecord {
        name: name.into(),
        tenant: tenant.into(),
        public: false,
        region: "r".into(),
        created_ms: now_ms(),
        config: Default::default(),
    })
    .await
    .unwrap();
}

async fn put(s: &Store, bucket: &str, key: &str, seed: &str, size: u64) -> ObjectRecord {
    s.put_object(write(bucket, key, ContentSource::New(new_content(seed, size)))).await.unwrap()
}

async fn keys(s: &Store, bucket: &str, prefix: &str, start: ListStart<'_>, limit: usize) -> Vec<String> {
    s.list_objects(bucket, prefix, start, limit).await.unwrap().into_iter().map(|o| o.key).collect()
}

async fn blob_refs(s: &Store) -> std::collections::HashMap<String, u64> {
    let (blobs, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "check found problems: {problems:?}");
    blobs.into_iter().map(|b| (b.id, b.size)).collect()
}

fn upload(id: &str, bucket: &str, key: &str, tenant: &str, kind: UploadKind) -> UploadRecord {
    UploadRecord {
        id: id.into(),
        kind,
        bucket: bucket.into(),
        key: key.into(),
        tenant: tenant.into(),
        created_ms: now_ms(),
        meta: ObjectMeta::default(),
        state: "{}".into(),
        expires_ms: None,
    }
}

fn part(upload: &str, number: u32, seed: &str, size: u64) -> PartWrite {
    let d = digests(seed);
    PartWrite {
        upload_id: upload.into(),
        number,
        blob: d.sha256.clone(),
        size,
        etag: d.md5.clone(),
        digests: d,
        data: None,
    }
}

fn complete(upload: &str, parts: &[(u32, &str)]) -> CompleteUpload {
    CompleteUpload {
        upload_id: upload.into(),
        parts: parts.iter().map(|(n, seed)| (*n, digests(seed).md5)).collect(),
        etag: "multi-etag".into(),
        modified_ms: now_ms(),
        object_id: None,
        digests: None,
        ufile_etag: None,
        key: None,
        condition: None,
        tree: TreeRule::Flat,
        keep_session: None,
    }
}

/// Tenants, credentials (typed kinds, filters, replacement, deletion) and aliases.
pub async fn identity(s: Store) {
    s.create_tenant(TenantRecord { name: "alice".into(), created_ms: 1 }).await.unwrap();
    assert!(matches!(
        s.create_tenant(TenantRecord { name: "alice".into(), created_ms: 2 }).await,
        Err(StoreError::Exists)
    ));
    s.create_tenant(TenantRecord { name: "bob".into(), created_ms: 3 }).await.unwrap();
    assert_eq!(s.get_tenant("alice").await.unwrap().unwrap().created_ms, 1);
    assert!(s.get_tenant("carol").await.unwrap().is_none());
    let names: Vec<String> = s.list_tenants().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["alice", "bob"]);

    let cred = |ak: &str, tenant: &str, kind: CredentialKind| CredentialRecord {
        access_key: ak.into(),
        secret: format!("secret-{ak}"),
        tenant: tenant.into(),
        kind,
        label: String::new(),
        created_ms: 10,
        expires_ms: None,
        scope: None,
    };
    s.put_credential(cred("AK1", "alice", CredentialKind::TenantKey)).await.unwrap();
    s.put_credential(cred("TOKEN_1", "alice", CredentialKind::UfileToken)).await.unwrap();
    s.put_credential(cred("AK2", "bob", CredentialKind::TenantKey)).await.unwrap();
    let mut scoped = cred("iot:P/D", "bob", CredentialKind::IotDevice);
    scoped.scope = Some(r#"{"ops":["write"]}"#.into());
    scoped.expires_ms = Some(99);
    scoped.label = "a device".into();
    s.put_credential(scoped.clone()).await.unwrap();
    assert_eq!(s.get_credential("iot:P/D").await.unwrap().unwrap(), scoped);
    assert!(s.get_credential("nope").await.unwrap().is_none());

    let list = |tenant: Option<&str>, kind: Option<CredentialKind>| {
        let s = s.clone();
        let filter = CredentialFilter { tenant: tenant.map(str::to_owned), kind };
        async move { s.list_credentials(filter).await.unwrap().into_iter().map(|c| c.access_key).collect::<Vec<_>>() }
    };
    assert_eq!(list(None, None).await, ["AK1", "AK2", "TOKEN_1", "iot:P/D"]);
    assert_eq!(list(Some("alice"), None).await, ["AK1", "TOKEN_1"]);
    assert_eq!(list(None, Some(CredentialKind::TenantKey)).await, ["AK1", "AK2"]);
    assert_eq!(list(Some("bob"), Some(CredentialKind::IotDevice)).await, ["iot:P/D"]);

    // Replacing keeps one row with the new values.
    let mut replaced = cred("AK1", "alice", CredentialKind::TenantKey);
    replaced.secret = "rotated".into();
    s.put_credential(replaced).await.unwrap();
    assert_eq!(s.get_credential("AK1").await.unwrap().unwrap().secret, "rotated");
    assert!(s.delete_credential("AK1").await.unwrap());
    assert!(!s.delete_credential("AK1").await.unwrap());
    assert!(s.get_credential("AK1").await.unwrap().is_none());

    // Aliases: one per tenant and kind, unique per kind, never changed.
    assert_eq!(s.claim_alias("appid", "100", "alice").await.unwrap(), "100");
    assert_eq!(s.claim_alias("appid", "200", "alice").await.unwrap(), "100", "a tenant keeps its alias");
    assert!(matches!(s.claim_alias("appid", "100", "bob").await, Err(StoreError::Exists)));
    assert_eq!(s.claim_alias("appid", "300", "bob").await.unwrap(), "300");
    assert_eq!(s.claim_alias("other", "100", "bob").await.unwrap(), "100", "kinds are separate name spaces");
    assert_eq!(s.alias_of("appid", "alice").await.unwrap().as_deref(), Some("100"));
    assert_eq!(s.alias_of("appid", "carol").await.unwrap(), None);
    assert_eq!(s.resolve_alias("appid", "300").await.unwrap().as_deref(), Some("bob"));
    assert_eq!(s.resolve_alias("appid", "999").await.unwrap(), None);

    // Purging expired credentials: only the kinds named, only those expired before the cutoff.
    let mut gone = cred("upload-token:1", "alice", CredentialKind::UploadToken);
    gone.expires_ms = Some(50);
    let mut kept = cred("upload-token:2", "alice", CredentialKind::UploadToken);
    kept.expires_ms = Some(150);
    s.put_credential(gone).await.unwrap();
    s.put_credential(kept).await.unwrap();
    s.put_credential(cred("upload-token:3", "alice", CredentialKind::UploadToken)).await.unwrap();
    let purged = s.purge_expired_credentials(&[CredentialKind::UploadToken, CredentialKind::AdriveAccess], 100).await;
    assert_eq!(purged.unwrap(), 1, "iot:P/D expired at 99 but is not a kind named");
    assert!(s.get_credential("upload-token:1").await.unwrap().is_none());
    for id in ["upload-token:2", "upload-token:3", "iot:P/D"] {
        assert!(s.get_credential(id).await.unwrap().is_some(), "{id}");
    }
}

/// Settings: first value wins for `setting_or_init`, `put_settings` replaces.
pub async fn settings(s: Store) {
    assert_eq!(s.get_setting("k").await.unwrap(), None);
    assert_eq!(s.setting_or_init("k", "first".into()).await.unwrap(), "first");
    assert_eq!(s.setting_or_init("k", "second".into()).await.unwrap(), "first");
    s.put_settings(vec![("k".into(), "third".into()), ("j".into(), "x".into())]).await.unwrap();
    assert_eq!(s.get_setting("k").await.unwrap().as_deref(), Some("third"));
    assert_eq!(s.get_setting("j").await.unwrap().as_deref(), Some("x"));
}

/// Grants: unique per kind and id, redeemed once, purged after expiry.
pub async fn grants(s: Store) {
    let g = |kind, id: &str, expires_ms| GrantRecord {
        kind,
        id: id.into(),
        payload: format!("payload of {id}"),
        expires_ms,
        used: false,
    };
    s.create_grant(g(GrantKind::IotUpload, "t1", now_ms() + 60_000)).await.unwrap();
    assert!(matches!(s.create_grant(g(GrantKind::IotUpload, "t1", 0)).await, Err(StoreError::Exists)));
    s.create_grant(g(GrantKind::Challenge, "t1", now_ms() + 60_000)).await.unwrap();
    let got = s.get_grant(GrantKind::IotUpload, "t1").await.unwrap().unwrap();
    assert_eq!((got.payload.as_str(), got.used), ("payload of t1", false));
    assert!(s.get_grant(GrantKind::CosOnce, "t1").await.unwrap().is_none());

    let first = s.redeem_grant(GrantKind::IotUpload, "t1").await.unwrap().unwrap();
    assert!(!first.used, "the first redemption sees an unused grant");
    let second = s.redeem_grant(GrantKind::IotUpload, "t1").await.unwrap().unwrap();
    assert!(second.used, "the second sees it used");
    assert!(!s.get_grant(GrantKind::Challenge, "t1").await.unwrap().unwrap().used, "kinds are separate");
    assert!(s.redeem_grant(GrantKind::IotUpload, "unknown").await.unwrap().is_none());

    // A grant created already used (a nonce spent on first sight) refuses a second creation.
    let mut spent = g(GrantKind::CosOnce, "sig", now_ms() + 60_000);
    spent.used = true;
    s.create_grant(spent.clone()).await.unwrap();
    assert!(matches!(s.create_grant(spent).await, Err(StoreError::Exists)));

    s.create_grant(g(GrantKind::CosOnce, "old", now_ms() - 10_000)).await.unwrap();
    assert_eq!(s.purge_grants(now_ms() - 5_000).await.unwrap(), 1);
    assert!(s.get_grant(GrantKind::CosOnce, "old").await.unwrap().is_none());
    assert!(s.get_grant(GrantKind::CosOnce, "sig").await.unwrap().is_some());
}

/// Of many concurrent redemptions of one grant, exactly one is the first.
pub async fn grants_are_single_use_under_concurrency(s: Store) {
    let g = GrantRecord {
        kind: GrantKind::Challenge,
        id: "race".into(),
        payload: String::new(),
        expires_ms: now_ms() + 60_000,
        used: false,
    };
    s.create_grant(g).await.unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.redeem_grant(GrantKind::Challenge, "race").await.unwrap().unwrap().used })
        })
        .collect();
    let mut firsts = 0;
    for t in tasks {
        if !t.await.unwrap() {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1, "exactly one redemption may find the grant unused");

    // Creating the same nonce concurrently: exactly one creation succeeds.
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let g = GrantRecord {
                    kind: GrantKind::CosOnce,
                    id: "nonce".into(),
                    payload: String::new(),
                    expires_ms: now_ms() + 60_000,
                    used: true,
                };
                s.create_grant(g).await.is_ok()
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        created += t.await.unwrap() as u32;
    }
    assert_eq!(created, 1);
}

/// Buckets: global names, visibility, per-tenant listing, deletion only when empty.
pub async fn buckets(s: Store) {
    bucket(&s, "b-one", "alice").await;
    bucket(&s, "a-two", "alice").await;
    bucket(&s, "c-three", "bob").await;
    let dup = BucketRecord {
        name: "b-one".into(),
        tenant: "bob".into(),
        public: false,
        region: "r".into(),
        created_ms: 0,
        config: Default::default(),
    };
    assert!(matches!(s.create_bucket(dup).await, Err(StoreError::Exists)));
    assert_eq!(s.get_bucket("b-one").await.unwrap().unwrap().tenant, "alice");
    assert!(s.get_bucket("nope").await.unwrap().is_none());
    let names = |v: Vec<BucketRecord>| v.into_iter().map(|b| b.name).collect::<Vec<_>>();
    assert_eq!(names(s.list_buckets(Some("alice")).await.unwrap()), ["a-two", "b-one"]);
    assert_eq!(names(s.list_buckets(None).await.unwrap()), ["a-two", "b-one", "c-three"]);

    s.set_bucket_public("b-one", true).await.unwrap();
    assert!(s.get_bucket("b-one").await.unwrap().unwrap().public);
    assert!(matches!(s.set_bucket_public("nope", true).await, Err(StoreError::NotFound)));

    put(&s, "b-one", "k", "x", 10).await;
    assert!(matches!(s.delete_bucket("b-one").await, Err(StoreError::NotEmpty)));
    s.delete_object("b-one", "k").await.unwrap();
    let mut config = BucketConfig::default();
    config.acl = Some(Acl {
        owner: "bob".into(),
        grants: vec![Grant { grantee: Grantee::AllUsers, permission: Permission::Read }],
    });
    config.cors = Some(vec![CorsRule {
        allowed_origins: vec!["*".into()],
        allowed_methods: vec!["GET".into()],
        ..Default::default()
    }]);
    s.set_bucket_config("b-one", &config).await.unwrap();
    assert_eq!(s.get_bucket("b-one").await.unwrap().unwrap().config, config);
    assert!(matches!(s.set_bucket_config("nope", &config).await, Err(StoreError::NotFound)));

    // Open sessions do not keep a bucket: they are aborted with it (S3's DeleteBucket).
    s.create_upload(upload("u1", "b-one", "k", "alice", UploadKind::S3)).await.unwrap();
    s.delete_bucket("b-one").await.unwrap();
    assert!(s.get_upload("u1").await.unwrap().is_none(), "the session went with its bucket");
    assert!(matches!(s.delete_bucket("b-one").await, Err(StoreError::NotFound)));
}

/// Objects: write conditions, stable ids across overwrite, lookups by id, deletes.
pub async fn objects(s: Store) {
    bucket(&s, "bkt", "alice").await;
    let mut w = write("bkt", "k", ContentSource::New(new_content("a", 5)));
    w.meta.user.insert("color".into(), "blue".into());
    w.meta.attrs.insert("cos-biz-attr".into(), "x".into());
    w.meta.access = ObjectAccess::PublicRead;
    let a = s.put_object(w).await.unwrap();
    assert_eq!(a.id.len(), 40, "object ids are 40 hex digits");
    let got = s.get_object("bkt", "k").await.unwrap().unwrap();
    assert_eq!(got, a, "an object reads back as written, metadata, attributes and access included");
    assert_eq!(s.get_object_by_id("bkt", &a.id).await.unwrap().unwrap().key, "k");
    assert!(s.get_object_by_id("other", &a.id).await.unwrap().is_none());

    // Overwrite keeps the id; a given id only names new objects.
    let mut w = write("bkt", "k", ContentSource::New(new_content("b", 7)));
    w.id = Some("f".repeat(40));
    let b = s.put_object(w).await.unwrap();
    assert_eq!((b.id.as_str(), b.size, b.etag.as_str()), (a.id.as_str(), 7, "b-md5"));
    let mut w = write("bkt", "n", ContentSource::New(new_content("c", 1)));
    w.id = Some("e".repeat(40));
    assert_eq!(s.put_object(w).await.unwrap().id, "e".repeat(40));

    // Conditions are checked in the writing transaction.
    let mut w = write("bkt", "k", ContentSource::New(new_content("c", 1)));
    w.condition = Some(WriteCondition::Absent);
    assert!(matches!(s.put_object(w).await, Err(StoreError::Conflict(_))));
    let mut w = write("bkt", "k", ContentSource::New(new_content("c", 1)));
    w.condition = Some(WriteCondition::EtagIs("stale".into()));
    assert!(matches!(s.put_object(w).await, Err(StoreError::Conflict(_))));
    let mut w = write("bkt", "k", ContentSource::New(new_content("c", 1)));
    w.condition = Some(WriteCondition::EtagIs("b-md5".into()));
    s.put_object(w).await.unwrap();
    let mut w = write("bkt", "fresh", ContentSource::New(new_content("c", 1)));
    w.condition = Some(WriteCondition::EtagIs("*".into()));
    assert!(matches!(s.put_object(w).await, Err(StoreError::Conflict(_))), "If-Match: * needs an object");
    let mut w = write("bkt", "fresh", ContentSource::New(new_content("c", 1)));
    w.condition = Some(WriteCondition::Absent);
    s.put_object(w).await.unwrap();

    // Sharing content that was freed meanwhile is refused.
    assert!(matches!(
        s.put_object(write("bkt", "z", ContentSource::Existing(i64::MAX))).await,
        Err(StoreError::Conflict(_))
    ));

    let gone = s.delete_object("bkt", "k").await.unwrap().unwrap();
    assert_eq!(gone.etag, "c-md5");
    assert!(s.delete_object("bkt", "k").await.unwrap().is_none());
    assert!(s.get_object("bkt", "k").await.unwrap().is_none());
}

fn mv(from: &str, to: &str, on_conflict: OnConflict) -> TreeMove {
    TreeMove { bucket: "bkt".into(), from: from.into(), to: to.into(), on_conflict, flat: false, now_ms: now_ms() }
}

async fn entries(s: &Store, folder: &str, order: TreeOrder) -> Vec<String> {
    s.list_folder("bkt", &FolderQuery::new(folder, order), None, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.key().to_owned())
        .collect()
}

async fn folder_id(s: &Store, key: &str) -> String {
    s.get_entry("bkt", key).await.unwrap().unwrap_or_else(|| panic!("no folder {key}")).id().to_owned()
}

/// Moves of files and whole folders: ids, timestamps and attributes kept, conflicts refused,
/// replaced or auto-renamed, folders implied by keys appearing and vanishing with them.
pub async fn tree_moves(s: Store) {
    bucket(&s, "bkt", "alice").await;
    let a = put(&s, "bkt", "a.txt", "a", 1).await;
    put(&s, "bkt", "b.txt", "b", 2).await;
    let refuse = OnConflict::Refuse;
    assert!(matches!(s.move_entry(mv("a.txt", "b.txt", refuse)).await, Err(StoreError::Exists)));
    assert!(matches!(s.move_entry(mv("nope", "c.txt", refuse)).await, Err(StoreError::NotFound)));
    let moved = s.move_entry(mv("a.txt", "c.txt", refuse)).await.unwrap();
    assert_eq!((moved.id(), moved.key()), (a.id.as_str(), "c.txt"));
    let TreeEntry::File(f) = &moved else { panic!() };
    assert_eq!(f.created_ms, a.created_ms);
    assert!(s.get_object("bkt", "a.txt").await.unwrap().is_none());

    // Replace releases the destination's content in the same transaction.
    let r = s.move_entry(mv("c.txt", "b.txt", OnConflict::Replace)).await.unwrap();
    assert_eq!((r.id(), r.size()), (a.id.as_str(), 1));
    assert_eq!(s.stats().await.unwrap().objects, 1);
    assert_eq!(s.bucket_bytes("bkt").await.unwrap(), 1);
    blob_refs(&s).await;
    put(&s, "bkt", "c.txt", "c", 3).await;
    let renamed = s.move_entry(mv("c.txt", "b.txt", OnConflict::AutoRename)).await.unwrap();
    assert_eq!(renamed.key(), "b(1).txt");

    // A folder moves whole (implied folders included) in one step, keeping its ids.
    for k in ["d/", "d/1", "d/sub/2", "d/sub/deeper/3", "e/x"] {
        put(&s, "bkt", k, k, 1).await;
    }
    let (d, sub) = (folder_id(&s, "d/").await, folder_id(&s, "d/sub/").await);
    assert!(matches!(s.move_entry(mv("d/", "e/", refuse)).await, Err(StoreError::Exists)));
    assert!(matches!(s.move_entry(mv("d/", "d/sub/x/", refuse)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.move_entry(mv("d/sub/", "d/", refuse)).await, Err(StoreError::Exists)));
    let f = s.move_entry(mv("d/", "f/g/", refuse)).await.unwrap();
    assert_eq!((f.id(), f.key()), (d.as_str(), "f/g/"));
    assert_eq!(folder_id(&s, "f/g/sub/").await, sub);
    assert_eq!(
        keys(&s, "bkt", "", ListStart::Beginning, 100).await,
        ["b(1).txt", "b.txt", "e/x", "f/g/", "f/g/1", "f/g/sub/2", "f/g/sub/deeper/3"]
    );
    assert!(s.get_entry("bkt", "d/").await.unwrap().is_none());
    assert_eq!(entries(&s, "f/", TreeOrder::default()).await, ["f/g/"]);
    assert_eq!(entries(&s, "f/g/sub/", TreeOrder::default()).await, ["f/g/sub/2", "f/g/sub/deeper/"]);
    // Replacing a folder removes everything under the destination.
    let e = s.move_entry(mv("f/g/", "e/", OnConflict::Replace)).await.unwrap();
    assert_eq!(e.id(), d);
    assert!(s.get_object("bkt", "e/x").await.unwrap().is_none());
    assert!(s.get_entry("bkt", "f/").await.unwrap().is_none(), "the implied folder f/ held only g/");
    // An implied folder is one too.
    let moved = s.move_entry(mv("e/sub/", "top/", refuse)).await.unwrap();
    assert_eq!(moved.id(), sub);
    assert_eq!(entries(&s, "top/", TreeOrder::default()).await, ["top/2", "top/deeper/"]);
    // A move within an implied folder, or a replace inside it, keeps the folder (and its id).
    let top = folder_id(&s, "top/").await;
    s.move_entry(mv("top/2", "top/deeper/2", refuse)).await.unwrap();
    s.copy_entry(mv("top/deeper/2", "top/deeper/3", OnConflict::Replace)).await.unwrap();
    assert_eq!(folder_id(&s, "top/").await, top);
    // Onto the folder it is in: refused as taken, or under another name; never replacing it.
    put(&s, "bkt", "x/x/f", "xf", 1).await;
    assert!(matches!(s.move_entry(mv("x/x/", "x/", refuse)).await, Err(StoreError::Exists)));
    assert!(matches!(s.move_entry(mv("x/x/", "x/", OnConflict::Replace)).await, Err(StoreError::Conflict(_))));
    assert!(matches!(s.copy_entry(mv("x/x/", "x/", OnConflict::Replace)).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.move_entry(mv("x/x/", "x/", OnConflict::AutoRename)).await.unwrap().key(), "x(1)/");
    // A copy onto itself, replacing, changes nothing.
    let same = s.copy_entry(mv("x(1)/f", "x(1)/f", OnConflict::Replace)).await.unwrap();
    assert_eq!(same.id(), s.get_object("bkt", "x(1)/f").await.unwrap().unwrap().id);
    // UFile's flat rename moves one key, whatever it looks like.
    put(&s, "bkt", "flat/", "fm", 0).await;
    put(&s, "bkt", "flat/in", "fi", 1).await;
    let flat = TreeMove { flat: true, ..mv("flat/", "plain", refuse) };
    s.move_entry(flat).await.unwrap();
    assert!(s.get_object("bkt", "plain").await.unwrap().is_some());
    assert!(s.get_object("bkt", "flat/in").await.unwrap().is_some(), "only the one key moved");
    let (_, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// Copies share content (no bytes), give new ids, and count toward the quota.
pub async fn tree_copies(s: Store) {
    bucket(&s, "bkt", "alice").await;
    for k in ["src/", "src/1", "src/a/2", "src/a/b/3"] {
        put(&s, "bkt", k, k, 10).await;
    }
    let before = s.stats().await.unwrap();
    let c = s.copy_entry(mv("src/", "dst/", OnConflict::Refuse)).await.unwrap();
    assert_ne!(c.id(), folder_id(&s, "src/").await);
    assert_eq!(keys(&s, "bkt", "dst/", ListStart::Beginning, 100).await, ["dst/", "dst/1", "dst/a/2", "dst/a/b/3"]);
    let (o1, c1) =
        (s.get_object("bkt", "src/1").await.unwrap().unwrap(), s.get_object("bkt", "dst/1").await.unwrap().unwrap());
    assert_eq!(o1.content_id, c1.content_id);
    assert_ne!(o1.id, c1.id);
    assert_eq!(s.stats().await.unwrap().contents, before.contents, "no content was made");
    assert_eq!(s.bucket_bytes("bkt").await.unwrap(), 80);
    let again = s.copy_entry(mv("src/", "dst/", OnConflict::AutoRename)).await.unwrap();
    assert_eq!(again.key(), "dst(1)/");
    s.set_quota("alice", storage(130)).await.unwrap();
    assert!(matches!(s.copy_entry(mv("src/", "q/", OnConflict::Refuse)).await, Err(StoreError::QuotaExceeded)));
    assert!(s.get_entry("bkt", "q/").await.unwrap().is_none(), "a refused copy leaves nothing");
    s.set_quota("alice", QuotaLimits::default()).await.unwrap();
    assert!(matches!(s.copy_entry(mv("src/", "src/a/x/", OnConflict::Refuse)).await, Err(StoreError::Conflict(_))));
    let usage = s.folder_usage("bkt", "src/").await.unwrap();
    assert_eq!(usage, FolderUsage { bytes: 30, files: 3, folders: 2 });
    assert_eq!(s.delete_entry("bkt", "dst/", true).await.unwrap().files, 3);
    assert!(matches!(s.delete_entry("bkt", "src/", false).await, Err(StoreError::NotEmpty)));
    let (_, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// Folder listings in every order, paged by cursor, stable while entries are added.
pub async fn tree_listing(s: Store) {
    bucket(&s, "bkt", "alice").await;
    let mut w = write("bkt", "d/big", ContentSource::New(new_content("big", 300)));
    w.modified_ms = 1_000;
    s.put_object(w).await.unwrap();
    let mut w = write("bkt", "d/small", ContentSource::New(new_content("small", 100)));
    w.modified_ms = 3_000;
    s.put_object(w).await.unwrap();
    let mut w = write("bkt", "d/mid", ContentSource::New(new_content("mid", 200)));
    w.modified_ms = 2_000;
    s.put_object(w).await.unwrap();
    let mut w = write("bkt", "d/sub/deep", ContentSource::New(new_content("deep", 1)));
    w.modified_ms = 500;
    s.put_object(w).await.unwrap();
    let order = |by, descending| TreeOrder { by, descending };
    assert_eq!(entries(&s, "d/", order(OrderBy::Name, false)).await, ["d/big", "d/mid", "d/small", "d/sub/"]);
    assert_eq!(entries(&s, "d/", order(OrderBy::Name, true)).await, ["d/sub/", "d/small", "d/mid", "d/big"]);
    assert_eq!(entries(&s, "d/", order(OrderBy::Size, true)).await, ["d/big", "d/mid", "d/small", "d/sub/"]);
    assert_eq!(entries(&s, "d/", order(OrderBy::Modified, false)).await, ["d/sub/", "d/big", "d/mid", "d/small"]);
    assert_eq!(entries(&s, "d/", order(OrderBy::Created, true)).await, ["d/small", "d/mid", "d/big", "d/sub/"]);
    assert_eq!(entries(&s, "", order(OrderBy::Name, false)).await, ["d/"]);
    let q = |kinds| FolderQuery { kinds, ..FolderQuery::new("d/", order(OrderBy::Size, false)) };
    let files: Vec<String> = s
        .list_folder("bkt", &q(EntryKinds::Files), None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.key().to_owned())
        .collect();
    assert_eq!(files, ["d/small", "d/mid", "d/big"]);
    let folders = s.list_folder("bkt", &q(EntryKinds::Folders), None, 10).await.unwrap();
    assert_eq!(folders.iter().map(|e| e.key()).collect::<Vec<_>>(), ["d/sub/"]);
    // Names starting with a prefix (COS's `<dir>/<prefix>` listings).
    let q = FolderQuery { name_prefix: "s".into(), ..FolderQuery::new("d/", order(OrderBy::Name, true)) };
    let named = s.list_folder("bkt", &q, None, 10).await.unwrap();
    assert_eq!(named.iter().map(|e| e.key()).collect::<Vec<_>>(), ["d/sub/", "d/small"]);
    // Paging: entries added between pages are neither repeated nor make others skipped.
    for by in [OrderBy::Name, OrderBy::Modified, OrderBy::Size, OrderBy::Created] {
        for descending in [false, true] {
            let o = order(by, descending);
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = s.list_folder("bkt", &FolderQuery::new("d/", o), after.clone(), 1).await.unwrap();
                let Some(e) = page.first() else { break };
                seen.push(e.key().to_owned());
                after = Some(TreeCursor::after(e, by));
                if seen.len() == 2 {
                    let key = format!("d/new-{by:?}-{descending}");
                    s.put_object(write("bkt", &key, ContentSource::New(new_content(&key, 7)))).await.unwrap();
                }
            }
            for k in ["d/big", "d/mid", "d/small", "d/sub/"] {
                assert_eq!(seen.iter().filter(|s| s.as_str() == k).count(), 1, "{o:?}: {seen:?}");
            }
            let mut sorted = seen.clone();
            sorted.dedup();
            assert_eq!(sorted.len(), seen.len(), "{o:?} repeated an entry: {seen:?}");
        }
    }
    // Search by name, paged by key.
    let find = |under: &str, name: &str| SearchQuery { under: under.into(), name: name.into(), ..Default::default() };
    let keys = |v: Vec<TreeEntry>| v.iter().map(|e| e.key().to_owned()).collect::<Vec<_>>();
    assert_eq!(keys(s.search("bkt", &find("", "MId"), None, 10).await.unwrap()), ["d/mid"]);
    assert_eq!(keys(s.search("bkt", &find("d/", "sub"), None, 10).await.unwrap()), ["d/sub/"]);
    let page = s.search("bkt", &find("", ""), Some("d/mid"), 2).await.unwrap();
    assert_eq!(keys(page), ["d/new-Created-false", "d/new-Created-true"]);
    let exact = SearchQuery { exact: true, ..find("", "DEEP") };
    assert_eq!(keys(s.search("bkt", &exact, None, 10).await.unwrap()), ["d/sub/deep"]);
    let direct = SearchQuery { direct: true, ..find("d/", "") };
    let found = keys(s.search("bkt", &direct, None, 100).await.unwrap());
    assert!(found.contains(&"d/sub/".to_owned()) && !found.contains(&"d/sub/deep".to_owned()), "{found:?}");
    let meta = ObjectMeta { starred: true, ..Default::default() };
    s.set_entry_meta("bkt", "d/sub/deep", meta.clone(), 1).await.unwrap();
    s.set_entry_meta("bkt", "d/sub/", meta, 1).await.unwrap();
    let starred = SearchQuery { starred: true, ..find("", "") };
    assert_eq!(keys(s.search("bkt", &starred, None, 10).await.unwrap()), ["d/sub/", "d/sub/deep"]);
    let starred_files = SearchQuery { kinds: EntryKinds::Files, ..starred };
    assert_eq!(keys(s.search("bkt", &starred_files, None, 10).await.unwrap()), ["d/sub/deep"]);
}

/// Trash keeps everything (content, bytes, ids) until restored or purged; a restore goes
/// back in place or auto-renamed, and not into a folder that was deleted meanwhile.
pub async fn tree_trash(s: Store) {
    bucket(&s, "bkt", "alice").await;
    for k in ["keep/", "keep/f/", "keep/f/1", "keep/f/s/2", "keep/x"] {
        put(&s, "bkt", k, k, 10).await;
    }
    let f = folder_id(&s, "keep/f/").await;
    let item = s.trash("bkt", "keep/f/", 5_000).await.unwrap();
    assert_eq!((item.id.as_str(), item.folder, item.size), (f.as_str(), true, 30), "the marker's bytes too");
    assert!(s.get_entry("bkt", "keep/f/").await.unwrap().is_none());
    assert_eq!(keys(&s, "bkt", "", ListStart::Beginning, 100).await, ["keep/", "keep/x"]);
    assert_eq!(s.bucket_bytes("bkt").await.unwrap(), 50, "trashed bytes still count");
    let x = s.trash("bkt", "keep/x", 6_000).await.unwrap();
    let listed: Vec<String> = s.list_trash("bkt", None, 10).await.unwrap().into_iter().map(|t| t.key).collect();
    assert_eq!(listed, ["keep/x", "keep/f/"], "newest first");
    let page = s.list_trash("bkt", Some((6_000, x.id.clone())), 10).await.unwrap();
    assert_eq!(page.len(), 1);
    blob_refs(&s).await;
    // Restore: back in place, ids kept; a taken name is auto-renamed.
    put(&s, "bkt", "keep/f/", "other", 0).await;
    assert!(matches!(s.restore("bkt", &f, "keep/f/", 7_000).await, Err(StoreError::Exists)), "taken meanwhile");
    assert!(matches!(s.restore("bkt", &f, "other/f/", 7_000).await, Err(StoreError::Conflict(_))));
    let to = s.free_key("bkt", "keep/f/").await.unwrap();
    let back = s.restore("bkt", &f, &to, 7_000).await.unwrap();
    assert_eq!((back.key(), back.id()), ("keep/f(1)/", f.as_str()));
    assert!(s.get_object("bkt", "keep/f(1)/s/2").await.unwrap().is_some());
    assert!(s.get_trash("bkt", &f).await.unwrap().is_none());
    // The folder it was in is gone: refused, nothing changed.
    s.delete_entry("bkt", "keep/", true).await.unwrap();
    assert!(matches!(s.restore("bkt", &x.id, "keep/x", 8_000).await, Err(StoreError::Conflict(_))));
    assert!(s.get_trash("bkt", &x.id).await.unwrap().is_some());
    assert_eq!(s.expired_trash(7_000, 10).await.unwrap(), [("bkt".to_owned(), x.id.clone())]);
    s.purge("bkt", &x.id).await.unwrap();
    assert_eq!(s.bucket_bytes("bkt").await.unwrap(), 0);
    let (blobs, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(blobs.iter().all(|b| b.id != digests("keep/x").sha256) || s.stats().await.unwrap().contents == 0);
    // A bucket's trash goes with the bucket.
    put(&s, "bkt", "t", "t", 4).await;
    s.trash("bkt", "t", 1).await.unwrap();
    s.delete_bucket("bkt").await.unwrap();
    let (_, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(s.stats().await.unwrap().contents, 0);
}

/// In the tree a name is a file or a folder, never both; S3 writes (not tree) stay flat.
pub async fn tree_kinds(s: Store) {
    bucket(&s, "bkt", "alice").await;
    let tree = |key: &str| {
        let mut w = write("bkt", key, ContentSource::New(new_content(key, 1)));
        w.tree = TreeRule::Folders;
        w
    };
    s.put_object(tree("a")).await.unwrap();
    s.put_object(tree("b/c")).await.unwrap();
    assert!(matches!(s.put_object(tree("a/")).await, Err(StoreError::KindConflict)));
    assert!(matches!(s.put_object(tree("a/x")).await, Err(StoreError::KindConflict)));
    assert!(matches!(s.put_object(tree("b")).await, Err(StoreError::KindConflict)));
    assert!(matches!(s.move_entry(mv("a", "b", OnConflict::Replace)).await, Err(StoreError::KindConflict)));
    assert!(matches!(s.move_entry(mv("b/", "a/", OnConflict::Refuse)).await, Err(StoreError::KindConflict)));
    assert!(matches!(s.move_entry(mv("b/c", "a/c", OnConflict::Refuse)).await, Err(StoreError::KindConflict)));
    assert_eq!(s.move_entry(mv("a", "b", OnConflict::AutoRename)).await.unwrap().key(), "b(1)");
    // Not a tree write: S3 keys are plain.
    put(&s, "bkt", "b(1)/y", "y", 1).await;
    let meta = ObjectMeta { starred: true, description: Some("d".into()), ..Default::default() };
    let e = s.set_entry_meta("bkt", "b/", meta.clone(), 9).await.unwrap();
    assert_eq!((e.metadata(), e.modified_ms()), (&meta, 9));
    let moved = s.move_entry(mv("b/", "z/", OnConflict::Refuse)).await.unwrap();
    assert_eq!(moved.metadata(), &meta, "attributes move with the folder");
    // Folders an UpYun upload makes stay when emptied; implied ones go.
    let mut w = write("bkt", "k/eep/f", ContentSource::New(new_content("kf", 1)));
    w.tree = TreeRule::KeepFolders;
    s.put_object(w).await.unwrap();
    put(&s, "bkt", "gone/f", "gf", 1).await;
    s.delete_object("bkt", "k/eep/f").await.unwrap();
    s.delete_object("bkt", "gone/f").await.unwrap();
    assert!(matches!(s.get_entry("bkt", "k/eep/").await.unwrap(), Some(TreeEntry::Folder(f)) if f.kept && !f.explicit));
    assert!(s.get_entry("bkt", "k/").await.unwrap().is_some());
    assert!(s.get_entry("bkt", "gone/").await.unwrap().is_none());
    s.delete_entry("bkt", "k/", true).await.unwrap();
    assert!(s.get_entry("bkt", "k/eep/").await.unwrap().is_none());
    // A bucket emptied of keys goes with the folders it kept.
    bucket(&s, "kb", "alice").await;
    let mut w = write("kb", "a/b", ContentSource::New(new_content("kb", 1)));
    w.tree = TreeRule::KeepFolders;
    s.put_object(w).await.unwrap();
    s.delete_object("kb", "a/b").await.unwrap();
    s.delete_bucket("kb").await.unwrap();
    let (_, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let (_, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// Reference counts: contents counted by objects, blobs by extents and parts; freed at zero.
pub async fn references(s: Store) {
    bucket(&s, "bkt", "alice").await;
    bucket(&s, "other", "bob").await;
    let a = put(&s, "bkt", "one", "same", 100).await;
    let b = s.put_object(write("bkt", "two", ContentSource::Existing(a.content_id))).await.unwrap();
    assert_eq!(a.content_id, b.content_id);
    assert_eq!(s.get_content(a.content_id).await.unwrap().unwrap().refs, 2);
    // The same bytes written again into the bucket, with the same ETag and digests, share
    // its content; into another bucket (another tenant's) they share the blob only, so what a
    // write does never depends on what another tenant holds ...
    let c = put(&s, "bkt", "three", "same", 100).await;
    assert_eq!(c.content_id, a.content_id, "an equal content in the bucket is shared");
    let elsewhere = put(&s, "other", "x", "same", 100).await;
    assert_ne!(elsewhere.content_id, a.content_id, "another bucket's content is not");
    // Nor another tenant's objects in the bucket (an ACL may let bob write into alice's bucket,
    // and what he writes is his): he shares his own, not alice's.
    let by_bob = |key: &str| {
        let mut w = write("bkt", key, ContentSource::New(new_content("same", 100)));
        w.meta.acl = Some(Acl { owner: "bob".into(), grants: vec![] });
        w
    };
    let bobs = s.put_object(by_bob("bob/1")).await.unwrap();
    assert_ne!(bobs.content_id, a.content_id, "alice's content is not shared with bob");
    assert_eq!(s.put_object(by_bob("bob/2")).await.unwrap().content_id, bobs.content_id, "his own is");
    assert_eq!(put(&s, "bkt", "alice/again", "same", 100).await.content_id, a.content_id, "and alice hers");
    for key in ["bob/1", "bob/2", "alice/again"] {
        s.delete_object("bkt", key).await.unwrap();
    }
    assert_eq!(s.get_content(a.content_id).await.unwrap().unwrap().refs, 3);
    // ... nor with another ETag (a multipart upload's), or a UFile ETag or digest that
    // differs, or while its digests are pending: those get a content of their own, sharing
    // the blob.
    let variant = |f: fn(&mut NewContent)| {
        let mut c = new_content("same", 100);
        f(&mut c);
        c
    };
    let others = [
        variant(|c| c.etag = "same-md5-1".into()),
        variant(|c| c.ufile_etag = Some("other-ufile".into())),
        variant(|c| c.digests.as_mut().unwrap().crc32 = 9),
        variant(|c| c.extents[0].digests.crc32c = 9),
        variant(|c| {
            c.digests = None;
            c.ufile_etag = None;
        }),
    ];
    let mut own = Vec::new();
    for (i, content) in others.into_iter().enumerate() {
        let o = s.put_object(write("bkt", &format!("v{i}"), ContentSource::New(content))).await.unwrap();
        assert!(
            ![a.content_id, elsewhere.content_id].contains(&o.content_id) && !own.contains(&o.content_id),
            "variant {i} has its own content"
        );
        own.push(o.content_id);
    }
    let d = s.get_object("bkt", "v0").await.unwrap().unwrap();
    let blob = digests("same").sha256;
    assert_eq!(blob_refs(&s).await.get(&blob), Some(&100));
    let stats = s.stats().await.unwrap();
    assert_eq!((stats.objects, stats.logical_bytes, stats.contents, stats.blobs), (9, 900, 7, 1));
    assert_eq!(stats.physical_bytes, 100);

    s.delete_object("bkt", "one").await.unwrap();
    s.delete_object("bkt", "two").await.unwrap();
    assert_eq!(s.get_content(a.content_id).await.unwrap().unwrap().refs, 1);
    s.delete_object("bkt", "three").await.unwrap();
    assert!(s.get_content(a.content_id).await.unwrap().is_none(), "the last reference frees the content");
    assert!(s.find_content("md5", "same-md5", 100, 10).await.unwrap().contains(&d.content_id));
    assert!(!s.find_content("md5", "same-md5", 100, 10).await.unwrap().contains(&a.content_id));
    // Written again now, the bytes get a content of their own: the bucket holds none equal
    // (bob's, in his bucket, does not count).
    let e = put(&s, "bkt", "again", "same", 100).await;
    assert!(![a.content_id, elsewhere.content_id].contains(&e.content_id) && !own.contains(&e.content_id));
    for key in ["v0", "v1", "v2", "v3", "v4", "again"] {
        s.delete_object("bkt", key).await.unwrap();
    }
    s.delete_object("other", "x").await.unwrap();
    assert_eq!(s.stats().await.unwrap().unreferenced_blobs, 1);
    assert!(s.unreferenced_blobs(now_ms() + 1, 10).await.unwrap().contains(&blob));
    blob_refs(&s).await;
}

fn storage(bytes: u64) -> QuotaLimits {
    QuotaLimits { storage_bytes: Some(bytes), ..Default::default() }
}

/// The storage quota holds inside the writing transaction, read there (a quota set meanwhile
/// holds at once); overwrites count their growth.
pub async fn quotas(s: Store) {
    bucket(&s, "q1", "alice").await;
    bucket(&s, "q2", "alice").await;
    bucket(&s, "other", "bob").await;
    put(&s, "other", "big", "bob", 1000).await;
    assert_eq!(s.get_quota("alice").await.unwrap(), None);
    let set = s.set_quota("alice", storage(100)).await.unwrap();
    assert_eq!(s.get_quota("alice").await.unwrap(), Some(set));
    s.put_object(write("q1", "a", ContentSource::New(new_content("a", 60)))).await.unwrap();
    let refused = s.put_object(write("q2", "b", ContentSource::New(new_content("b", 50)))).await;
    assert!(matches!(refused, Err(StoreError::QuotaExceeded)), "quotas count every bucket of the tenant");
    assert!(s.get_object("q2", "b").await.unwrap().is_none(), "a refused write leaves nothing");
    assert_eq!(s.tenant_bytes("alice").await.unwrap(), 60);
    // Shrinking an object is allowed even above the quota; growing within it is too.
    s.set_quota("alice", storage(5)).await.unwrap();
    s.put_object(write("q1", "a", ContentSource::New(new_content("c", 10)))).await.unwrap();
    let refused = s.put_object(write("q2", "b", ContentSource::New(new_content("d", 90)))).await;
    assert!(matches!(refused, Err(StoreError::QuotaExceeded)), "a lowered quota holds at once");
    s.set_quota("alice", storage(100)).await.unwrap();
    s.put_object(write("q2", "b", ContentSource::New(new_content("d", 90)))).await.unwrap();
    assert_eq!(s.tenant_bytes("alice").await.unwrap(), 100);
    assert_eq!(s.bucket_bytes("q2").await.unwrap(), 90);
    assert_eq!(s.tenant_bytes("bob").await.unwrap(), 1000, "bob has no quota");
    let again = s.set_quota("alice", QuotaLimits::default()).await.unwrap();
    assert!(again.generation > set.generation, "each setting is a new generation");
    put(&s, "q1", "more", "more", 500).await;
    assert_eq!(s.tenant_bytes("alice").await.unwrap(), 600, "no limit left");
    blob_refs(&s).await;
}

/// Concurrent writers never take a tenant past its storage quota.
pub async fn quotas_hold_under_concurrency(s: Store) {
    bucket(&s, "race", "alice").await;
    s.set_quota("alice", storage(95)).await.unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let w = write("race", &format!("k{i}"), ContentSource::New(new_content(&format!("s{i}"), 10)));
                s.put_object(w).await.is_ok()
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap() as u64;
    }
    assert_eq!(ok, 9, "exactly as many 10-byte writes as fit in 95 bytes");
    assert_eq!(s.tenant_bytes("alice").await.unwrap(), 90);
    blob_refs(&s).await;
}

fn allowance(requests: u64, download_bytes: u64) -> Allowance {
    Allowance { requests, download_bytes }
}

/// Allowances: taken all or nothing, leases bounded by what remains, given back only into
/// the generation they came from.
pub async fn allowances(s: Store) {
    let take = |need, extra| {
        let s = s.clone();
        async move { s.take_allowance("alice", need, extra).await.unwrap() }
    };
    assert_eq!(take(allowance(1, 10), allowance(0, 0)).await, AllowanceTake::NoQuota);
    let limits = QuotaLimits { requests: Some(1000), download_bytes: Some(100), storage_bytes: None };
    let q = s.set_quota("alice", limits).await.unwrap();
    let AllowanceTake::Granted { granted, quota } = take(allowance(1, 10), allowance(100, 100)).await else {
        panic!("granted")
    };
    assert_eq!(granted, allowance(1 + 999 / 16, 10 + 90 / 16), "need plus a sixteenth of what remains");
    assert_eq!((quota.used_requests, quota.used_download_bytes), (granted.requests, granted.download_bytes));
    let AllowanceTake::Exhausted { kind, .. } = take(allowance(1, 100), allowance(0, 0)).await else {
        panic!("exhausted")
    };
    assert_eq!(kind, AllowanceKind::DownloadBytes);
    let after = s.get_quota("alice").await.unwrap().unwrap();
    assert_eq!(after.used_requests, granted.requests, "a refused take takes nothing, not even its requests");
    s.return_allowance("alice", q.generation, allowance(granted.requests - 1, granted.download_bytes - 10))
        .await
        .unwrap();
    let after = s.get_quota("alice").await.unwrap().unwrap();
    assert_eq!((after.used_requests, after.used_download_bytes), (1, 10), "unspent leases come back");
    let AllowanceTake::Granted { granted, .. } = take(allowance(0, 90), allowance(0, 50)).await else { panic!() };
    assert_eq!(granted.download_bytes, 90, "the last bytes: exactly the need");
    assert!(matches!(take(allowance(0, 1), allowance(0, 0)).await, AllowanceTake::Exhausted { .. }));
    // Setting the quota again starts afresh; a lease of the old generation is void.
    let q2 = s.set_quota("alice", limits).await.unwrap();
    assert_ne!(q2.generation, q.generation);
    s.return_allowance("alice", q.generation, allowance(5, 5)).await.unwrap();
    let after = s.get_quota("alice").await.unwrap().unwrap();
    assert_eq!((after.used_requests, after.used_download_bytes), (0, 0), "old generation's return ignored");
    // An unlimited allowance is granted exactly what is asked and counts nothing.
    s.set_quota("alice", QuotaLimits { requests: Some(2), ..Default::default() }).await.unwrap();
    let AllowanceTake::Granted { granted, quota } = take(allowance(1, 1 << 40), allowance(100, 100)).await else {
        panic!()
    };
    assert_eq!(granted, allowance(1, 1 << 40));
    assert_eq!((quota.used_requests, quota.used_download_bytes), (1, 0));
}

/// Concurrent takers (as several nodes are) never get more than the limit between them, and
/// taking exact needs gets all of it.
pub async fn allowances_hold_under_concurrency(s: Store) {
    s.set_quota("alice", QuotaLimits { requests: Some(200), ..Default::default() }).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut got = 0;
                loop {
                    match s.take_allowance("alice", allowance(1, 0), allowance(10, 0)).await.unwrap() {
                        AllowanceTake::Granted { granted, .. } => got += granted.requests,
                        AllowanceTake::Exhausted { .. } => return got,
                        AllowanceTake::NoQuota => panic!("set"),
                    }
                }
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 200, "every unit granted once, none beyond the limit");
    assert_eq!(s.get_quota("alice").await.unwrap().unwrap().used_requests, 200);
}

/// Token buckets: a burst then the rate, several buckets taken together or not at all,
/// shared by every user of the store.
pub async fn token_buckets(s: Store) {
    let t = |key: &str, burst: f64| TokenTake { key: key.into(), burst, per_sec: 0.001 };
    assert!(s.take_tokens(vec![t("tenant:a", 2.0), t("addr:x", 3.0)]).await.unwrap());
    assert!(s.take_tokens(vec![t("tenant:a", 2.0), t("addr:x", 3.0)]).await.unwrap());
    assert!(!s.take_tokens(vec![t("tenant:a", 2.0), t("addr:x", 3.0)]).await.unwrap(), "a is empty");
    assert!(s.take_tokens(vec![t("tenant:b", 2.0), t("addr:x", 3.0)]).await.unwrap(), "x kept its third token");
    assert!(!s.take_tokens(vec![t("tenant:c", 2.0), t("addr:x", 3.0)]).await.unwrap(), "x is empty");
    assert!(s.take_tokens(vec![t("tenant:c", 2.0)]).await.unwrap(), "c was not charged by the refused take");
    let unlimited = TokenTake { key: "tenant:a".into(), burst: 1.0, per_sec: 0.0 };
    assert!(s.take_tokens(vec![unlimited]).await.unwrap(), "a rate of 0 is no limit");
    // Concurrent takers share one bucket: exactly its burst succeeds.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.take_tokens(vec![t("tenant:race", 5.0)]).await.unwrap() })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap() as u32;
    }
    assert_eq!(ok, 5);
    assert_eq!(s.purge_tokens(now_ms() - 60_000).await.unwrap(), 0, "all used just now");
    assert!(s.purge_tokens(now_ms() + 1).await.unwrap() >= 4);
    assert!(s.take_tokens(vec![t("tenant:a", 2.0)]).await.unwrap(), "a purged bucket is full again");
}

/// Listing: UTF-8 byte order, prefixes, start points, limits.
pub async fn listing(s: Store) {
    bucket(&s, "bkt", "alice").await;
    bucket(&s, "bkt2", "alice").await;
    let all = ["a", "a/b", "a/c/d", "a0", "aé", "a\u{10000}", "b", "B", "%", "a/c"];
    for k in all {
        put(&s, "bkt", k, k, 1).await;
    }
    put(&s, "bkt2", "a/x", "x", 1).await;
    let mut sorted: Vec<&str> = all.to_vec();
    sorted.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    assert_eq!(keys(&s, "bkt", "", ListStart::Beginning, 100).await, sorted);
    assert_eq!(keys(&s, "bkt", "a/", ListStart::Beginning, 100).await, ["a/b", "a/c", "a/c/d"]);
    assert_eq!(keys(&s, "bkt", "a/", ListStart::After("a/b"), 100).await, ["a/c", "a/c/d"]);
    assert_eq!(keys(&s, "bkt", "a/", ListStart::From("a/c"), 1).await, ["a/c"]);
    assert_eq!(
        keys(&s, "bkt", "a/", ListStart::After("0"), 100).await,
        ["a/b", "a/c", "a/c/d"],
        "a start before the prefix"
    );
    assert!(keys(&s, "bkt", "a/", ListStart::After("a/c/d"), 100).await.is_empty());
    assert_eq!(keys(&s, "bkt", "%", ListStart::Beginning, 100).await, ["%"], "no LIKE wildcards");
    assert_eq!(keys(&s, "bkt", "a", ListStart::After("a\u{10000}"), 100).await, Vec::<String>::new());
    // Paging through everything with `After` yields each key once.
    let mut seen = Vec::new();
    let mut last: Option<String> = None;
    loop {
        let page = match &last {
            None => keys(&s, "bkt", "", ListStart::Beginning, 3).await,
            Some(a) => keys(&s, "bkt", "", ListStart::After(a), 3).await,
        };
        if page.is_empty() {
            break;
        }
        last = page.last().cloned();
        seen.extend(page);
    }
    assert_eq!(seen, sorted);
}

/// The hash index: any holder for proofs, the tenant's own copy first whatever others hold,
/// lookups restricted to a scope, pending contents of a size.
pub async fn hash_index(s: Store) {
    // Twenty other tenants hold the same digest before alice does.
    for i in 0..20 {
        let (t, b) = (format!("t{i}"), format!("b{i}"));
        bucket(&s, &b, &t).await;
        put(&s, &b, "f", "shared", 42).await;
    }
    bucket(&s, "mine", "alice").await;
    bucket(&s, "mine2", "alice").await;
    let own = put(&s, "mine", "secret/f", "shared", 42).await;
    assert_eq!(s.find_content("sha1", "shared-sha1", 42, 5).await.unwrap().len(), 5, "limit is honoured");
    assert_eq!(s.find_content("sha1", "shared-sha1", 43, 5).await.unwrap(), Vec::<i64>::new(), "size matters");
    let all = Within::default();
    let found = s.find_held_content("alice", "sha1", "shared-sha1", 42, &all).await.unwrap();
    assert_eq!(found, Some(own.content_id), "the tenant's own copy is found whatever others hold");
    assert_eq!(s.find_held_content("alice", "ufile", "shared-ufile", 42, &all).await.unwrap(), Some(own.content_id));
    assert_eq!(s.find_held_content("carol", "sha1", "shared-sha1", 42, &all).await.unwrap(), None);
    assert_eq!(s.find_held_content("alice", "sha1", "shared-sha1", 41, &all).await.unwrap(), None);

    let within = |buckets: Option<&[&str]>, prefixes: Option<&[&str]>| Within {
        buckets: buckets.map(|b| b.iter().map(|x| x.to_string()).collect()),
        prefixes: prefixes.map(|p| p.iter().map(|x| x.to_string()).collect()),
    };
    let held = |w: Within| {
        let s = s.clone();
        async move { s.find_held_content("alice", "sha1", "shared-sha1", 42, &w).await.unwrap() }
    };
    assert_eq!(held(within(None, Some(&["secret/"]))).await, Some(own.content_id));
    assert_eq!(held(within(None, Some(&["pub/", "secret/f"]))).await, Some(own.content_id));
    assert_eq!(held(within(None, Some(&["pub/"]))).await, None, "outside the scope's prefixes");
    assert_eq!(held(within(Some(&["mine2"]), None)).await, None, "outside the scope's buckets");
    assert_eq!(held(within(Some(&["mine", "mine2"]), Some(&["secret/"]))).await, Some(own.content_id));
    assert_eq!(held(within(Some(&[]), None)).await, None, "an empty bucket list allows nothing");
    assert_eq!(held(within(None, Some(&["%"]))).await, None, "prefixes are not patterns");

    // Pending contents (digests not yet computed) are found by size for their holders.
    let mut pending = new_content("pend", 77);
    pending.digests = None;
    pending.ufile_etag = None;
    let p = s.put_object(write("mine2", "docs/p", ContentSource::New(pending))).await.unwrap();
    let ids = |v: Vec<ContentRecord>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(s.pending_held_contents("alice", 77, &all, 4).await.unwrap()), [p.content_id]);
    assert!(s.pending_held_contents("bob", 77, &all, 4).await.unwrap().is_empty());
    assert!(s.pending_held_contents("alice", 76, &all, 4).await.unwrap().is_empty());
    assert!(s.pending_held_contents("alice", 77, &within(None, Some(&["pub/"])), 4).await.unwrap().is_empty());
    let now = now_ms();
    assert!(ids(s.claim_pending_digests(now, now + 60_000, 100).await.unwrap()).contains(&p.content_id));
    assert!(
        !ids(s.claim_pending_digests(now, now + 60_000, 100).await.unwrap()).contains(&p.content_id),
        "claimed once while the lease runs"
    );
    assert!(
        ids(s.claim_pending_digests(now + 60_001, now + 120_000, 100).await.unwrap()).contains(&p.content_id),
        "claimed again once the lease expired (its node died)"
    );
    s.set_content_digests(p.content_id, digests("pend"), "pend-ufile".into()).await.unwrap();
    assert!(s.pending_held_contents("alice", 77, &all, 4).await.unwrap().is_empty());
    assert_eq!(s.find_held_content("alice", "md5", "pend-md5", 77, &all).await.unwrap(), Some(p.content_id));
    assert_eq!(s.find_held_content("alice", "ufile", "pend-ufile", 77, &all).await.unwrap(), Some(p.content_id));
}

/// Upload sessions: parts replace and keep blob counts right, completion references the part
/// blobs (no copy), conditions and key overrides, expiry, abort.
pub async fn uploads(s: Store) {
    bucket(&s, "bkt", "alice").await;
    let mut u = upload("u1", "bkt", "big", "alice", UploadKind::Ufile);
    u.state = r#"{"blk":4}"#.into();
    s.create_upload(u.clone()).await.unwrap();
    assert_eq!(s.get_upload("u1").await.unwrap().unwrap(), u);
    assert!(s.get_upload("nope").await.unwrap().is_none());

    s.put_part(part("u1", 1, "p1", 10)).await.unwrap();
    s.put_part(part("u1", 2, "old2", 10)).await.unwrap();
    s.put_part(part("u1", 2, "p2", 5)).await.unwrap();
    s.put_part(part("u1", 3, "p3", 1)).await.unwrap();
    assert!(matches!(s.put_part(part("nope", 1, "x", 1)).await, Err(StoreError::NotFound)));
    let refs = blob_refs(&s).await;
    assert_eq!(s.unreferenced_blobs(now_ms() + 1, 10).await.unwrap(), [digests("old2").sha256], "{refs:?}");
    let numbers = |v: Vec<PartRecord>| v.into_iter().map(|p| p.number).collect::<Vec<_>>();
    assert_eq!(numbers(s.list_parts("u1", 0, 10).await.unwrap()), [1, 2, 3]);
    assert_eq!(numbers(s.list_parts("u1", 1, 1).await.unwrap()), [2]);
    assert_eq!(s.list_parts("u1", 0, 10).await.unwrap()[1].size, 5);

    // A part whose ETag changed, or that is missing, refuses completion and keeps the session.
    let mut stale = complete("u1", &[(1, "p1"), (2, "old2")]);
    assert!(matches!(s.complete_upload(stale.clone()).await, Err(StoreError::Conflict(_))));
    stale.parts = vec![(1, digests("p1").md5), (9, "x".into())];
    assert!(matches!(s.complete_upload(stale).await, Err(StoreError::Conflict(_))));
    put(&s, "bkt", "taken", "t", 1).await;
    let mut cond = complete("u1", &[(1, "p1"), (2, "p2")]);
    cond.key = Some("taken".into());
    cond.condition = Some(WriteCondition::Absent);
    assert!(matches!(s.complete_upload(cond).await, Err(StoreError::Conflict(_))));
    assert!(s.get_upload("u1").await.unwrap().is_some());

    // Completion: parts 1 and 2 become the extents; part 3 is dropped; the key override holds.
    let mut done = complete("u1", &[(1, "p1"), (2, "p2")]);
    done.key = Some("renamed".into());
    done.object_id = Some("a".repeat(40));
    let obj = s.complete_upload(done).await.unwrap();
    assert_eq!((obj.key.as_str(), obj.size, obj.id.as_str()), ("renamed", 15, "a".repeat(40).as_str()));
    let content = s.get_content(obj.content_id).await.unwrap().unwrap();
    let blobs: Vec<&str> = content.extents.iter().map(|e| e.blob.as_str()).collect();
    assert_eq!(blobs, [digests("p1").sha256, digests("p2").sha256], "the parts' blobs, not a copy");
    assert!(content.digests.is_none(), "a multi-part content waits for its whole digests");
    assert!(s.get_upload("u1").await.unwrap().is_none());
    assert!(s.list_parts("u1", 0, 10).await.unwrap().is_empty());
    assert!(s.get_object("bkt", "big").await.unwrap().is_none());
    let unreferenced: BTreeSet<String> = s.unreferenced_blobs(now_ms() + 1, 10).await.unwrap().into_iter().collect();
    assert!(unreferenced.contains(&digests("p3").sha256) && !unreferenced.contains(&digests("p1").sha256));
    assert!(matches!(s.complete_upload(complete("u1", &[(1, "p1")])).await, Err(StoreError::NotFound)));

    // Given whole digests are kept and indexed.
    s.create_upload(upload("u2", "bkt", "two", "alice", UploadKind::S3)).await.unwrap();
    s.put_part(part("u2", 1, "q1", 3)).await.unwrap();
    s.put_part(part("u2", 2, "q2", 3)).await.unwrap();
    let mut with = complete("u2", &[(1, "q1"), (2, "q2")]);
    with.digests = Some(digests("whole"));
    let two = s.complete_upload(with).await.unwrap();
    assert_eq!(
        s.find_held_content("alice", "sha1", "whole-sha1", 6, &Within::default()).await.unwrap(),
        Some(two.content_id)
    );

    // Expired sessions take no parts and cannot complete; GC finds them; abort frees parts.
    let mut exp = upload("u3", "bkt", "e", "alice", UploadKind::Cos);
    exp.expires_ms = Some(now_ms() + 60_000);
    s.create_upload(exp).await.unwrap();
    s.put_part(part("u3", 1, "e1", 2)).await.unwrap();
    let mut gone = upload("u4", "bkt", "e", "alice", UploadKind::Adrive);
    gone.expires_ms = Some(now_ms() - 1);
    s.create_upload(gone).await.unwrap();
    assert!(matches!(s.put_part(part("u4", 1, "e2", 2)).await, Err(StoreError::NotFound)));
    assert!(matches!(s.complete_upload(complete("u4", &[])).await, Err(StoreError::NotFound)));
    assert_eq!(s.expired_uploads(now_ms(), 10).await.unwrap(), ["u4"]);
    s.abort_upload("u3").await.unwrap();
    s.abort_upload("u4").await.unwrap();
    assert!(matches!(s.abort_upload("u4").await, Err(StoreError::NotFound)));
    assert!(s.unreferenced_blobs(now_ms() + 1, 10).await.unwrap().contains(&digests("e1").sha256));
    blob_refs(&s).await;
}

/// Appends at an offset (resumable uploads): exactly one of two appends at one offset lands,
/// the offset is the parts' sum, state changes compare and set, parts of other sessions are
/// adopted by reference, a completion can keep the session, and multipart listings skip them.
pub async fn resumable_appends(s: Store) {
    bucket(&s, "bkt", "alice").await;
    s.create_upload(upload("r1", "bkt", "k", "alice", UploadKind::Tus)).await.unwrap();
    assert_eq!(s.upload_progress("r1").await.unwrap(), (0, 0));
    let (a, b) =
        tokio::join!(s.append_part(0, "{}", part("r1", 0, "a", 10)), s.append_part(0, "{}", part("r1", 0, "b", 7)));
    let landed: Vec<&Appended> =
        [a.as_ref().unwrap(), b.as_ref().unwrap()].into_iter().filter(|x| matches!(x, Appended::Part { .. })).collect();
    assert_eq!(landed.len(), 1, "one of two appends at one offset: {a:?} {b:?}");
    let (held, parts) = s.upload_progress("r1").await.unwrap();
    assert_eq!(parts, 1);
    assert!(held == 10 || held == 7);
    assert_eq!(s.append_part(3, "{}", part("r1", 0, "c", 1)).await.unwrap(), Appended::OffsetMismatch { actual: held });
    match s.append_part(held, "{}", part("r1", 0, "c", 5)).await.unwrap() {
        Appended::Part { part, offset } => assert_eq!((part.number, offset), (2, held + 5)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(s.append_part(0, "{}", part("nope", 0, "x", 1)).await, Err(StoreError::NotFound)));

    let state = s.get_upload("r1").await.unwrap().unwrap().state;
    assert!(s.set_upload_state("r1", &state, r#"{"length":20}"#).await.unwrap());
    assert!(!s.set_upload_state("r1", &state, r#"{"length":30}"#).await.unwrap(), "compare and set");
    assert_eq!(s.get_upload("r1").await.unwrap().unwrap().state, r#"{"length":20}"#);
    let stale = s.append_part(held + 5, "{}", part("r1", 0, "e", 1)).await.unwrap();
    assert_eq!(stale, Appended::StateChanged, "an append made for an older state stores nothing");

    // Adoption: r2 gets r1's parts after its own, as references; a wrong size adopts nothing.
    s.create_upload(upload("r2", "bkt", "k2", "alice", UploadKind::Tus)).await.unwrap();
    s.append_part(0, "{}", part("r2", 0, "d", 2)).await.unwrap();
    let wrong = s.adopt_parts("r2", &[("r1".into(), held + 6)]).await;
    assert!(matches!(wrong, Err(StoreError::Conflict(_))), "{wrong:?}");
    assert_eq!(s.upload_progress("r2").await.unwrap(), (2, 1));
    assert!(matches!(s.adopt_parts("r2", &[("gone".into(), 1)]).await, Err(StoreError::NotFound)));
    assert_eq!(s.adopt_parts("r2", &[("r1".into(), held + 5)]).await.unwrap(), held + 7);
    let blobs: Vec<String> = s.list_parts("r2", 0, 10).await.unwrap().into_iter().map(|p| p.blob).collect();
    assert_eq!(blobs.len(), 3);
    assert_eq!(blobs[2], digests("c").sha256, "adopted by reference");

    // A completion that keeps the session: the object exists, the session stays without parts.
    let parts: Vec<(u32, String)> =
        s.list_parts("r2", 0, 10).await.unwrap().into_iter().map(|p| (p.number, p.etag)).collect();
    let mut done = complete("r2", &[]);
    done.parts = parts;
    done.keep_session = Some((r#"{"stale":1}"#.into(), r#"{"done":true}"#.into()));
    let stale = s.complete_upload(done.clone()).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "completion made for another state: {stale:?}");
    done.keep_session = Some(("{}".into(), r#"{"done":true}"#.into()));
    let obj = s.complete_upload(done).await.unwrap();
    assert_eq!(obj.size, held + 7);
    assert_eq!(s.get_upload("r2").await.unwrap().unwrap().state, r#"{"done":true}"#);
    assert_eq!(s.upload_progress("r2").await.unwrap(), (0, 0));
    let late = s.append_part(0, "{}", part("r2", 0, "f", 1)).await.unwrap();
    assert_eq!(late, Appended::StateChanged, "nothing is appended to a completed session");
    // Removed only while empty: r1 has parts and stays; an empty session goes; a gone one is NotFound.
    assert!(!s.abort_empty_upload("r1").await.unwrap(), "a session with parts is kept");
    assert!(s.get_upload("r1").await.unwrap().is_some());
    s.create_upload(upload("r3", "bkt", "k3", "alice", UploadKind::Tus)).await.unwrap();
    assert!(s.abort_empty_upload("r3").await.unwrap());
    assert!(s.get_upload("r3").await.unwrap().is_none());
    assert!(matches!(s.abort_empty_upload("r3").await, Err(StoreError::NotFound)));
    // r1's parts keep their blobs (the object references them too).
    s.abort_upload("r1").await.unwrap();
    let content = s.get_content(obj.content_id).await.unwrap().unwrap();
    assert_eq!(content.extents.len(), 3);
    assert!(s.unreferenced_blobs(now_ms() + 1, 10).await.unwrap().iter().all(|b| *b != digests("c").sha256));
    // Resumable sessions are not multipart uploads: S3-style listings skip them.
    assert!(s.list_uploads("bkt", "", None, 10).await.unwrap().is_empty());
}

/// Session listings: live sessions only, by key (newest first) and by prefix in (key, id)
/// order with paging.
pub async fn upload_listing(s: Store) {
    bucket(&s, "bkt", "alice").await;
    bucket(&s, "other", "alice").await;
    let mut older = upload("b", "bkt", "k", "alice", UploadKind::Cos);
    older.created_ms = 1000;
    let mut newer = upload("a", "bkt", "k", "alice", UploadKind::Cos);
    newer.created_ms = 2000;
    s.create_upload(older).await.unwrap();
    s.create_upload(newer).await.unwrap();
    s.create_upload(upload("c", "bkt", "k2", "alice", UploadKind::S3)).await.unwrap();
    s.create_upload(upload("d", "bkt", "j", "alice", UploadKind::S3)).await.unwrap();
    s.create_upload(upload("e", "other", "k", "alice", UploadKind::S3)).await.unwrap();
    let mut expired = upload("f", "bkt", "k", "alice", UploadKind::Cos);
    expired.expires_ms = Some(now_ms() - 1);
    s.create_upload(expired).await.unwrap();
    let ids = |v: Vec<UploadRecord>| v.into_iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(ids(s.uploads_of_key("bkt", "k").await.unwrap()), ["a", "b"], "exact key, live, newest first");
    assert_eq!(ids(s.list_uploads("bkt", "", None, 10).await.unwrap()), ["d", "a", "b", "c"]);
    assert_eq!(ids(s.list_uploads("bkt", "k", None, 10).await.unwrap()), ["a", "b", "c"]);
    assert_eq!(ids(s.list_uploads("bkt", "k", Some(("k", "a")), 10).await.unwrap()), ["b", "c"]);
    assert_eq!(ids(s.list_uploads("bkt", "", Some(("k", "\u{10FFFF}")), 10).await.unwrap()), ["c"]);
    assert_eq!(ids(s.list_uploads("bkt", "", None, 2).await.unwrap()), ["d", "a"]);
}

/// Usage rows add up per day; callbacks are due, retried and finished.
pub async fn usage_and_callbacks(s: Store) {
    bucket(&s, "u1", "alice").await;
    bucket(&s, "u2", "alice").await;
    put(&s, "u1", "k", "x", 30).await;
    let row = |bucket: &str, day, downloads, requests| UsageDelta {
        tenant: "alice".into(),
        bucket: bucket.into(),
        day,
        downloads,
        requests,
    };
    s.add_usage(vec![row("u1", 10, 100, 1), row("u2", 10, 5, 2)]).await.unwrap();
    s.add_usage(vec![row("u1", 10, 1, 1), row("u1", 11, 0, 7)]).await.unwrap();
    let report = s.usage_report("alice", 10, 11).await.unwrap();
    assert_eq!(report.len(), 2);
    assert_eq!((report[0].day, report[0].downloads, report[0].requests, report[0].storage), (10, 106, 4, 30));
    assert_eq!((report[1].day, report[1].requests), (11, 7));
    assert!(s.usage_report("alice", 12, 20).await.unwrap().is_empty());
    assert!(s.usage_report("bob", 0, 20).await.unwrap().is_empty());

    let signed =
        vec![("Date".to_owned(), "Wed, 01 Nov 2023 00:00:00 GMT".to_owned()), ("Authorization".into(), "X y".into())];
    s.enqueue_callback("http://a/".into(), signed.clone(), "x=1".into()).await.unwrap();
    s.enqueue_callback("http://b/".into(), Vec::new(), "y=2".into()).await.unwrap();
    let lease = now_ms() + 30_000;
    let mut due = s.claim_callbacks(now_ms() + 1, lease, 10).await.unwrap();
    due.sort_by_key(|c| c.id);
    assert_eq!(due.iter().map(|c| c.url.as_str()).collect::<Vec<_>>(), ["http://a/", "http://b/"]);
    assert_eq!((&due[0].headers, due[1].headers.len()), (&signed, 0));
    // Claimed: nobody else gets them while the attempt runs, everybody after its lease.
    assert!(s.claim_callbacks(now_ms() + 1, lease, 10).await.unwrap().is_empty());
    assert_eq!(s.claim_callbacks(lease, lease + 30_000, 10).await.unwrap().len(), 2, "a dead claimer's lease ends");
    s.finish_callback(due[0].id, Some(now_ms() + 60_000)).await.unwrap();
    s.finish_callback(due[1].id, None).await.unwrap();
    assert!(s.claim_callbacks(now_ms() + 1, lease, 10).await.unwrap().is_empty());
    let later = s.claim_callbacks(now_ms() + 120_000, now_ms() + 150_000, 10).await.unwrap();
    assert_eq!((later.len(), later[0].attempts, later[0].body.as_str()), (1, 1, "x=1"));
}

/// Callbacks claimed by many nodes at once: each goes to exactly one claimer.
pub async fn callbacks_are_claimed_once_under_concurrency(s: Store) {
    for i in 0..40 {
        s.enqueue_callback(format!("http://r/{i}"), Vec::new(), String::new()).await.unwrap();
    }
    let now = now_ms() + 1;
    let claims = (0..8).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.claim_callbacks(now, now + 60_000, 7).await.unwrap() })
    });
    let mut ids = Vec::new();
    for c in claims {
        ids.extend(c.await.unwrap().into_iter().map(|c| c.id));
    }
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!((ids.len(), distinct.len()), (40, 40), "every callback claimed once");
}

/// GC support: unreferenced blobs wait for the cutoff; a forgotten row is gone; a
/// re-referenced blob is not forgotten.
pub async fn maintenance(s: Store) {
    bucket(&s, "bkt", "alice").await;
    put(&s, "bkt", "k", "gc", 5).await;
    let blob = digests("gc").sha256;
    assert_eq!(s.blob_inline(&blob).await.unwrap(), Some(false));
    assert_eq!(s.blob_inline("0000").await.unwrap(), None);
    s.delete_object("bkt", "k").await.unwrap();
    let past = now_ms() - 60_000;
    assert!(s.unreferenced_blobs(past, 10).await.unwrap().is_empty(), "not before the cutoff");
    assert_eq!(s.forget_blob(&blob, past).await.unwrap(), None);
    // Referenced again before GC ran: not forgotten.
    put(&s, "bkt", "k2", "gc", 5).await;
    assert_eq!(s.forget_blob(&blob, now_ms() + 1).await.unwrap(), None);
    s.delete_object("bkt", "k2").await.unwrap();
    assert_eq!(s.forget_blob(&blob, now_ms() + 1).await.unwrap(), Some(ForgottenBlob { size: 5, inline: false }));
    // Marked until its bytes are deleted, then dropped.
    assert_eq!(s.blob_inline(&blob).await.unwrap(), Some(false));
    s.drop_blob(&blob).await.unwrap();
    assert_eq!(s.blob_inline(&blob).await.unwrap(), None);
    let (blobs, problems) = s.check().await.unwrap();
    assert!(blobs.is_empty() && problems.is_empty(), "{blobs:?} {problems:?}");
    assert_eq!(s.stats().await.unwrap(), StoreStats { buckets: 1, ..Default::default() });
}

/// Writers and GC on several nodes: a blob is reserved before its bytes are written, GC
/// leaves reserved blobs alone and marks the ones it frees, a marked blob cannot be reserved or
/// referenced until its row is dropped, and a failed writer releases only its own reservation.
pub async fn blob_reservations(s: Store) {
    bucket(&s, "bkt", "alice").await;
    let blob = digests("r").sha256;
    let later = || now_ms() + 1;
    // A reservation makes an unreferenced row that GC leaves alone, whatever its grace.
    assert!(s.reserve_blob(&blob, 5, "w1").await.unwrap(), "a new row");
    assert_eq!(s.blob_inline(&blob).await.unwrap(), Some(false));
    assert_eq!(s.forget_blob(&blob, later()).await.unwrap(), None, "reserved");
    let (blobs, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(blobs, [StoredBlob { id: blob.clone(), size: 5, referenced: false }], "not required yet");
    // The commit references it; the writer's release (or `end_claim`) ends the reservation.
    put(&s, "bkt", "k", "r", 5).await;
    assert_eq!(blob_refs(&s).await.get(&blob), Some(&5));
    assert_eq!(s.release_blob(&blob, "w1").await.unwrap(), None, "referenced: nothing to release");
    s.delete_object("bkt", "k").await.unwrap();
    // Unreferenced and unreserved: GC marks it, and while marked nobody reserves or references it.
    assert_eq!(s.forget_blob(&blob, later()).await.unwrap(), Some(ForgottenBlob { size: 5, inline: false }));
    assert_eq!(s.forget_blob(&blob, later()).await.unwrap(), None, "one deleter at a time");
    assert!(matches!(s.reserve_blob(&blob, 5, "w2").await, Err(StoreError::Conflict(_))));
    assert!(matches!(
        s.put_object(write("bkt", "k2", ContentSource::New(new_content("r", 5)))).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.get_object("bkt", "k2").await.unwrap().is_none(), "the refused write left nothing");
    // Its bytes deleted, the row goes; then the blob is new again.
    s.drop_blob(&blob).await.unwrap();
    assert_eq!(s.blob_inline(&blob).await.unwrap(), None);
    assert!(s.reserve_blob(&blob, 5, "w2").await.unwrap());
    // Two writers: the second finds the row (the bytes may be the first one's), and the
    // first one's release does not take the bytes away once the second reserved them.
    assert!(!s.reserve_blob(&blob, 5, "w3").await.unwrap(), "the row was there");
    assert_eq!(s.release_blob(&blob, "w2").await.unwrap(), None);
    assert_eq!(s.release_blob(&blob, "w3").await.unwrap(), Some(ForgottenBlob { size: 5, inline: false }));
    assert!(matches!(s.reserve_blob(&blob, 5, "w4").await, Err(StoreError::Conflict(_))), "being deleted");
    // Its bytes could not be deleted (the BlobStore failed): unmarked, the row is an
    // unreferenced one again, reservable at once and freed by a later GC pass.
    s.unmark_blob(&blob).await.unwrap();
    assert!(!s.reserve_blob(&blob, 5, "w4").await.unwrap(), "reservable again, the row kept");
    assert_eq!(s.release_blob(&blob, "w4").await.unwrap(), Some(ForgottenBlob { size: 5, inline: false }));
    s.unmark_blob(&blob).await.unwrap();
    assert_eq!(s.forget_blob(&blob, now_ms() - 60_000).await.unwrap(), None, "unreferenced since the unmarking");
    assert_eq!(s.blob_inline(&blob).await.unwrap(), Some(false));
    s.drop_blob(&blob).await.unwrap();
    assert_eq!(s.blob_inline(&blob).await.unwrap(), Some(false), "only a marked row is dropped");
    assert!(s.forget_blob(&blob, later()).await.unwrap().is_some(), "a later GC pass frees it");
    s.drop_blob(&blob).await.unwrap();
    assert_eq!(s.blob_inline(&blob).await.unwrap(), None);
    // A referenced blob's row is never dropped.
    put(&s, "bkt", "k3", "r", 5).await;
    s.drop_blob(&blob).await.unwrap();
    assert_eq!(blob_refs(&s).await.get(&blob), Some(&5));
    // Reserving an inline blob changes nothing.
    let small = digests("small-r").sha256;
    s.put_object(write(
        "bkt",
        "i",
        ContentSource::New(NewContent { extents: vec![inline_extent("small-r", b"abc")], ..new_content("small-r", 3) }),
    ))
    .await
    .unwrap();
    s.reserve_blob(&small, 3, "w5").await.unwrap();
    assert_eq!(s.blob_inline(&small).await.unwrap(), Some(true));
    assert_eq!(s.release_blob(&small, "w5").await.unwrap(), None);
    // Two writers of the same bytes: the first one's commit and the end of its claim leave
    // the second one's reservation in place, so GC keeps the bytes until the second commits,
    // even with no grace and the first one's object deleted meanwhile.
    let shared = digests("shared-r").sha256;
    assert!(s.reserve_blob(&shared, 5, "a").await.unwrap());
    assert!(!s.reserve_blob(&shared, 5, "b").await.unwrap());
    put(&s, "bkt", "first", "shared-r", 5).await;
    s.end_claim(&shared, "a").await.unwrap();
    s.delete_object("bkt", "first").await.unwrap();
    assert!(!s.unreferenced_blobs(later(), 100).await.unwrap().contains(&shared), "claimed: no GC candidate");
    assert_eq!(s.forget_blob(&shared, later()).await.unwrap(), None, "the second writer's claim holds");
    assert_eq!(s.release_blob(&shared, "a").await.unwrap(), None, "another writer's claim holds");
    put(&s, "bkt", "second", "shared-r", 5).await;
    s.end_claim(&shared, "b").await.unwrap();
    s.end_claim(&shared, "unknown").await.unwrap();
    s.delete_object("bkt", "second").await.unwrap();
    assert!(s.unreferenced_blobs(later(), 100).await.unwrap().contains(&shared));
    assert!(s.forget_blob(&shared, later()).await.unwrap().is_some(), "no claim left: GC frees it");
    s.drop_blob(&shared).await.unwrap();
    assert_eq!(s.blob_inline(&shared).await.unwrap(), None);
    let (_, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// An extent of a new blob whose bytes the write brings: kept inline.
fn inline_extent(seed: &str, data: &'static [u8]) -> Extent {
    Extent {
        data: Some(bytes::Bytes::from_static(data)),
        ..Extent::stored(digests(seed).sha256, data.len() as u64, digests(seed))
    }
}

/// Inline blobs: the bytes a write brings are kept with the blob's row, read back with a
/// single-extent content, shared by later writes of the same blob (which bring them again and
/// change nothing), assembled from inline parts without copying, never reported as BlobStore
/// blobs, counted in the stats, and freed with their row. A blob already in the BlobStore
/// stays there when a later write brings its bytes.
pub async fn inline_blobs(s: Store) {
    bucket(&s, "bkt", "alice").await;
    let d = digests("small");
    let content = |data: &'static [u8]| NewContent {
        size: data.len() as u64,
        etag: d.md5.clone(),
        extents: vec![inline_extent("small", data)],
        digests: Some(d.clone()),
        ufile_etag: None,
    };
    let a = s.put_object(write("bkt", "a", ContentSource::New(content(b"hello")))).await.unwrap();
    let c = s.get_content(a.content_id).await.unwrap().unwrap();
    assert!(c.extents[0].inline && c.extents[0].data.is_none(), "{c:?}");
    let c = s.get_content_with_bytes(a.content_id).await.unwrap().unwrap();
    assert_eq!(c.extents[0].data.as_deref(), Some(&b"hello"[..]));
    assert_eq!(s.get_object_for_read("bkt", "a").await.unwrap(), Some((a.clone(), c.clone())));
    assert_eq!(s.get_object_for_read("bkt", "none").await.unwrap(), None);
    assert_eq!(s.inline_blob(&d.sha256).await.unwrap().as_deref(), Some(&b"hello"[..]));
    assert_eq!(s.blob_inline(&d.sha256).await.unwrap(), Some(true));
    assert_eq!(s.inline_blob(&digests("none").sha256).await.unwrap(), None);
    // A second object of the same bytes: one blob, two references, the bytes kept once.
    let b = s.put_object(write("bkt", "b", ContentSource::New(content(b"hello")))).await.unwrap();
    assert!(s.get_content(b.content_id).await.unwrap().unwrap().extents[0].inline);
    let (blobs, problems) = s.check().await.unwrap();
    assert!(blobs.is_empty() && problems.is_empty(), "inline blobs are not the BlobStore's: {blobs:?} {problems:?}");
    let st = s.stats().await.unwrap();
    assert_eq!((st.blobs, st.inline_blobs, st.inline_bytes, st.physical_bytes), (1, 1, 5, 5));

    // A content read brings an inline blob's bytes up to 128 KiB; a larger one's are left to
    // `inline_blob` (they are read on a reader thread, not the caller's).
    let put_inline = |key: &'static str, byte: u8, len: usize| {
        let data: &'static [u8] = Box::leak(vec![byte; len].into_boxed_slice());
        let content = NewContent {
            size: len as u64,
            etag: digests(key).md5,
            extents: vec![inline_extent(key, data)],
            digests: Some(digests(key)),
            ufile_etag: None,
        };
        let s = s.clone();
        async move { (s.put_object(write("bkt", key, ContentSource::New(content))).await.unwrap(), data) }
    };
    let (l, large) = put_inline("large", 7, (128 << 10) + 1).await;
    let lc = s.get_content_with_bytes(l.content_id).await.unwrap().unwrap();
    assert!(lc.extents[0].inline && lc.extents[0].data.is_none(), "{lc:?}");
    assert_eq!(s.get_object_for_read("bkt", "large").await.unwrap().map(|(_, c)| c), Some(lc));
    assert_eq!(s.inline_blob(&digests("large").sha256).await.unwrap().as_deref(), Some(large));
    let (e, exactly) = put_inline("exactly", 8, 128 << 10).await;
    let ec = s.get_content_with_bytes(e.content_id).await.unwrap().unwrap();
    assert_eq!(ec.extents[0].data.as_deref(), Some(exactly));
    assert_eq!(s.get_object_for_read("bkt", "exactly").await.unwrap(), Some((e.clone(), ec.clone())));
    for k in ["large", "exactly"] {
        s.delete_object("bkt", k).await.unwrap();
    }

    // A blob already in the BlobStore stays there, whatever a later write brings.
    put(&s, "bkt", "file", "filed", 4).await;
    let f = s
        .put_object(write(
            "bkt",
            "file2",
            ContentSource::New(NewContent {
                extents: vec![inline_extent("filed", b"abcd")],
                ..new_content("filed", 4)
            }),
        ))
        .await
        .unwrap();
    let fc = s.get_content_with_bytes(f.content_id).await.unwrap().unwrap();
    assert!(!fc.extents[0].inline && fc.extents[0].data.is_none(), "{fc:?}");
    assert_eq!(s.inline_blob(&digests("filed").sha256).await.unwrap(), None);
    assert_eq!(blob_refs(&s).await.get(&digests("filed").sha256), Some(&4));

    // Parts that bring their bytes are inline; completion lists them as inline extents.
    s.create_upload(upload("u1", "bkt", "big", "alice", UploadKind::S3)).await.unwrap();
    for (n, seed, data) in [(1u32, "p1", &b"one"[..]), (2, "p2", &b"two!"[..])] {
        let rec = s
            .put_part(PartWrite {
                data: Some(bytes::Bytes::from_static(data)),
                ..part("u1", n, seed, data.len() as u64)
            })
            .await
            .unwrap();
        assert!(rec.inline && rec.extent().inline, "{rec:?}");
    }
    assert!(s.list_parts("u1", 0, 10).await.unwrap().iter().all(|p| p.inline));
    let big = s.complete_upload(complete("u1", &[(1, "p1"), (2, "p2")])).await.unwrap();
    assert!(s.list_parts("u1", 0, 10).await.unwrap().is_empty(), "completed");
    let bc = s.get_content_with_bytes(big.content_id).await.unwrap().unwrap();
    assert_eq!(bc.extents.iter().map(|e| (e.inline, e.data.is_some())).collect::<Vec<_>>(), [(true, false); 2]);
    // Nor does a GET's read: only a content of one inline blob comes with its bytes.
    assert_eq!(s.get_object_for_read("bkt", "big").await.unwrap(), Some((big.clone(), bc.clone())));
    // A file blob's content comes without bytes (none are kept inline under its id).
    let (fo, fcr) = s.get_object_for_read("bkt", "file2").await.unwrap().unwrap();
    assert_eq!((fo, fcr), (f.clone(), fc.clone()));
    assert_eq!(s.inline_blob(&digests("p2").sha256).await.unwrap().as_deref(), Some(&b"two!"[..]));

    // Freed with the row once unreferenced and past the cutoff.
    for k in ["a", "b", "big"] {
        s.delete_object("bkt", k).await.unwrap();
    }
    let later = now_ms() + 1;
    assert_eq!(s.forget_blob(&d.sha256, later).await.unwrap(), Some(ForgottenBlob { size: 5, inline: true }));
    assert_eq!(s.inline_blob(&d.sha256).await.unwrap(), None);
    for seed in ["p1", "p2", "large", "exactly"] {
        assert!(s.forget_blob(&digests(seed).sha256, later).await.unwrap().is_some_and(|f| f.inline));
    }
    let (blobs, problems) = s.check().await.unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(blobs, [StoredBlob { id: digests("filed").sha256, size: 4, referenced: true }]);
    assert_eq!(s.stats().await.unwrap().inline_blobs, 0);
}
