//! Directories: create (the parent must exist), stat, list (paged by `context`; v3 adds
//! `pattern` and `order`), delete (only when empty). A directory is the empty object
//! `<path>/`; keys under a path put through another protocol imply the directory.

use chuan_core::store::{now_ms, ObjectMeta, ObjectRecord, WriteCondition};
use chuan_core::{CoreError, ListQuery, PutTarget};
use serde_json::{json, Value};

use crate::error::{CosError, CosResult};
use crate::{ok, CosDialect, Ctx, Resp};

/// Attributes COS keeps with an object (system attributes: never user metadata).
pub(crate) const BIZ_ATTR: &str = "cos-biz-attr";
pub(crate) const CTIME: &str = "cos-ctime";
pub(crate) const SHA1: &str = "cos-sha1";

pub(crate) fn ctime_of(rec: &ObjectRecord) -> i64 {
    rec.meta.attrs.get(CTIME).and_then(|c| c.parse().ok()).unwrap_or(rec.modified_ms / 1000)
}

/// One listing entry.
struct Entry {
    key: String,
    dir: bool,
    info: Value,
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
        let target =
            PutTarget { bucket: ctx.t.bucket.clone(), key, meta, condition: Some(WriteCondition::Absent), tree: true };
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
        match self.engine.head_object(&ctx.p, &ctx.t.bucket, key).await {
            Ok(rec) => Ok(ok(Some(json!({
                "biz_attr": rec.meta.attrs.get(BIZ_ATTR).cloned().unwrap_or_default(),
                "ctime": ctime_of(&rec),
                "mtime": rec.modified_ms / 1000,
            })))),
            Err(CoreError::NoSuchKey) => {
                // Implied by keys under it: its times are those of its first entry.
                let q = ListQuery { prefix: key.to_owned(), delimiter: None, after: None, max_keys: 1 };
                let page = self.engine.list_objects(&ctx.p, &ctx.t.bucket, &q).await?;
                let first = page.objects.first().ok_or_else(CosError::file_not_found)?;
                let t = first.modified_ms / 1000;
                Ok(ok(Some(json!({"biz_attr": "", "ctime": t, "mtime": t}))))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn delete_dir(&self, ctx: &Ctx) -> CosResult<Resp> {
        let key = ctx.t.key();
        if key.is_empty() {
            return Err(CosError::invalid_path("the root directory cannot be deleted"));
        }
        let q = ListQuery { prefix: key.to_owned(), delimiter: None, after: Some(key.to_owned()), max_keys: 1 };
        if !self.engine.list_objects(&ctx.p, &ctx.t.bucket, &q).await?.objects.is_empty() {
            return Err(CosError::new(-173, "ERROR_CMD_COS_DIR_NOT_EMPTY: delete what the directory holds first"));
        }
        if self.engine.delete_object(&ctx.p, &ctx.t.bucket, key).await?.is_none() {
            return Err(CosError::file_not_found());
        }
        Ok(ok(None))
    }

    /// `GET <dir>/[prefix]?op=list&num=N&context=C` (v3: `&pattern=&order=`).
    pub(crate) async fn list(&self, ctx: &Ctx, query: Option<&str>) -> CosResult<Resp> {
        let get = |n: &str| chuan_api_common::query_param(query, n).filter(|v| !v.is_empty());
        let num: usize = match get("num") {
            None => 199,
            Some(n) => {
                n.parse().map_err(|_| CosError::new(-170, "ERROR_CMD_COS_INVALID_LIST_NUM: num must be a number"))?
            }
        };
        if !(1..=1000).contains(&num) {
            return Err(CosError::new(-170, "ERROR_CMD_COS_INVALID_LIST_NUM: num must be 1 to 1000"));
        }
        let (dirs, files) = match get("pattern").as_deref() {
            None | Some("eListBoth") => (true, true),
            Some("eListDirOnly") => (true, false),
            Some("eListFileOnly") => (false, true),
            Some(other) => return Err(CosError::param(format!("unknown pattern {other}"))),
        };
        let descending = get("order").as_deref() == Some("1");
        let context = get("context");
        // `<dir>/<prefix>`: the directory listed and the start of the names wanted.
        let full = ctx.t.key();
        let dir = &full[..full.rfind('/').map_or(0, |i| i + 1)];
        if !self.dir_exists(ctx, dir).await? {
            return Err(CosError::new(-166, "ERROR_CMD_COS_INDEX_ERROR: the directory does not exist"));
        }
        let (entries, next) = if descending {
            let offset: usize = match context.as_deref() {
                None => 0,
                Some(c) => c
                    .strip_prefix("desc:")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| CosError::param("bad context"))?,
            };
            let mut all = Vec::new();
            let mut after = (!dir.is_empty()).then(|| dir.to_owned());
            loop {
                let (mut page, more) = self.list_page(ctx, dir, full, after.clone(), 1000, dirs, files).await?;
                all.append(&mut page);
                if more.is_none() || all.len() > 100_000 {
                    break;
                }
                after = more;
            }
            let page: Vec<Entry> = all.into_iter().rev().skip(offset).take(num + 1).collect();
            let more = page.len() > num;
            let page: Vec<Entry> = page.into_iter().take(num).collect();
            (page, more.then(|| format!("desc:{}", offset + num)))
        } else {
            let after = context.or_else(|| (!full.is_empty()).then(|| dir.to_owned()).filter(|d| !d.is_empty()));
            self.list_page(ctx, dir, full, after, num, dirs, files).await?
        };
        let dircount = entries.iter().filter(|e| e.dir).count();
        let filecount = entries.len() - dircount;
        let infos: Vec<Value> = entries.into_iter().map(|e| e.info).collect();
        Ok(ok(Some(json!({
            "context": next.clone().unwrap_or_default(),
            "listover": next.is_none(),
            "infos": infos,
            "dircount": dircount,
            "filecount": filecount,
        }))))
    }

    /// One ascending page of entries under `dir` starting with `full`, after `after`: the
    /// entries and where the next page starts (`None` at the end).
    #[allow(clippy::too_many_arguments)]
    async fn list_page(
        &self,
        ctx: &Ctx,
        dir: &str,
        full: &str,
        after: Option<String>,
        num: usize,
        dirs: bool,
        files: bool,
    ) -> CosResult<(Vec<Entry>, Option<String>)> {
        let q = ListQuery { prefix: full.to_owned(), delimiter: Some("/".into()), after, max_keys: num };
        let page = self.engine.list_objects(&ctx.p, &ctx.t.bucket, &q).await?;
        let mut entries = Vec::with_capacity(page.objects.len() + page.common_prefixes.len());
        if files {
            for o in page.objects.iter().filter(|o| o.key != dir) {
                let info = self.file_info(ctx, o, &o.key[dir.len()..], false).await?;
                entries.push(Entry { key: o.key.clone(), dir: false, info });
            }
        }
        if dirs {
            for cp in &page.common_prefixes {
                let name = cp[dir.len()..].trim_end_matches('/');
                let t = match self.engine.head_object(&ctx.p, &ctx.t.bucket, cp).await {
                    Ok(rec) => (ctime_of(&rec), rec.modified_ms / 1000),
                    Err(CoreError::NoSuchKey) => (now_ms() / 1000, now_ms() / 1000),
                    Err(e) => return Err(e.into()),
                };
                entries.push(Entry {
                    key: cp.clone(),
                    dir: true,
                    info: json!({"name": name, "ctime": t.0, "mtime": t.1}),
                });
            }
        }
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((entries, if page.truncated { page.next_after } else { None }))
    }
}
