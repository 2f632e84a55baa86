//! The file tree as Aliyun Drive shows it, over the core's tree service: lookups by file id
//! and path, folder listings in every order, updates (name, starred, description), folder
//! ancestry and size, search, drives, and presigned downloads with ranges.

use chuan_core::store::{parent_of, EntryKinds, FolderQuery, OrderBy, SearchQuery, TreeEntry, TreeOrder};
use chuan_core::{AttrUpdate, CoreError, Principal, UserMetaChange};
use http::{Response, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

use crate::error::{AdriveError, AdriveResult};
use crate::wire::{self, base_file, required, str_field};
use crate::{AdriveDialect, Reply, Resp};

pub(crate) const ROOT: &str = "root";
/// The most entries one listing or search page returns (the service's own cap).
const MAX_LIST: u64 = 200;
/// Longest entry name, in bytes (the service's limit is 1,024 characters; keys are at most
/// 1,024 bytes, so a name never gets longer than that either).
pub(crate) const MAX_NAME: usize = 1024;

/// Entry names: no empty, `.` or `..` segments (the name may hold `/` in createWithFolders,
/// which creates the folders on the way).
pub fn name_segments(name: &str) -> AdriveResult<Vec<&str>> {
    let segs: Vec<&str> = name.split('/').collect();
    for s in &segs {
        chuan_core::validate_name(s, MAX_NAME)?;
    }
    Ok(segs)
}

/// One name without `/` (rename, move and copy targets).
pub fn single_name(name: &str) -> AdriveResult<&str> {
    chuan_core::validate_name(name, MAX_NAME)?;
    Ok(name)
}

pub(crate) fn ok(v: Value) -> Reply {
    (StatusCode::OK, Some(v))
}

use chuan_api_common::encode_token as b64;

fn unb64(s: &str) -> AdriveResult<String> {
    chuan_api_common::decode_token(s)
        .ok_or_else(|| AdriveError::bad_request("InvalidParameter.Marker", "The marker is not valid."))
}

/// `order_by` (`name`, `created_at`, `updated_at`, `size`) and `order_direction` (`ASC`,
/// `DESC`), as `get_file_list` sends them; the service's default is newest first.
pub(crate) fn order_of(by: Option<&str>, direction: Option<&str>) -> AdriveResult<TreeOrder> {
    let by = match by.unwrap_or("updated_at") {
        "name" => OrderBy::Name,
        "updated_at" => OrderBy::Modified,
        "created_at" => OrderBy::Created,
        "size" => OrderBy::Size,
        other => {
            return Err(AdriveError::bad_request("InvalidParameter.OrderBy", format!("cannot order by {other:?}")))
        }
    };
    let descending = match direction.map(str::to_ascii_uppercase).as_deref() {
        None | Some("DESC") => true,
        Some("ASC") => false,
        Some(other) => {
            return Err(AdriveError::bad_request(
                "InvalidParameter.OrderDirection",
                format!("order_direction is ASC or DESC, not {other:?}"),
            ))
        }
    };
    Ok(TreeOrder { by, descending })
}

impl AdriveDialect {
    /// The key of the folder `file_id` names in `drive` (`""` for root).
    pub(crate) async fn folder_key(&self, p: &Principal, drive: &str, file_id: &str) -> AdriveResult<String> {
        if file_id == ROOT || file_id.is_empty() {
            self.engine.check_bucket(p, drive).await?;
            return Ok(String::new());
        }
        match self.engine.entry_by_id(p, drive, file_id).await? {
            TreeEntry::Folder(f) => Ok(f.key),
            TreeEntry::File(_) => {
                Err(AdriveError::bad_request("InvalidParameter.ParentFileId", "The parent is not a folder."))
            }
        }
    }

    /// The entry `file_id` names (`NotFound.File` for `root`, which is no entry).
    pub(crate) async fn entry_of(&self, p: &Principal, drive: &str, file_id: &str) -> AdriveResult<TreeEntry> {
        if file_id == ROOT {
            return Err(AdriveError::not_found_file());
        }
        Ok(self.engine.entry_by_id(p, drive, file_id).await?)
    }

    /// The `parent_file_id` of the entry at `key`.
    pub(crate) async fn parent_id(&self, p: &Principal, drive: &str, key: &str) -> AdriveResult<String> {
        let parent = parent_of(key);
        if parent.is_empty() {
            return Ok(ROOT.to_owned());
        }
        Ok(self.engine.entry(p, drive, parent).await?.id().to_owned())
    }

    /// `BaseFile` JSON of an entry, with its digests and (when `origin` is given, for files)
    /// a download URL; `parent` when the caller knows it already.
    pub(crate) async fn file_json(
        &self,
        p: &Principal,
        drive: &str,
        e: &TreeEntry,
        parent: Option<&str>,
        origin: Option<&str>,
    ) -> AdriveResult<Value> {
        let parent = match parent {
            Some(id) => id.to_owned(),
            None => self.parent_id(p, drive, e.key()).await?,
        };
        let TreeEntry::File(rec) = e else {
            return Ok(base_file(e, drive, &parent, None, None, None));
        };
        let content = self.engine.content_of(rec).await?;
        // Pending content (parts not yet digested, or a big upload's SHA-1 still to come from
        // the background job) shows what is known.
        let digests = content.known_digests();
        let url = match origin {
            Some(o) => Some(self.download_url(p, o, drive, &rec.id, self.config.url_ttl).await?),
            None => None,
        };
        Ok(base_file(
            e,
            drive,
            &parent,
            digests.filter(|d| d.is_complete()).map(|d| d.sha1.to_ascii_uppercase()).as_deref(),
            digests.map(|d| d.crc64xz),
            url,
        ))
    }

    /// A download URL (the core's signed URL grant) for a file `p` may read.
    async fn download_url(
        &self,
        p: &Principal,
        origin: &str,
        drive: &str,
        file_id: &str,
        ttl: Duration,
    ) -> AdriveResult<String> {
        let query = self.engine.sign_download(p, drive, file_id, ttl).await?;
        Ok(format!("{origin}/adrive/download/{drive}/{file_id}?{query}"))
    }

    /// `file/list`: one folder, in the order asked (default `updated_at DESC`), optionally only
    /// files or folders; `next_marker` is `""` on the last page (aligo pages until it is).
    pub(crate) async fn list(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let parent = str_field(v, "parent_file_id").unwrap_or(ROOT);
        let folder = self.folder_key(p, drive, parent).await?;
        let parent_id = if folder.is_empty() { ROOT.to_owned() } else { parent.to_owned() };
        let limit = wire::u64_field(v, "limit").unwrap_or(100).clamp(1, MAX_LIST) as usize;
        let order = order_of(str_field(v, "order_by"), str_field(v, "order_direction"))?;
        let kinds = match str_field(v, "type") {
            Some("file") => EntryKinds::Files,
            Some("folder") => EntryKinds::Folders,
            _ => EntryKinds::All,
        };
        let cursor = str_field(v, "marker").map(unb64).transpose()?;
        let q = FolderQuery { kinds, ..FolderQuery::new(&folder, order) };
        let page = self.engine.list_folder(p, drive, &q, cursor.as_deref(), limit).await?;
        let mut items = Vec::with_capacity(page.items.len());
        for e in &page.items {
            items.push(self.file_json(p, drive, e, Some(&parent_id), None).await?);
        }
        let next_marker = page.next.as_deref().map(b64).unwrap_or_default();
        Ok(ok(json!({"items": items, "next_marker": next_marker})))
    }

    pub(crate) async fn get(&self, p: &Principal, origin: &str, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let e = self.entry_of(p, drive, required(v, "file_id")?).await?;
        Ok(ok(self.file_json(p, drive, &e, None, Some(origin)).await?))
    }

    pub(crate) async fn get_by_path(&self, p: &Principal, origin: &str, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let path = required(v, "file_path")?.trim_matches('/');
        name_segments(path)?;
        let e = match self.engine.entry(p, drive, path).await {
            Ok(e) => e,
            Err(CoreError::NoSuchKey) => self.engine.entry(p, drive, &format!("{path}/")).await?,
            Err(e) => return Err(e.into()),
        };
        Ok(ok(self.file_json(p, drive, &e, None, Some(origin)).await?))
    }

    /// `file/update`: a new `name` (a rename in place, refused with 409 when taken unless
    /// `check_name_mode` is `auto_rename`), `starred`, `description`.
    pub(crate) async fn update(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let mut e = self.entry_of(p, drive, required(v, "file_id")?).await?;
        if let Some(name) = v.get("name").and_then(Value::as_str) {
            let suffix = if e.is_folder() { "/" } else { "" };
            let target = format!("{}{}{suffix}", parent_of(e.key()), single_name(name)?);
            if target != e.key() {
                let mode = crate::moves::conflict_mode(v, chuan_core::store::OnConflict::Refuse);
                e = self.engine.move_entry(p, drive, e.key(), &target, mode).await?;
            }
        }
        let update = AttrUpdate {
            starred: v.get("starred").and_then(Value::as_bool),
            description: v.get("description").and_then(Value::as_str).map(str::to_owned),
            user: v.get("user_meta").and_then(Value::as_str).map(user_meta).transpose()?,
        };
        if update.starred.is_some() || update.description.is_some() || update.user.is_some() {
            e = self.engine.update_attributes(p, drive, e.key(), update).await?;
        }
        Ok(ok(self.file_json(p, drive, &e, None, None).await?))
    }

    pub(crate) async fn get_download_url(&self, p: &Principal, origin: &str, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let TreeEntry::File(rec) = self.entry_of(p, drive, required(v, "file_id")?).await? else {
            return Err(AdriveError::bad_request("InvalidParameter.FileId", "Folders cannot be downloaded."));
        };
        // `expire_sec` as asked, within the server's longest (`url_ttl`).
        let ttl = match v.get("expire_sec").and_then(Value::as_u64) {
            Some(secs) if secs > 0 => Duration::from_secs(secs).min(self.config.url_ttl),
            _ => self.config.url_ttl,
        };
        let url = self.download_url(p, origin, drive, &rec.id, ttl).await?;
        let expires = chuan_core::store::now_ms() + ttl.as_millis() as i64;
        Ok(ok(json!({"url": url, "internal_url": url, "cdn_url": url, "size": rec.size, "file_id": rec.id,
                     "drive_id": drive, "expiration": wire::iso(expires), "method": "GET"})))
    }

    /// `get_path`: the entry itself, then each folder above it up to the top of the drive
    /// (root not included).
    pub(crate) async fn get_path(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let file_id = required(v, "file_id")?;
        if file_id == ROOT {
            self.engine.check_bucket(p, drive).await?;
            return Ok(ok(json!({"items": []})));
        }
        let e = self.engine.entry_by_id(p, drive, file_id).await?;
        let mut chain = self.engine.ancestors(p, drive, e.key()).await?;
        chain.push(e);
        let mut items = Vec::with_capacity(chain.len());
        for (i, entry) in chain.iter().enumerate() {
            let parent = if i == 0 { ROOT.to_owned() } else { chain[i - 1].id().to_owned() };
            items.push(self.file_json(p, drive, entry, Some(&parent), None).await?);
        }
        items.reverse();
        Ok(ok(json!({"items": items})))
    }

    /// `get_folder_size_info`: bytes, files and folders under a folder, all levels down.
    pub(crate) async fn folder_size(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let folder = self.folder_key(p, drive, str_field(v, "file_id").unwrap_or(ROOT)).await?;
        let u = self.engine.folder_usage(p, drive, &folder).await?;
        Ok(ok(json!({"size": u.bytes, "file_count": u.files, "folder_count": u.folders, "reach_limit": false})))
    }

    /// `file/search` with the service's query language, the clauses aligo and the web client
    /// send, joined by `and`: `name match "x"` (substring) or `name = "x"`, `parent_file_id =
    /// "id"` (direct children), `type = "file|folder"`, `category = "image|video|..."`.
    pub(crate) async fn search(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        let q = parse_query(str_field(v, "query").unwrap_or(""))?;
        let under = match &q.parent {
            Some(id) => self.folder_key(p, drive, id).await?,
            None => String::new(),
        };
        let (name, exact) = q.name.clone().unwrap_or_default();
        let search = SearchQuery {
            direct: q.parent.is_some(),
            under,
            name,
            exact,
            kinds: match q.kind {
                None => EntryKinds::All,
                Some(true) => EntryKinds::Folders,
                // Categories are of files.
                Some(false) => EntryKinds::Files,
            },
            starred: false,
        };
        let search = if q.category.is_some() { SearchQuery { kinds: EntryKinds::Files, ..search } } else { search };
        self.search_page(p, drive, &search, q.category.as_deref(), v).await
    }

    /// `file/list_by_custom_index_key` with `starred_yes` (aligo's `get_starred_list`): every
    /// starred file and folder of the drive, wherever it is.
    pub(crate) async fn list_starred(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let drive = required(v, "drive_id")?;
        if str_field(v, "custom_index_key") != Some("starred_yes") {
            return Err(AdriveError::bad_request(
                "InvalidParameter.CustomIndexKey",
                "custom_index_key must be starred_yes",
            ));
        }
        let search = SearchQuery { starred: true, ..Default::default() };
        self.search_page(p, drive, &search, None, v).await
    }

    /// One page of a search, as `{items, next_marker}` (`category`: files of that category
    /// only, Aliyun Drive's own classification by extension).
    async fn search_page(
        &self,
        p: &Principal,
        drive: &str,
        search: &SearchQuery,
        category: Option<&str>,
        v: &Value,
    ) -> AdriveResult<Reply> {
        let limit = wire::u64_field(v, "limit").unwrap_or(100).clamp(1, MAX_LIST) as usize;
        let cursor = str_field(v, "marker").map(unb64).transpose()?;
        let page = self.engine.search(p, drive, search, cursor.as_deref(), limit).await?;
        let mut items = Vec::new();
        for e in &page.items {
            if let Some(cat) = category {
                let ext = e.name().rsplit_once('.').map_or("", |(_, x)| x);
                if e.is_folder() || wire::category(ext) != cat {
                    continue;
                }
            }
            items.push(self.file_json(p, drive, e, None, None).await?);
        }
        let next_marker = page.next.as_deref().map(b64).unwrap_or_default();
        Ok(ok(json!({"items": items, "next_marker": next_marker, "punished_file_count": 0})))
    }

    fn drive_json(&self, p: &Principal, drive: &str, used: u64, total: Option<u64>, created_ms: i64) -> Value {
        json!({"drive_id": drive, "drive_name": "Default", "drive_type": "normal", "owner": p.tenant(),
               "owner_type": "user", "creator": "System", "status": "enabled", "used_size": used,
               "total_size": total.unwrap_or(1 << 50), "category": "default", "encrypt_mode": "none",
               "domain_id": "chuan", "created_at": wire::iso(created_ms), "description": ""})
    }

    /// `drive/get` (and `get_default_drive` with no `drive_id`): a drive is a bucket of the
    /// caller's tenant.
    pub(crate) async fn drive_get(&self, p: &Principal, v: &Value) -> AdriveResult<Reply> {
        let default = crate::auth::default_drive(p.tenant());
        let drive = str_field(v, "drive_id").unwrap_or(&default);
        let b = self.engine.check_bucket(p, drive).await?;
        let used = self.engine.bucket_bytes(p, drive).await?;
        let quota = self.engine.quota(p.tenant()).await?.and_then(|q| q.storage_bytes);
        Ok(ok(self.drive_json(p, drive, used, quota, b.created_ms)))
    }

    /// `drive/list_my_drives`: the tenant's buckets.
    pub(crate) async fn list_drives(&self, p: &Principal) -> AdriveResult<Reply> {
        let quota = self.engine.quota(p.tenant()).await?.and_then(|q| q.storage_bytes);
        let mut items = Vec::new();
        for b in self.engine.list_buckets(p).await? {
            let used = self.engine.bucket_bytes(p, &b.name).await?;
            items.push(self.drive_json(p, &b.name, used, quota, b.created_ms));
        }
        Ok(ok(json!({"items": items, "next_marker": ""})))
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
        let content = self.engine.content_for_read(&rec).await?;
        let body = self.engine.open_read(&p, &rec, &content, start, end).await?;
        Ok(b.header(http::header::CONTENT_LENGTH, end - start)
            .body(chuan_api_common::stream(body))
            .expect("valid response"))
    }
}

/// `user_meta`, a JSON object in a string, as user metadata to merge (values that are not
/// strings are kept as their JSON text); `user_meta` of a file shows it back the same way.
fn user_meta(s: &str) -> AdriveResult<UserMetaChange> {
    let bad = || AdriveError::bad_request("InvalidParameter.UserMeta", "user_meta must be a JSON object");
    let Value::Object(m) = serde_json::from_str::<Value>(s).map_err(|_| bad())? else { return Err(bad()) };
    let pairs = m.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)));
    Ok(UserMetaChange::Merge(pairs.collect()))
}

/// A parsed `file/search` query.
#[derive(Debug, Default, PartialEq)]
struct ParsedQuery {
    /// The name, and whether it must match exactly (`=`) rather than contain it (`match`).
    name: Option<(String, bool)>,
    parent: Option<String>,
    /// `Some(true)`: folders only; `Some(false)`: files only.
    kind: Option<bool>,
    category: Option<String>,
}

fn parse_query(q: &str) -> AdriveResult<ParsedQuery> {
    let bad = |why: String| AdriveError::bad_request("InvalidParameter.Query", why);
    let mut out = ParsedQuery::default();
    let q = q.trim();
    if q.is_empty() {
        return Ok(out);
    }
    for clause in q.split(" and ") {
        let clause = clause.trim();
        let (field, rest) = clause.split_once(' ').ok_or_else(|| bad(format!("cannot read {clause:?}")))?;
        let (op, value) = rest.trim().split_once(' ').ok_or_else(|| bad(format!("cannot read {clause:?}")))?;
        let value = value
            .trim()
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| bad(format!("the value in {clause:?} must be in double quotes")))?
            .to_owned();
        match (field, op) {
            ("name", "match") => out.name = Some((value, false)),
            ("name", "=") => out.name = Some((value, true)),
            ("parent_file_id", "=") => out.parent = Some(value),
            ("type", "=") => match value.as_str() {
                "file" => out.kind = Some(false),
                "folder" => out.kind = Some(true),
                _ => return Err(bad(format!("type is file or folder, not {value:?}"))),
            },
            ("category", "=") => out.category = Some(value),
            _ => return Err(bad(format!("{field} {op} is not a supported condition"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name_segments("a/../b").is_err());
        assert_eq!(name_segments("a/b").unwrap(), ["a", "b"]);
        assert!(single_name("a/b").is_err());
        assert!(single_name(&"x".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn search_queries() {
        let q = parse_query(r#"parent_file_id = "p1" and name match "abc" and category = "image""#).unwrap();
        assert_eq!(q.parent.as_deref(), Some("p1"));
        assert_eq!(q.name, Some(("abc".into(), false)));
        assert_eq!(q.category.as_deref(), Some("image"));
        assert_eq!(parse_query("").unwrap(), ParsedQuery::default());
        assert!(parse_query("size > 3").is_err());
        assert!(parse_query("name match abc").is_err());
        assert_eq!(parse_query(r#"type = "folder""#).unwrap().kind, Some(true));
    }

    #[test]
    fn orders() {
        assert_eq!(order_of(None, None).unwrap(), TreeOrder { by: OrderBy::Modified, descending: true });
        assert_eq!(order_of(Some("name"), Some("ASC")).unwrap(), TreeOrder { by: OrderBy::Name, descending: false });
        assert!(order_of(Some("colour"), None).is_err());
        assert!(order_of(Some("size"), Some("UP")).is_err());
    }
}
