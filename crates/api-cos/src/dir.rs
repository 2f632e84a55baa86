//! Directories over the core's file tree: create (the parent must exist), stat, list (paged
//! by `context`; v3 adds `pattern` and `order`), delete (only when empty). A created
//! directory is the empty object `<path>/` (it keeps `biz_attr`); keys under a path put
//! through another protocol imply the directory.

use chuan_core::store::{
    EntryKinds, FolderQuery, ObjectMeta, ObjectRecord, OrderBy, TreeEntry, TreeOrder, WriteCondition,
};
use chuan_core::{CoreError, PutTarget};
use serde_json::json;

use crate::error::{CosError, CosResult};
use crate::{ok, CosDialect, Ctx, Resp};

/// Attributes COS keeps with an object (system attributes: never user metadata).
pub(crate) const BIZ_ATTR: &str = "cos-biz-attr";
pub(crate) const CTIME: &str = "cos-ctime";
pub(crate) const SHA1: &str = "cos-sha1";

pub(crate) fn ctime_of(rec: &ObjectRecord) -> i64 {
    rec.meta.attrs.get(CTIME).and_then(|c| c.parse().ok()).unwrap_or(rec.modified_ms / 1000)
}

impl CosDialect {
    pub(crate) async fn create_dir(&self, ctx: &Ctx, biz_attr: &str) -> CosResult<Resp> {
        if !ctx.t.is_dir() {
            return Err(CosError::new(-161, "ERROR_CMD_PARAM_PATH_DIR_MISSING_SLASH: a directory path ends with '/'"));
        }
        let key = ctx.t.key().to_owned();
        if key.is_empty() {
            return Err(CosError::new(-178, "ERROR_CMD_COS_PATH_CONFLICT: the root directory exists"));
        }
        self.check_parent(ctx, &key).await?;
        let mut meta = ObjectMeta::default();
        meta.attrs.insert(BIZ_ATTR.into(), biz_attr.to_owned());
        let target = PutTarget {
            bucket: ctx.t.bucket.clone(),
            key,
            meta,
            condition: Some(WriteCondition::Absent),
            tree: chuan_core::store::TreeRule::Folders,
        };
        match self.engine.put_empty(&ctx.p, target).await {
            Err(CoreError::PreconditionFailed) => {
                Err(CosError::new(-178, "ERROR_CMD_COS_PATH_CONFLICT: the directory already exists"))
            }
            r => {
                let rec = r?;
                Ok(ok(Some(json!({"ctime": rec.modified_ms / 1000}))))
            }
        }
    }

    pub(crate) async fn stat_dir(&self, ctx: &Ctx) -> CosResult<Resp> {
        let key = ctx.t.key();
        if key.is_empty() {
            let b = self.engine.check_bucket(&ctx.p, &ctx.t.bucket).await?;
            let t = b.created_ms / 1000;
            return Ok(ok(Some(json!({"biz_attr": "", "ctime": t, "mtime": t}))));
        }
        // `biz_attr` lives with the marker a `create` made; implied folders have none.
        let marker = match self.engine.head_object(&ctx.p, &ctx.t.bucket, key).await {
            Ok(rec) => Some(rec),
            Err(CoreError::NoSuchKey) => None,
            Err(e) => return Err(e.into()),
        };
        let folder = self.engine.entry(&ctx.p, &ctx.t.bucket, key).await?;
        let ctime = marker.as_ref().map_or(folder.created_ms() / 1000, ctime_of);
        let biz_attr = marker.and_then(|m| m.meta.attrs.get(BIZ_ATTR).cloned()).unwrap_or_default();
        Ok(ok(Some(json!({"biz_attr": biz_attr, "ctime": ctime, "mtime": folder.modified_ms() / 1000}))))
    }

    /// Only an empty directory goes (-173 otherwise).
    pub(crate) async fn delete_dir(&self, ctx: &Ctx) -> CosResult<Resp> {
        let key = ctx.t.key();
        if key.is_empty() {
            return Err(CosError::invalid_path("the root directory cannot be deleted"));
        }
        self.engine.delete_entry(&ctx.p, &ctx.t.bucket, key, false).await?;
        Ok(ok(None))
    }

    /// `GET <dir>/[prefix]?op=list&num=N&context=C` (v3: `&pattern=&order=`): the entries of
    /// `<dir>/` whose names start with `prefix`, in name order (`order=1`: descending), paged
    /// by the core's cursor in `context`.
    pub(crate) async fn list(&self, ctx: &Ctx, query: &chuan_api_common::Query) -> CosResult<Resp> {
        let get = |n: &str| query.get(n).filter(|v| !v.is_empty()).map(str::to_owned);
        let num: usize = match get("num") {
            None => 199,
            Some(n) => {
                n.parse().map_err(|_| CosError::new(-170, "ERROR_CMD_COS_INVALID_LIST_NUM: num must be a number"))?
            }
        };
        if !(1..=1000).contains(&num) {
            return Err(CosError::new(-170, "ERROR_CMD_COS_INVALID_LIST_NUM: num must be 1 to 1000"));
        }
        let kinds = match get("pattern").as_deref() {
            None | Some("eListBoth") => EntryKinds::All,
            Some("eListDirOnly") => EntryKinds::Folders,
            Some("eListFileOnly") => EntryKinds::Files,
            Some(other) => return Err(CosError::param(format!("unknown pattern {other}"))),
        };
        let descending = match get("order").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => return Err(CosError::param(format!("order is 0 or 1, not {other}"))),
        };
        // `<dir>/<prefix>`: the directory listed and the start of the names wanted.
        let full = ctx.t.key();
        let dir = &full[..full.rfind('/').map_or(0, |i| i + 1)];
        if !self.dir_exists(ctx, dir).await? {
            return Err(CosError::new(-166, "ERROR_CMD_COS_INDEX_ERROR: the directory does not exist"));
        }
        let q = FolderQuery {
            folder: dir.to_owned(),
            name_prefix: full[dir.len()..].to_owned(),
            order: TreeOrder { by: OrderBy::Name, descending },
            kinds,
        };
        let page = self.engine.list_folder(&ctx.p, &ctx.t.bucket, &q, get("context").as_deref(), num).await?;
        let mut infos = Vec::with_capacity(page.items.len());
        let mut dircount = 0;
        for e in &page.items {
            match e {
                TreeEntry::File(rec) => infos.push(self.file_info(ctx, rec, e.name(), false).await?),
                TreeEntry::Folder(f) => {
                    dircount += 1;
                    infos.push(json!({"name": e.name(), "ctime": f.created_ms / 1000, "mtime": f.modified_ms / 1000}));
                }
            }
        }
        Ok(ok(Some(json!({
            "context": page.next.clone().unwrap_or_default(),
            "listover": page.next.is_none(),
            "infos": infos,
            "dircount": dircount,
            "filecount": infos.len() - dircount,
        }))))
    }
}
