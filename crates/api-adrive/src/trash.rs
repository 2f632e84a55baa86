//! The recycle bin: trash (restorable), restore, list, and permanent delete, over the core's
//! trash (kept until restored, deleted, or purged by GC after the retention).

use chuan_core::Principal;
use http::StatusCode;
use serde_json::{json, Value};

use crate::error::AdriveError;
use crate::error::AdriveResult;
use crate::files::{ok, ROOT};
use crate::wire::{self, required, str_field};
use crate::{AdriveDialect, Reply};

/// Most items one recycle-bin page lists.
const MAX_LIST: u64 = 200;

/// What trash and delete answer: 204 for a file; 202 with a (finished) task for a folder.
fn done(drive: &str, file_id: &str, folder: bool) -> Reply {
    if folder {
        (
            StatusCode::ACCEPTED,
            Some(json!({"domain_id": "chuan", "drive_id": drive, "file_id": file_id, "async_task_id": ""})),
        )
    } else {
        (StatusCode::NO_CONTENT, None)
    }
}

impl AdriveDialect {
    /// `recyclebin/trash`: the entry (a folder with everything in it) goes to the drive's
    /// recycle bin; it keeps counting toward the quota until deleted or purged.
    pub(crate) async fn trash(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let e = self.entry_of(p, drive, required(v, "file_id")?).await?;
        let item = self.engine.trash_entry(p, drive, e.key()).await?;
        Ok(done(drive, &item.id, item.folder))
    }

    /// `recyclebin/restore`: back where it was, auto-renamed if the name was taken meanwhile;
    /// 204 without a body (the only answer aligo takes).
    pub(crate) async fn restore(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        self.engine.restore(p, drive, required(v, "file_id")?).await.map_err(|e| match e {
            chuan_core::CoreError::InvalidMove(m) => {
                AdriveError::new(StatusCode::NOT_FOUND, "NotFound.ParentFileId", format!("Cannot restore: {m}."))
            }
            e => e.into(),
        })?;
        Ok((StatusCode::NO_CONTENT, None))
    }

    /// `recyclebin/list`: trashed entries (not what they hold), newest first.
    pub(crate) async fn list_trash(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let limit = wire::u64_field(v, "limit").unwrap_or(100).clamp(1, MAX_LIST) as usize;
        let page = self.engine.list_trash(p, drive, str_field(v, "marker"), limit).await?;
        let mut items = Vec::new();
        for t in &page.items {
            let parent = chuan_core::store::parent_of(&t.key);
            let parent_id = if parent.is_empty() {
                ROOT.to_owned()
            } else {
                match self.engine.entry(p, drive, parent).await {
                    Ok(e) => e.id().to_owned(),
                    Err(_) => ROOT.to_owned(),
                }
            };
            let name = chuan_core::store::entry_name(&t.key);
            let mut item = json!({
                "drive_id": drive, "domain_id": "chuan", "file_id": t.id, "name": name,
                "type": if t.folder { "folder" } else { "file" }, "parent_file_id": parent_id,
                "created_at": wire::iso(t.created_ms), "updated_at": wire::iso(t.modified_ms),
                "trashed_at": wire::iso(t.trashed_ms), "trashed": true, "starred": t.meta.starred,
                "hidden": false, "status": "available", "encrypt_mode": "none",
            });
            if !t.folder {
                let ext = name.rsplit_once('.').map_or("", |(_, x)| x);
                item["size"] = json!(t.size);
                item["file_extension"] = json!(ext);
                item["category"] = json!(wire::category(ext));
            }
            items.push(item);
        }
        Ok(ok(json!({"items": items, "next_marker": page.next.unwrap_or_default()})))
    }

    /// `file/delete`: deletes an entry for good (a folder with everything in it), or, for an
    /// id in the recycle bin, that trashed entry.
    pub(crate) async fn delete(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let file_id = required(v, "file_id")?;
        match self.entry_of(p, drive, file_id).await {
            Ok(e) => {
                self.engine.delete_entry(p, drive, e.key(), true).await?;
                Ok(done(drive, file_id, e.is_folder()))
            }
            Err(err) if err.code == "NotFound.File" && file_id != ROOT => {
                let item = self.engine.purge(p, drive, file_id).await?;
                Ok(done(drive, file_id, item.folder))
            }
            Err(err) => Err(err),
        }
    }
}
