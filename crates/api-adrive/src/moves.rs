//! `file/move` and `file/copy`: one file or a whole folder, within a drive, as one core
//! transaction (a copy shares content: no bytes are copied).

use chuan_core::store::{OnConflict, TreeEntry};
use chuan_core::Principal;
use http::StatusCode;
use serde_json::{json, Value};

use crate::error::{AdriveError, AdriveResult};
use crate::files::{single_name, ROOT};
use crate::wire::{required, str_field};
use crate::{AdriveDialect, Reply};

/// The conflict rule a request asks for: `check_name_mode` (`refuse`, `auto_rename`,
/// `overwrite`; `ignore` cannot keep two entries of one name here and is `refuse`), else the
/// `auto_rename` / `overwrite` booleans aligo's move and copy send, else `default`.
pub(crate) fn conflict_mode(v: &Value, default: OnConflict) -> OnConflict {
    match str_field(v, "check_name_mode") {
        Some("auto_rename") => return OnConflict::AutoRename,
        Some("overwrite") => return OnConflict::Replace,
        Some(_) => return OnConflict::Refuse,
        None => {}
    }
    let flag = |name| v.get(name).and_then(Value::as_bool).unwrap_or(false);
    if flag("overwrite") {
        OnConflict::Replace
    } else if flag("auto_rename") {
        OnConflict::AutoRename
    } else {
        default
    }
}

impl AdriveDialect {
    /// The entry a move or copy names and where it goes: `to_parent_file_id` (default root)
    /// and `new_name` (default its own name), in the same drive.
    async fn move_target(&self, p: &Principal, v: &Value) -> AdriveResult<(String, TreeEntry, String)> {
        let drive = required(v, "drive_id")?.to_owned();
        if str_field(v, "to_drive_id").is_some_and(|d| d != drive) {
            return Err(AdriveError::bad_request(
                "InvalidParameter.ToDriveId",
                "Entries move and copy within one drive; download and upload to another.",
            ));
        }
        let e = self.entry_of(p, &drive, required(v, "file_id")?).await?;
        let parent = self.folder_key(p, &drive, str_field(v, "to_parent_file_id").unwrap_or(ROOT)).await?;
        // `null` (aligo's batch bodies carry it) is absent; an empty name is refused.
        let name = match v.get("new_name").and_then(Value::as_str) {
            Some(n) => single_name(n)?,
            None => e.name(),
        };
        let suffix = if e.is_folder() { "/" } else { "" };
        let to = format!("{parent}{name}{suffix}");
        Ok((drive, e, to))
    }

    /// `file/move`: 200 with the entry's (unchanged) id; a taken name is refused with 409
    /// `AlreadyExist.File` unless `auto_rename` or `overwrite`.
    pub(crate) async fn move_file(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let (drive, e, to) = self.move_target(p, v).await?;
        let moved = self.engine.move_entry(p, &drive, e.key(), &to, conflict_mode(v, OnConflict::Refuse)).await?;
        let mut body = json!({"domain_id": "chuan", "drive_id": drive, "file_id": moved.id()});
        if moved.is_folder() {
            body["async_task_id"] = json!("");
        }
        Ok((StatusCode::OK, Some(body)))
    }

    /// `file/copy`: 201 with the copy's new id (aligo takes 201 or 202, not 200).
    pub(crate) async fn copy_file(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let (drive, e, to) = self.move_target(p, v).await?;
        let copy = self.engine.copy_entry(p, &drive, e.key(), &to, conflict_mode(v, OnConflict::Refuse)).await?;
        Ok((StatusCode::CREATED, Some(json!({"domain_id": "chuan", "drive_id": drive, "file_id": copy.id()}))))
    }
}
