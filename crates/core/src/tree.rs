//! The file tree every protocol with folders uses (Aliyun Drive, UpYun, COS, UFile listings):
//! folders (explicit keys ending in `/`, or implied by deeper keys), listings in any order
//! with one cursor type, moves and copies of whole folders as one metadata transaction that
//! copies no data, attributes, search by name, and the recycle bin.
//!
//! Every operation admits the caller for every key it names (a folder's key covers what is
//! under it, so a prefix-scoped credential moves only folders inside its prefix) and charges
//! one request. S3 sees none of this: its keys stay plain, and the trash is not in listings.

use chuan_store::*;
use std::collections::BTreeMap;

use crate::access::{Op, Principal};
use crate::engine::{write_error, Engine};
use crate::error::{CoreError, CoreResult};
use crate::names::validate_key;
use crate::objects::PutTarget;

/// Most entries one listing, search or trash page returns.
pub const MAX_PAGE: usize = 1000;

/// How long a trashed item is kept before GC purges it, unless configured
/// (`EngineConfig::trash_retention`): 10 days.
pub const DEFAULT_TRASH_RETENTION: std::time::Duration = std::time::Duration::from_secs(10 * 24 * 3600);

/// One page of a folder listing, search or trash listing, and where the next one starts
/// (`None`: this was the last).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A change to an entry's attributes; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct AttrUpdate {
    pub starred: Option<bool>,
    /// `Some("")` clears the description.
    pub description: Option<String>,
    pub user: Option<UserMetaChange>,
}

/// A change to user metadata (every protocol's `x-*-meta-*`): UpYun's `PATCH ?metadata=`
/// modes, which the other protocols' updates are special cases of.
#[derive(Debug, Clone)]
pub enum UserMetaChange {
    /// Set these names, keep the others.
    Merge(BTreeMap<String, String>),
    /// These names and nothing else.
    Replace(BTreeMap<String, String>),
    /// Remove these names.
    Delete(Vec<String>),
}

/// A cursor as the wire carries it: `<sort value>:<key>`. Dialects may wrap it (base64, a
/// JSON field) but never look inside.
fn encode_cursor(c: &TreeCursor) -> String {
    format!("{}:{}", c.value, c.key)
}

fn decode_cursor(s: &str, folder: &str) -> CoreResult<TreeCursor> {
    let bad = || CoreError::InvalidArgument(format!("{s:?} is not a cursor this listing gave"));
    let (v, key) = s.split_once(':').ok_or_else(bad)?;
    if !key.starts_with(folder) {
        return Err(bad());
    }
    Ok(TreeCursor { value: v.parse().map_err(|_| bad())?, key: key.to_owned() })
}

/// Names of entries as protocols take them: not empty, no `/`, not `.` or `..`, no control
/// characters, at most `max_bytes` bytes (each protocol's own limit).
pub fn validate_name(name: &str, max_bytes: usize) -> CoreResult<()> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(CoreError::InvalidKey(format!("{name:?} is not a name")));
    }
    if name.contains('/') {
        return Err(CoreError::InvalidKey(format!("{name:?}: a name cannot contain '/'")));
    }
    if name.len() > max_bytes {
        return Err(CoreError::NameTooLong { limit: max_bytes });
    }
    if name.chars().any(char::is_control) {
        return Err(CoreError::InvalidKey("control characters are not allowed in names".into()));
    }
    Ok(())
}

/// A page of at most `limit` from `items`, read with one more than that: if the extra one
/// came, there is a next page, resuming after the last item kept (`resume_after` of it).
fn page<T>(mut items: Vec<T>, limit: usize, resume_after: impl Fn(&T) -> String) -> Page<T> {
    let next = (items.len() > limit).then(|| {
        items.truncate(limit);
        resume_after(&items[limit - 1])
    });
    Page { items, next }
}

/// Folder keys are `""` (the top) or end in `/`.
fn check_folder_key(folder: &str) -> CoreResult<()> {
    if folder.is_empty() || folder.ends_with('/') {
        Ok(())
    } else {
        Err(CoreError::InvalidKey(format!("{folder:?} is not a folder key (they end in '/')")))
    }
}

fn tree_error(e: StoreError) -> CoreError {
    match e {
        StoreError::Exists => CoreError::AlreadyExists,
        StoreError::NotFound => CoreError::NoSuchKey,
        StoreError::NotEmpty => CoreError::FolderNotEmpty,
        StoreError::KindConflict => CoreError::NameConflict,
        StoreError::Conflict(why) => CoreError::InvalidMove(why),
        e => write_error(e),
    }
}

impl Engine {
    /// One page of a folder's entries as `q` asks, from the cursor a previous page gave. At
    /// most [`MAX_PAGE`] entries.
    pub async fn list_folder(
        &self,
        p: &Principal,
        bucket: &str,
        q: &FolderQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> CoreResult<Page<TreeEntry>> {
        let folder = q.folder.as_str();
        check_folder_key(folder)?;
        let after = cursor.filter(|c| !c.is_empty()).map(|c| decode_cursor(c, folder)).transpose()?;
        let b = self.admit(p, Op::List, bucket, &format!("{folder}{}", q.name_prefix)).await?;
        self.charge_request(p, &b).await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let items = self.meta.list_folder(bucket, q, after, limit + 1).await?;
        Ok(page(items, limit, |e| encode_cursor(&TreeCursor::after(e, q.order.by))))
    }

    /// The entry at `key` (a folder's ends in `/`), if `p` may see it.
    pub async fn entry(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<TreeEntry> {
        let b = self.read_access(p, bucket, key, None).await?;
        self.charge_request(p, &b).await?;
        self.meta.get_entry(bucket, key).await?.ok_or(CoreError::NoSuchKey)
    }

    /// The entry with this id (Aliyun Drive's `file_id`), if `p` may see it.
    pub async fn entry_by_id(&self, p: &Principal, bucket: &str, id: &str) -> CoreResult<TreeEntry> {
        let b = self.admit_bucket(p, bucket).await?;
        self.charge_request(p, &b).await?;
        let e = self.meta.get_entry_by_id(bucket, id).await?.ok_or(CoreError::NoSuchKey)?;
        self.read_access(p, bucket, e.key(), None).await?;
        Ok(e)
    }

    /// The folders from the top of the bucket (or of the caller's scope) down to `key`'s own
    /// folder, each if it exists (outermost first; the root is not among them).
    pub async fn ancestors(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<Vec<TreeEntry>> {
        self.read_access(p, bucket, key, None).await?;
        let mut out = Vec::new();
        let mut folder = parent_of(key);
        while !folder.is_empty() {
            // Above a prefix scope the path goes on, but not for this caller.
            match self.admit(p, Op::Read, bucket, folder).await {
                Err(CoreError::AccessDenied) => break,
                r => r?,
            };
            if let Some(e) = self.meta.get_entry(bucket, folder).await? {
                out.push(e);
            }
            folder = parent_of(folder);
        }
        out.reverse();
        Ok(out)
    }

    /// Creates the folder `key` (ending in `/`) with a marker object, as S3 clients do.
    /// Returns it and whether it was there already: an existing folder is returned unless
    /// `Refuse` (`AlreadyExists`); `AutoRename` makes a new one beside it. A file of that
    /// name is `NameConflict`.
    pub async fn create_folder(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        on_conflict: OnConflict,
    ) -> CoreResult<(TreeEntry, bool)> {
        if !key.ends_with('/') {
            return Err(CoreError::InvalidKey("a folder key ends in '/'".into()));
        }
        validate_key(key)?;
        self.check_access(p, Op::Write, bucket, key).await?;
        let mut target = PutTarget::new(bucket, key);
        target.tree = TreeRule::Folders;
        target.condition = Some(WriteCondition::Absent);
        for _ in 0..3 {
            match self.meta.get_entry(bucket, key).await? {
                Some(_) if on_conflict == OnConflict::Refuse => return Err(CoreError::AlreadyExists),
                Some(e) if on_conflict == OnConflict::Replace => return Ok((e, true)),
                // Auto-rename steps past a file of that name too.
                _ if on_conflict == OnConflict::AutoRename => {
                    target.key = self.meta.free_key(bucket, key).await.map_err(tree_error)?
                }
                _ => target.key = key.to_owned(),
            }
            match self.put_empty(p, target.clone()).await {
                Ok(_) => {
                    let e = self.meta.get_entry(bucket, &target.key).await?.ok_or(CoreError::NoSuchKey)?;
                    return Ok((e, false));
                }
                // Created meanwhile: decide again.
                Err(CoreError::PreconditionFailed) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(CoreError::AlreadyExists)
    }

    /// The first free name for `key` in its folder: `key` itself, else `stem(1).ext`, ...
    pub async fn free_key(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<String> {
        self.admit(p, Op::Write, bucket, key).await?;
        self.meta.free_key(bucket, key).await.map_err(tree_error)
    }

    /// Deletes a file, or a folder (`FolderNotEmpty` unless `recursive`) with everything
    /// under it, in one transaction.
    pub async fn delete_entry(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        recursive: bool,
    ) -> CoreResult<FolderUsage> {
        let b = self.admit(p, Op::Delete, bucket, key).await?;
        self.charge_request(p, &b).await?;
        self.meta.delete_entry(bucket, key, recursive).await.map_err(tree_error)
    }

    /// Moves (renames) a file or a whole folder within a bucket in one transaction, keeping
    /// ids, timestamps and attributes; returns it at its new key.
    pub async fn move_entry(
        &self,
        p: &Principal,
        bucket: &str,
        from: &str,
        to: &str,
        on_conflict: OnConflict,
    ) -> CoreResult<TreeEntry> {
        self.transfer(p, bucket, from, to, on_conflict, false).await
    }

    /// Copies a file or a whole folder within a bucket in one transaction: new ids, shared
    /// content (no bytes copied), counted toward the owner's storage quota.
    pub async fn copy_entry(
        &self,
        p: &Principal,
        bucket: &str,
        from: &str,
        to: &str,
        on_conflict: OnConflict,
    ) -> CoreResult<TreeEntry> {
        let e = self.transfer(p, bucket, from, to, on_conflict, true).await?;
        self.metrics.objects_committed.inc();
        Ok(e)
    }

    /// UFile's rename: one plain key to another (a key ending in `/` is moved alone, no
    /// name rule); `replace` overwrites what is at `to`.
    pub async fn rename_key(&self, p: &Principal, bucket: &str, from: &str, to: &str, replace: bool) -> CoreResult<()> {
        let on_conflict = if replace { OnConflict::Replace } else { OnConflict::Refuse };
        self.admit_transfer(p, bucket, from, to, on_conflict, false).await?;
        let m = TreeMove {
            bucket: bucket.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            on_conflict,
            flat: true,
            now_ms: now_ms(),
        };
        self.meta.move_entry(m).await.map_err(tree_error)?;
        Ok(())
    }

    /// Admits a move (deleting the source) or a copy (reading it) to `to` (writing it, and
    /// deleting what is there with `Replace`), and charges the request to the bucket.
    async fn admit_transfer(
        &self,
        p: &Principal,
        bucket: &str,
        from: &str,
        to: &str,
        on_conflict: OnConflict,
        copy: bool,
    ) -> CoreResult<BucketRecord> {
        validate_key(to)?;
        if copy {
            self.read_access(p, bucket, from, None).await?;
        } else {
            self.admit(p, Op::Delete, bucket, from).await?;
        }
        let b = self.admit(p, Op::Write, bucket, to).await?;
        if on_conflict == OnConflict::Replace {
            self.admit(p, Op::Delete, bucket, to).await?;
        }
        self.charge_request(p, &b).await?;
        Ok(b)
    }

    /// A move takes the source away (deleting it), a copy reads it; both write the
    /// destination, and `Replace` deletes what is there. With `AutoRename` the free name is
    /// chosen first and admitted like any destination (a scope covers the name it asked for,
    /// not necessarily `name(1)`), then taken with `Refuse`; taken meanwhile, it is chosen
    /// again.
    async fn transfer(
        &self,
        p: &Principal,
        bucket: &str,
        from: &str,
        to: &str,
        on_conflict: OnConflict,
        copy: bool,
    ) -> CoreResult<TreeEntry> {
        self.admit_transfer(p, bucket, from, to, on_conflict, copy).await?;
        let renaming = on_conflict == OnConflict::AutoRename && !(from == to && !copy);
        for _ in 0..3 {
            let (target, mode) = if renaming {
                let free = self.meta.free_key(bucket, to).await.map_err(tree_error)?;
                validate_key(&free)?;
                self.admit(p, Op::Write, bucket, &free).await?;
                (free, OnConflict::Refuse)
            } else {
                (to.to_owned(), on_conflict)
            };
            let m = TreeMove {
                bucket: bucket.to_owned(),
                from: from.to_owned(),
                to: target,
                on_conflict: mode,
                flat: false,
                now_ms: now_ms(),
            };
            let r = if copy { self.meta.copy_entry(m).await } else { self.meta.move_entry(m).await };
            match r {
                Err(StoreError::Exists) if renaming => continue,
                r => return r.map_err(tree_error),
            }
        }
        Err(CoreError::AlreadyExists)
    }

    /// Changes an entry's attributes (starred, description, user metadata); a file keeps
    /// its content.
    pub async fn update_attributes(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        update: AttrUpdate,
    ) -> CoreResult<TreeEntry> {
        let b = self.admit(p, Op::Write, bucket, key).await?;
        self.charge_request(p, &b).await?;
        let current = self.meta.get_entry(bucket, key).await?.ok_or(CoreError::NoSuchKey)?;
        let mut meta = current.metadata().clone();
        if let Some(s) = update.starred {
            meta.starred = s;
        }
        if let Some(d) = update.description {
            meta.description = (!d.is_empty()).then_some(d);
        }
        match update.user {
            None => {}
            Some(UserMetaChange::Merge(m)) => meta.user.extend(m),
            Some(UserMetaChange::Replace(m)) => meta.user = m,
            Some(UserMetaChange::Delete(names)) => {
                for n in names {
                    meta.user.remove(&n);
                }
            }
        }
        crate::names::validate_meta(&meta)?;
        self.meta.set_entry_meta(bucket, key, meta, now_ms()).await.map_err(tree_error)
    }

    /// What `folder` holds, all levels down (`""`: the whole bucket).
    pub async fn folder_usage(&self, p: &Principal, bucket: &str, folder: &str) -> CoreResult<FolderUsage> {
        check_folder_key(folder)?;
        let b = self.admit(p, Op::List, bucket, folder).await?;
        self.charge_request(p, &b).await?;
        Ok(self.meta.folder_usage(bucket, folder).await?)
    }

    /// The entries a search query matches (by name, kind, place, starred), paged by key.
    pub async fn search(
        &self,
        p: &Principal,
        bucket: &str,
        q: &SearchQuery,
        cursor: Option<&str>,
        limit: usize,
    ) -> CoreResult<Page<TreeEntry>> {
        check_folder_key(&q.under)?;
        let b = self.admit(p, Op::List, bucket, &q.under).await?;
        self.charge_request(p, &b).await?;
        let limit = limit.clamp(1, MAX_PAGE);
        let after = cursor.filter(|c| !c.is_empty());
        let items = self.meta.search(bucket, q, after, limit + 1).await?;
        Ok(page(items, limit, |e| e.key().to_owned()))
    }

    /// Moves a file or folder to the bucket's recycle bin (restorable until purged; it keeps
    /// counting toward the storage quota).
    pub async fn trash_entry(&self, p: &Principal, bucket: &str, key: &str) -> CoreResult<TrashItem> {
        let b = self.admit(p, Op::Delete, bucket, key).await?;
        self.charge_request(p, &b).await?;
        self.meta.trash(bucket, key, now_ms()).await.map_err(tree_error)
    }

    /// The bucket's recycle bin, newest first.
    pub async fn list_trash(
        &self,
        p: &Principal,
        bucket: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> CoreResult<Page<TrashItem>> {
        let b = self.admit(p, Op::List, bucket, "").await?;
        self.charge_request(p, &b).await?;
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => {
                let bad = || CoreError::InvalidArgument(format!("{c:?} is not a cursor this listing gave"));
                let (t, id) = c.split_once(':').ok_or_else(bad)?;
                Some((t.parse().map_err(|_| bad())?, id.to_owned()))
            }
        };
        let limit = limit.clamp(1, MAX_PAGE);
        let items = self.meta.list_trash(bucket, after, limit + 1).await?;
        Ok(page(items, limit, |t| format!("{}:{}", t.trashed_ms, t.id)))
    }

    async fn trash_item(&self, p: &Principal, bucket: &str, id: &str, op: Op) -> CoreResult<TrashItem> {
        self.admit_bucket(p, bucket).await?;
        let item = self.meta.get_trash(bucket, id).await?.ok_or(CoreError::NoSuchKey)?;
        let b = self.admit(p, op, bucket, &item.key).await?;
        self.charge_request(p, &b).await?;
        Ok(item)
    }

    /// Puts a trashed item back where it was (auto-renamed if the name was taken meanwhile;
    /// the name it takes is admitted like any write). `InvalidMove` if the folder it was in
    /// has been deleted.
    pub async fn restore(&self, p: &Principal, bucket: &str, id: &str) -> CoreResult<TreeEntry> {
        let item = self.trash_item(p, bucket, id, Op::Write).await?;
        for _ in 0..3 {
            let to = self.meta.free_key(bucket, &item.key).await.map_err(tree_error)?;
            validate_key(&to)?;
            self.admit(p, Op::Write, bucket, &to).await?;
            match self.meta.restore(bucket, id, &to, now_ms()).await {
                Err(StoreError::Exists) => continue,
                r => return r.map_err(tree_error),
            }
        }
        Err(CoreError::AlreadyExists)
    }

    /// Deletes a trashed item for good.
    pub async fn purge(&self, p: &Principal, bucket: &str, id: &str) -> CoreResult<TrashItem> {
        self.trash_item(p, bucket, id, Op::Delete).await?;
        self.meta.purge(bucket, id).await.map_err(tree_error)
    }

    /// GC's part: purges items trashed longer ago than the retention; returns how many.
    pub(crate) async fn purge_expired_trash(&self) -> CoreResult<u64> {
        let cutoff = now_ms() - self.config.trash_retention.as_millis() as i64;
        let mut purged = 0;
        loop {
            let due = self.meta.expired_trash(cutoff, 500).await?;
            if due.is_empty() {
                return Ok(purged);
            }
            for (bucket, id) in due {
                match self.meta.purge(&bucket, &id).await {
                    Ok(_) | Err(StoreError::NotFound) => purged += 1,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_in_their_folder() {
        let c = TreeCursor { value: -5, key: "a/b:c".into() };
        assert_eq!(decode_cursor(&encode_cursor(&c), "a/").unwrap(), c);
        assert!(decode_cursor(&encode_cursor(&c), "x/").is_err());
        assert!(decode_cursor("nonsense", "").is_err());
    }

    #[test]
    fn names() {
        assert!(validate_name("a.txt", 255).is_ok());
        for bad in ["", ".", "..", "a/b", "a\nb"] {
            assert!(validate_name(bad, 255).is_err(), "{bad:?}");
        }
        assert!(matches!(validate_name(&"x".repeat(256), 255), Err(CoreError::NameTooLong { limit: 255 })));
    }
}
