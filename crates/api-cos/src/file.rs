//! Files: simple upload (≤ 20 MB, `sha` verified, `insertOnly`), stat, update (biz_attr,
//! authority, custom_headers; v3's `flag` bitmask), move and copy (`dest_fileid`,
//! `to_over_write`; copies share content), delete.

use chuan_core::store::{ObjectAccess, ObjectMeta, ObjectRecord, OnConflict, WriteCondition};
use chuan_core::{CoreError, PutTarget};
use serde_json::{json, Map, Value};

use crate::dir::{ctime_of, BIZ_ATTR, CTIME, SHA1};
use crate::error::{CosError, CosResult};
use crate::{ok, CosDialect, Ctx, Form, Resp};

/// COS `authority` values and the object access each stands for.
const AUTHORITIES: &[(&str, ObjectAccess)] = &[
    ("eInvalid", ObjectAccess::Inherit),
    ("eWRPrivate", ObjectAccess::Private),
    ("eWPrivateRPublic", ObjectAccess::PublicRead),
];

fn authority_of(access: ObjectAccess) -> &'static str {
    AUTHORITIES.iter().find(|(_, a)| *a == access).map_or("eInvalid", |(name, _)| name)
}

/// `custom_headers` a file may carry, and where each lives in the object's metadata.
const CUSTOM_HEADERS: &[&str] =
    &["Cache-Control", "Content-Type", "Content-Disposition", "Content-Language", "Content-Encoding"];

fn header_slot<'a>(meta: &'a mut ObjectMeta, name: &str) -> Option<&'a mut Option<String>> {
    match name.to_ascii_lowercase().as_str() {
        "cache-control" => Some(&mut meta.cache_control),
        "content-type" => Some(&mut meta.content_type),
        "content-disposition" => Some(&mut meta.content_disposition),
        "content-language" => Some(&mut meta.content_language),
        "content-encoding" => Some(&mut meta.content_encoding),
        _ => None,
    }
}

/// The file's custom headers as COS shows them (`x-cos-meta-*` from user metadata).
pub(crate) fn custom_headers(meta: &ObjectMeta) -> Map<String, Value> {
    let mut m = Map::new();
    let mut copy = meta.clone();
    for name in CUSTOM_HEADERS {
        if let Some(v) = header_slot(&mut copy, name).and_then(|s| s.clone()) {
            m.insert((*name).to_owned(), Value::String(v));
        }
    }
    for (k, v) in &meta.user {
        m.insert(format!("x-cos-meta-{k}"), Value::String(v.clone()));
    }
    m
}

impl CosDialect {
    /// A file's attributes; `exact_sha` computes the SHA-1 now if it is still pending
    /// (content assembled from parts whose whole digest the background job has not reached).
    pub(crate) async fn file_info(
        &self,
        ctx: &Ctx,
        rec: &ObjectRecord,
        name: &str,
        exact_sha: bool,
    ) -> CosResult<Value> {
        let mut sha = rec.meta.attrs.get(SHA1).cloned().unwrap_or_default();
        if sha.is_empty() {
            let content = self.engine.content_of(rec).await?;
            sha = match (&content.digests, exact_sha) {
                (Some(d), _) => d.sha1.clone(),
                (None, true) => self.engine.full_digests(&content).await?.0.sha1,
                (None, false) => String::new(),
            };
        }
        let urls = ctx.t.urls(&rec.key);
        Ok(json!({
            "name": name,
            "biz_attr": rec.meta.attrs.get(BIZ_ATTR).cloned().unwrap_or_default(),
            "filesize": rec.size,
            "filelen": rec.size,
            "sha": sha,
            "ctime": ctime_of(rec),
            "mtime": rec.modified_ms / 1000,
            "access_url": urls["access_url"],
            "source_url": urls["source_url"],
            "authority": authority_of(rec.meta.access),
            "custom_headers": custom_headers(&rec.meta),
        }))
    }

    pub(crate) async fn stat_file(&self, ctx: &Ctx) -> CosResult<Resp> {
        let rec = self.engine.head_object(&ctx.p, &ctx.t.bucket, ctx.t.key()).await?;
        let name = rec.key.rsplit('/').next().unwrap_or("").to_owned();
        Ok(ok(Some(self.file_info(ctx, &rec, &name, true).await?)))
    }

    /// Checks a file path for writing: not a directory path, inside an existing directory.
    pub(crate) async fn check_file_path(&self, ctx: &Ctx, key: &str) -> CosResult<()> {
        if key.is_empty() || key.ends_with('/') {
            return Err(CosError::new(
                -160,
                "ERROR_CMD_PARAM_PAHT_FILE_SURPLUS_SLASH: a file path must not end with '/'",
            ));
        }
        chuan_core::names::validate_key(key)?;
        self.check_parent(ctx, key).await
    }

    /// `op=upload`: `filecontent` with optional `sha` (SHA-1 hex), `biz_attr`, `insertOnly`.
    pub(crate) async fn simple_upload(&self, ctx: &Ctx, form: Form) -> CosResult<Resp> {
        let key = ctx.t.key().to_owned();
        self.check_file_path(ctx, &key).await?;
        let insert_only = form.get("insertOnly") != Some("0");
        let biz_attr = form.get("biz_attr").unwrap_or("").to_owned();
        let want_sha = form.get("sha").map(str::to_ascii_lowercase);
        let staged = form
            .content
            .ok_or_else(|| CosError::new(-5990, "ERROR_CGI_MISSING_FILECONTENT: filecontent is missing"))?;
        if want_sha.as_deref().is_some_and(|s| s != staged.digests.sha1) {
            return Err(CosError::new(-5984, "ERROR_CGI_SHA_NOT_MATCH: the sha does not match the file content"));
        }
        let mut meta = ObjectMeta::default();
        meta.attrs.insert(BIZ_ATTR.into(), biz_attr);
        let target = PutTarget {
            bucket: ctx.t.bucket.clone(),
            key: key.clone(),
            meta,
            condition: insert_only.then_some(WriteCondition::Absent),
            tree: chuan_core::store::TreeRule::Folders,
        };
        match self.engine.commit_put(&ctx.p, target, staged).await {
            Err(CoreError::PreconditionFailed) => Err(CosError::same_file()),
            r => {
                r?;
                Ok(ok(Some(ctx.t.urls(&key))))
            }
        }
    }

    pub(crate) async fn delete_file(&self, ctx: &Ctx) -> CosResult<Resp> {
        if self.engine.delete_object(&ctx.p, &ctx.t.bucket, ctx.t.key()).await?.is_none() {
            return Err(CosError::file_not_found());
        }
        Ok(ok(None))
    }

    /// `op=update` of a file or directory. v3 sends `flag` saying which fields apply (0x01
    /// biz_attr, 0x40 custom_headers, 0x80 authority); v4 sends just the fields.
    pub(crate) async fn update(&self, ctx: &Ctx, v: &Value) -> CosResult<Resp> {
        let flag: Option<u64> =
            v.get("flag").and_then(|f| f.as_u64().or_else(|| f.as_str().and_then(|s| s.trim().parse().ok())));
        let wants = |bit: u64, field: &str| match flag {
            Some(f) => f & bit != 0,
            None => v.get(field).is_some_and(|x| !x.is_null()),
        };
        let rec = self.engine.head_object(&ctx.p, &ctx.t.bucket, ctx.t.key()).await?;
        let mut meta = rec.meta.clone();
        meta.attrs.entry(CTIME.into()).or_insert_with(|| ctime_of(&rec).to_string());
        if wants(0x01, "biz_attr") {
            meta.attrs.insert(BIZ_ATTR.into(), v["biz_attr"].as_str().unwrap_or("").to_owned());
        }
        if wants(0x80, "authority") {
            let a = v["authority"].as_str().unwrap_or("");
            meta.access =
                AUTHORITIES.iter().find(|(name, _)| *name == a).map(|(_, access)| *access).ok_or_else(|| {
                    CosError::new(-4002, "ErrParamInvalid: authority is eInvalid, eWRPrivate or eWPrivateRPublic")
                })?;
        }
        if wants(0x40, "custom_headers") {
            let headers = v["custom_headers"]
                .as_object()
                .ok_or_else(|| CosError::new(-4002, "ErrParamInvalid: custom_headers must be an object"))?;
            for (name, value) in headers {
                let value = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if let Some(slot) = header_slot(&mut meta, name) {
                    *slot = Some(value);
                } else if let Some(user) = name.to_ascii_lowercase().strip_prefix("x-cos-meta-") {
                    if user.is_empty() {
                        return Err(CosError::new(-4002, format!("ErrParamInvalid: bad custom header {name}")));
                    }
                    meta.user.insert(user.to_owned(), value);
                } else {
                    return Err(CosError::new(
                        -4002,
                        format!("ErrParamInvalid: {name} is not a custom header (Cache-Control, Content-Type, Content-Disposition, Content-Language, Content-Encoding, x-cos-meta-*)"),
                    ));
                }
            }
        }
        match self.engine.update_object_meta(&ctx.p, &rec, meta).await {
            Err(CoreError::PreconditionFailed) => {
                Err(CosError::new(-4024, "ErrOffGoBack: the file changed during the update; retry"))
            }
            r => {
                r?;
                Ok(ok(None))
            }
        }
    }

    /// `dest_fileid` (already decoded as its carrier says: once from the v4 query, not at all
    /// from the v3 JSON body): from the bucket root when it starts with `/`, else beside the
    /// source.
    fn destination(&self, ctx: &Ctx, dest: &str) -> CosResult<String> {
        let dest = dest.trim();
        if dest.is_empty() {
            return Err(CosError::param("dest_fileid is missing"));
        }
        let key = match dest.strip_prefix('/') {
            Some(abs) => abs.to_owned(),
            None => format!("{}{dest}", crate::parent_of(ctx.t.key())),
        };
        if key.split('/').any(|s| s == "." || s == "..") || key.contains("//") || key.contains('\0') {
            return Err(CosError::invalid_path("'.', '..', empty segments and NUL are not allowed in paths"));
        }
        Ok(key)
    }

    pub(crate) async fn move_file(&self, ctx: &Ctx, dest: &str, overwrite: bool) -> CosResult<Resp> {
        let src = ctx.t.key().to_owned();
        if ctx.t.is_dir() {
            return Err(CosError::new(-5992, "ERROR_CGI_REQ_PARAM: only files can be moved"));
        }
        let to = self.destination(ctx, dest)?;
        self.check_file_path(ctx, &to).await?;
        self.engine.head_object(&ctx.p, &ctx.t.bucket, &src).await?;
        if to == src {
            return Ok(ok(None));
        }
        // With `to_over_write` the destination is replaced in the same transaction.
        let on_conflict = if overwrite { OnConflict::Replace } else { OnConflict::Refuse };
        match self.engine.move_entry(&ctx.p, &ctx.t.bucket, &src, &to, on_conflict).await {
            Err(CoreError::AlreadyExists) => Err(CosError::dest_exists()),
            r => {
                r?;
                Ok(ok(None))
            }
        }
    }

    pub(crate) async fn copy_file(&self, ctx: &Ctx, dest: &str, overwrite: bool) -> CosResult<Resp> {
        let src = ctx.t.key().to_owned();
        if ctx.t.is_dir() {
            return Err(CosError::new(-5992, "ERROR_CGI_REQ_PARAM: only files can be copied"));
        }
        let to = self.destination(ctx, dest)?;
        self.check_file_path(ctx, &to).await?;
        self.engine.head_object(&ctx.p, &ctx.t.bucket, &src).await?;
        let target = PutTarget {
            bucket: ctx.t.bucket.clone(),
            key: to,
            meta: ObjectMeta::default(),
            condition: (!overwrite).then_some(WriteCondition::Absent),
            tree: chuan_core::store::TreeRule::Folders,
        };
        match self.engine.copy_object(&ctx.p, &ctx.t.bucket, &src, target, false).await {
            Err(CoreError::PreconditionFailed) => Err(CosError::dest_exists()),
            r => {
                r?;
                Ok(ok(None))
            }
        }
    }
}
