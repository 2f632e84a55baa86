//! The file tree: folders as explicit keys ending in `/`, lookups by file id, listing,
//! renaming, trashing, and presigned downloads with ranges.

use chuan_core::store::{ObjectMeta, ObjectRecord};
use chuan_core::{CoreError, ListQuery, Principal, PutTarget};
use http::{Response, StatusCode};
use serde_json::{json, Value};

use base64::Engine as _;

use crate::error::{AdriveError, AdriveResult};
use crate::wire::{self, base_file, is_folder, required, str_field};
use crate::{AdriveDialect, Resp};

const ROOT: &str = "root";
const MAX_LIST: u64 = 200;

/// Entry names: no empty, `.` or `..` segments (the name may hold `/` in createWithFolders,
/// which creates the folders on the way).
pub fn name_segments(name: &str) -> AdriveResult<Vec<&str>> {
    let segs: Vec<&str> = name.split('/').collect();
    if segs.iter().any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains('\0')) {
        return Err(AdriveError::bad_request("InvalidParameter.Name", "The name is not valid."));
    }
    Ok(segs)
}

/// `stem(1).ext`, `stem(2).ext`, ... for auto_rename.
pub fn numbered(name: &str, n: u32) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}({n}).{ext}"),
        _ => format!("{name}({n})"),
    }
}

impl AdriveDialect {
    /// The key of the folder `file_id` names in `drive` ("" for root).
    pub(crate) async fn folder_key(&self, p: &Principal, drive: &str, file_id: &str) -> AdriveResult<String> {
        if file_id == ROOT || file_id.is_empty() {
            self.engine.check_bucket(p, drive).await?;
            return Ok(String::new());
        }
        let rec = self.engine.object_by_id(p, drive, file_id).await?;
        if !is_folder(&rec.key) {
            return Err(AdriveError::bad_request("InvalidParameter.ParentFileId", "The parent is not a folder."));
        }
        Ok(rec.key)
    }

    /// The folder object at `key` (ending in `/`), created if missing: folders implied by
    /// keys written through other protocols become real entries the first time they are seen.
    pub(crate) async fn ensure_folder(&self, p: &Principal, drive: &str, key: &str) -> AdriveResult<ObjectRecord> {
        match self.engine.head_object(p, drive, key).await {
            Ok(rec) => Ok(rec),
            Err(CoreError::NoSuchKey) => {
                let target = PutTarget {
                    bucket: drive.to_owned(),
                    key: key.to_owned(),
                    meta: ObjectMeta::default(),
                    condition: Some(chuan_core::store::WriteCondition::Absent),
                };
                match self.engine.put_empty(p, target).await {
                    Ok(rec) => Ok(rec),
                    // Created concurrently: use that one.
                    Err(CoreError::PreconditionFailed) => Ok(self.engine.head_object(p, drive, key).await?),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The `parent_file_id` of the entry at `key`.
    pub(crate) async fn parent_id(&self, p: &Principal, drive: &str, key: &str) -> AdriveResult<String> {
        let trimmed = key.trim_end_matches('/');
        match trimmed.rfind('/') {
            None => Ok(ROOT.to_owned()),
            Some(i) => Ok(self.ensure_folder(p, drive, &key[..=i]).await?.id),
        }
    }

    /// A name under `parent_key` that no entry uses yet.
    pub(crate) async fn free_name(
        &self,
        p: &Principal,
        drive: &str,
        parent_key: &str,
        name: &str,
        folder: bool,
    ) -> AdriveResult<String> {
        let suffix = if folder { "/" } else { "" };
        for n in 0..10_000u32 {
            let candidate = if n == 0 { name.to_owned() } else { numbered(name, n) };
            match self.engine.head_object(p, drive, &format!("{parent_key}{candidate}{suffix}")).await {
                Err(CoreError::NoSuchKey) => return Ok(candidate),
                Ok(_) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AdriveError::new(StatusCode::CONFLICT, "AlreadyExist.File", "No free name found."))
    }

    /// `BaseFile` JSON of an entry, with its digests and (for files) a download URL.
    pub(crate) async fn file_json(
        &self,
        p: &Principal,
        drive: &str,
        rec: &ObjectRecord,
        origin: Option<&str>,
    ) -> AdriveResult<Value> {
        let parent = self.parent_id(p, drive, &rec.key).await?;
        if is_folder(&rec.key) {
            return Ok(base_file(rec, drive, &parent, None, None, None));
        }
        let content = self.engine.content_of(rec).await?;
        let digests = content.digests.as_ref();
        let url = match origin {
            Some(o) => Some(self.download_url(p, o, drive, &rec.id).await?),
            None => None,
        };
        Ok(base_file(
            rec,
            drive,
            &parent,
            digests.map(|d| d.sha1.to_ascii_uppercase()).as_deref(),
            digests.map(|d| d.crc64xz),
            url,
        ))
    }

    /// A download URL (the core's signed URL grant) for a file `p` may read.
    async fn download_url(&self, p: &Principal, origin: &str, drive: &str, file_id: &str) -> AdriveResult<String> {
        let query = self.engine.sign_download(p, drive, file_id, self.config.url_ttl).await?;
        Ok(format!("{origin}/adrive/download/{drive}/{file_id}?{query}"))
    }

    pub(crate) async fn list(&self, p: &Principal, v: &Value) -> AdriveResult<Resp> {
        let drive = required(v, "drive_id")?;
        let parent = str_field(v, "parent_file_id").unwrap_or(ROOT);
        let prefix = self.folder_key(p, drive, parent).await?;
        let limit = wire::u64_field(v, "limit").unwrap_or(100).clamp(1, MAX_LIST) as usize;
        // Without a marker, start after the folder's own entry (its key is the prefix).
        let after = match str_field(v, "marker") {
            Some(m) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(m)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| AdriveError::bad_request("InvalidParameter.Marker", "The marker is not valid."))?,
            ),
            None => (!prefix.is_empty()).then(|| prefix.clone()),
        };
        let want = str_field(v, "type");
        let q = ListQuery { prefix: prefix.clone(), delimiter: Some("/".into()), after, max_keys: limit };
        let page = self.engine.list_objects(p, drive, &q).await?;
        let mut items = Vec::new();
        // Keys and folder prefixes come back in key order; merge them.
        let mut entries: Vec<(String, bool)> = page
            .objects
            .iter()
            .filter(|o| o.key != prefix)
            .map(|o| (o.key.clone(), false))
            .chain(page.common_prefixes.iter().map(|cp| (cp.clone(), true)))
            .collect();
        entries.sort();
        for (key, folder) in entries {
            if want == Some("file") && folder || want == Some("folder") && !folder {
                continue;
            }
            let rec = if folder {
                self.ensure_folder(p, drive, &key).await?
            } else {
                match page.objects.iter().find(|o| o.key == key) {
                    Some(o) => o.clone(),
                    None => continue,
                }
            };
            items.push(self.file_json(p, drive, &rec, None).await?);
        }
        let next_marker = match (page.truncated, page.next_after) {
            (true, Some(a)) => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(a),
            // aligo pages until next_marker is the empty string (null would loop forever).
            _ => String::new(),
        };
        Ok(wire::json(StatusCode::OK, &json!({"items": items, "next_marker": next_marker})))
    }

    pub(crate) async fn get(&self, p: &Principal, origin: &str, v: &Value) -> AdriveResult<Resp> {
        let drive = required(v, "drive_id")?;
        let file_id = required(v, "file_id")?;
        if file_id == ROOT {
            return Err(AdriveError::not_found_file());
        }
        let rec = self.engine.object_by_id(p, drive, file_id).await?;
        Ok(wire::json(StatusCode::OK, &self.file_json(p, drive, &rec, Some(origin)).await?))
    }

    pub(crate) async fn get_by_path(&self, p: &Principal, origin: &str, v: &Value) -> AdriveResult<Resp> {
        let drive = required(v, "drive_id")?;
        let path = required(v, "file_path")?.trim_matches('/');
        name_segments(path)?;
        let rec = match self.engine.head_object(p, drive, path).await {
            Ok(r) => r,
            Err(CoreError::NoSuchKey) => self.engine.head_object(p, drive, &format!("{path}/")).await?,
            Err(e) => return Err(e.into()),
        };
        Ok(wire::json(StatusCode::OK, &self.file_json(p, drive, &rec, Some(origin)).await?))
    }

    pub(crate) async fn update(&self, p: &Principal, v: &Value) -> AdriveResult<Resp> {
        let drive = required(v, "drive_id")?;
        let rec = self.engine.object_by_id(p, drive, required(v, "file_id")?).await?;
        let folder = is_folder(&rec.key);
        let Some(name) = str_field(v, "name") else {
            return Ok(wire::json(StatusCode::OK, &self.file_json(p, drive, &rec, None).await?));
        };
        if name_segments(name)?.len() != 1 {
            return Err(AdriveError::bad_request("InvalidParameter.Name", "The name must not contain '/'."));
        }
        let trimmed = rec.key.trim_end_matches('/');
        let parent_key = &trimmed[..trimmed.rfind('/').map_or(0, |i| i + 1)];
        let suffix = if folder { "/" } else { "" };
        let mut target = format!("{parent_key}{name}{suffix}");
        if target == rec.key {
            return Ok(wire::json(StatusCode::OK, &self.file_json(p, drive, &rec, None).await?));
        }
        if self.engine.head_object(p, drive, &target).await.is_ok() {
            match str_field(v, "check_name_mode").unwrap_or("refuse") {
                "auto_rename" => {
                    target =
                        format!("{parent_key}{}{suffix}", self.free_name(p, drive, parent_key, name, folder).await?)
                }
                _ => return Err(AdriveError::new(StatusCode::CONFLICT, "AlreadyExist.File", "The name is taken.")),
            }
        }
        let mode = chuan_core::store::RenameMode { prefix: folder, replace: false };
        let renamed = self.engine.rename(p, drive, &rec.key, &target, mode).await?;
        Ok(wire::json(StatusCode::OK, &self.file_json(p, drive, &renamed, None).await?))
    }

    /// Trash and delete both remove the entry (a folder with everything under it).
    pub(crate) async fn delete(&self, p: &Principal, v: &Value) -> AdriveResult<Resp> {
        let drive = required(v, "drive_id")?;
        let file_id = required(v, "file_id")?;
        let rec = self.engine.object_by_id(p, drive, file_id).await?;
        if is_folder(&rec.key) {
            self.engine.delete_tree(p, drive, &rec.key).await?;
        } else {
            self.engine.delete_object(p, drive, &rec.key).await?;
        }
        Ok(wire::json(
            StatusCode::ACCEPTED,
            &json!({"domain_id": "chuan", "drive_id": drive, "file_id": file_id, "async_task_id": ""}),
        ))
    }

    pub(crate) async fn get_download_url(&self, p: &Principal, origin: &str, v: &Value) -> AdriveResult<Resp> {
        let drive = required(v, "drive_id")?;
        let rec = self.engine.object_by_id(p, drive, required(v, "file_id")?).await?;
        if is_folder(&rec.key) {
            return Err(AdriveError::bad_request("InvalidParameter.FileId", "Folders cannot be downloaded."));
        }
        let url = self.download_url(p, origin, drive, &rec.id).await?;
        let expires = chuan_core::store::now_ms() + self.config.url_ttl.as_millis() as i64;
        Ok(wire::json(
            StatusCode::OK,
            &json!({"url": url, "internal_url": url, "cdn_url": url, "size": rec.size,
                    "expiration": wire::iso(expires), "method": "GET"}),
        ))
    }

    /// `GET /adrive/download/<drive>/<file_id>?expires=&sig=` with `Range` support.
    pub(crate) async fn download(
        &self,
        drive: &str,
        file_id: &str,
        query: Option<&str>,
        headers: &http::HeaderMap,
    ) -> AdriveResult<Resp> {
        let (p, rec) = self.engine.download_grant(drive, file_id, query).await?;
        let size = rec.size;
        let range = headers.get(http::header::RANGE).and_then(|r| r.to_str().ok());
        let b = Response::builder()
            .header(http::header::ACCEPT_RANGES, "bytes")
            .header(
                http::header::CONTENT_TYPE,
                rec.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
            )
            .header(http::header::ETAG, format!("\"{}\"", rec.etag));
        let Ok((b, start, end)) = chuan_api_common::with_range(b, range, size) else {
            return Ok(chuan_api_common::range_not_satisfiable(size));
        };
        let content = self.engine.content_of(&rec).await?;
        let body = self.engine.open_read(&p, &rec, &content, start, end).await?;
        Ok(b.header(http::header::CONTENT_LENGTH, end - start)
            .body(chuan_api_common::stream(body))
            .expect("valid response"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(numbered("a.txt", 1), "a(1).txt");
        assert_eq!(numbered("dir", 2), "dir(2)");
        assert!(name_segments("a/../b").is_err());
        assert_eq!(name_segments("a/b").unwrap(), ["a", "b"]);
    }
}
