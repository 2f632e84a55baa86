//! The file tree over the flat key space: folder rows, folder listings in any order, moves
//! and copies of whole folders in one transaction, attributes, search and the recycle bin.
//!
//! Every folder that exists has a row in `folders`: explicit ones (a marker object at the
//! key) and implied ones (some key lies under them). Rows are kept in the same transaction as
//! the objects that imply them ([`tree_added`], [`tree_removed`]), so a folder listing is two
//! index range scans merged (files: `objects.parent`, folders: `folders.parent`), never a
//! scan of the folder's whole subtree. Marker objects have `parent` NULL: their folder row
//! stands for them in listings.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension};

use super::db::{Db, DbRow};
use super::refs::*;
use super::rows::*;
use super::SqlMetaStore;
use crate::meta::*;
use crate::model::*;

/// Most names auto-rename tries before giving up with `Exists`.
const MAX_RENAME_TRIES: u32 = 10_000;

pub(crate) const FOLDER_COLS: &str = "bucket, key, id, created, modified, meta, explicit, kept";

pub(crate) fn folder_from_row(row: &DbRow<'_>) -> rusqlite::Result<FolderRecord> {
    Ok(FolderRecord {
        bucket: row.get(0)?,
        key: row.get(1)?,
        id: row.get(2)?,
        created_ms: row.get(3)?,
        modified_ms: row.get(4)?,
        meta: from_json(&row.get::<String>(5)?)?,
        explicit: row.get(6)?,
        kept: row.get(7)?,
    })
}

/// The smallest string above every key under the folder `prefix` (which ends in `/`): the
/// exclusive end of its key range, so subtree statements are index range scans.
pub(crate) fn subtree_end(prefix: &str) -> String {
    match prefix.strip_suffix('/') {
        Some(stem) => format!("{stem}0"),
        // Not a folder key (callers check; this keeps a mistake from panicking or reading
        // past the prefix): the first string after every extension of it.
        None => prefix_successor(prefix).unwrap_or_else(|| prefix.to_owned()),
    }
}

/// `objects.parent` of a key: its folder for files, NULL for folder markers.
pub(crate) fn file_parent(key: &str) -> Option<&str> {
    (!key.ends_with('/')).then(|| parent_of(key))
}

pub(crate) fn get_folder_tx(c: &Db, bucket: &str, key: &str) -> StoreResult<Option<FolderRecord>> {
    c.query_row(
        &format!("SELECT {FOLDER_COLS} FROM folders WHERE bucket = ?1 AND key = ?2"),
        params![bucket, key],
        folder_from_row,
    )
    .optional()
    .map_err(backend)
}

/// The entry at `key`: a folder row for keys ending in `/`, else a file.
pub(crate) fn get_entry_tx(c: &Db, bucket: &str, key: &str) -> StoreResult<Option<TreeEntry>> {
    if key.ends_with('/') {
        Ok(get_folder_tx(c, bucket, key)?.map(TreeEntry::Folder))
    } else {
        Ok(get_object_tx(c, bucket, key)?.map(TreeEntry::File))
    }
}

fn exists(c: &Db, sql: &str, bucket: &str, key: &str) -> StoreResult<bool> {
    c.query_row(sql, params![bucket, key], |r| r.get(0)).map_err(backend)
}

fn folder_exists(c: &Db, bucket: &str, key: &str) -> StoreResult<bool> {
    exists(c, "SELECT EXISTS(SELECT 1 FROM folders WHERE bucket = ?1 AND key = ?2)", bucket, key)
}

fn file_exists(c: &Db, bucket: &str, key: &str) -> StoreResult<bool> {
    exists(c, "SELECT EXISTS(SELECT 1 FROM objects WHERE bucket = ?1 AND key = ?2)", bucket, key)
}

fn has_children(c: &Db, bucket: &str, folder: &str) -> StoreResult<bool> {
    exists(
        c,
        "SELECT EXISTS(SELECT 1 FROM objects WHERE bucket = ?1 AND parent = ?2)
             OR EXISTS(SELECT 1 FROM folders WHERE bucket = ?1 AND parent = ?2)",
        bucket,
        folder,
    )
}

/// Makes the folder `key` (and every folder above it) exist; `explicit` marks it as having a
/// marker object, `kept` marks it and every folder above it to stay when emptied. A new row
/// takes `id` if given.
pub(crate) fn ensure_folder(
    txn: &Db,
    bucket: &str,
    key: &str,
    explicit: bool,
    kept: bool,
    id: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    let mut key = key.to_owned();
    let mut explicit = explicit;
    let mut id = id.map(str::to_owned);
    while !key.is_empty() {
        match get_folder_tx(txn, bucket, &key)? {
            Some(f) => {
                if explicit && !f.explicit {
                    exec(txn, "UPDATE folders SET explicit = 1 WHERE bucket = ?1 AND key = ?2", params![bucket, key])
                        .map_err(backend)?;
                }
                if !kept || f.kept {
                    return Ok(());
                }
                exec(txn, "UPDATE folders SET kept = 1 WHERE bucket = ?1 AND key = ?2", params![bucket, key])
                    .map_err(backend)?;
            }
            None => {
                txn.execute(
                    "INSERT INTO folders(bucket, key, parent, id, created, modified, meta, explicit, kept)
                     VALUES(?1, ?2, ?3, ?4, ?5, ?5, '{}', ?6, ?7)",
                    params![bucket, key, parent_of(&key), id.take().unwrap_or_else(new_object_id), now, explicit, kept],
                )
                .map_err(backend)?;
            }
        }
        key = parent_of(&key).to_owned();
        explicit = false;
    }
    Ok(())
}

/// Removes the folder `key` and then each folder above it while it is implied (no marker,
/// not kept) and holds nothing.
pub(crate) fn prune(txn: &Db, bucket: &str, key: &str) -> StoreResult<()> {
    let mut key = key.to_owned();
    while !key.is_empty() {
        match get_folder_tx(txn, bucket, &key)? {
            Some(f) if !f.explicit && !f.kept && !has_children(txn, bucket, &key)? => {
                exec(txn, "DELETE FROM folders WHERE bucket = ?1 AND key = ?2", params![bucket, key])
                    .map_err(backend)?;
            }
            _ => return Ok(()),
        }
        key = parent_of(&key).to_owned();
    }
    Ok(())
}

/// Tree upkeep for an object row that was just inserted at a new key (`keep`: the folders
/// above it stay when emptied).
pub(crate) fn tree_added(txn: &Db, bucket: &str, key: &str, id: &str, now: i64, keep: bool) -> StoreResult<()> {
    if key.ends_with('/') {
        ensure_folder(txn, bucket, key, true, false, Some(id), now)?;
        if keep {
            ensure_folder(txn, bucket, parent_of(key), false, true, None, now)?;
        }
        Ok(())
    } else {
        ensure_folder(txn, bucket, parent_of(key), false, keep, None, now)
    }
}

/// Tree upkeep for an object row that was just deleted.
pub(crate) fn tree_removed(txn: &Db, bucket: &str, key: &str) -> StoreResult<()> {
    if key.ends_with('/') {
        exec(txn, "UPDATE folders SET explicit = 0 WHERE bucket = ?1 AND key = ?2", params![bucket, key])
            .map_err(backend)?;
        prune(txn, bucket, key)
    } else {
        prune(txn, bucket, parent_of(key))
    }
}

/// Refuses (`KindConflict`) a tree write at `key` when a file holds one of the folder names
/// on its path, or the other kind holds its own name.
pub(crate) fn check_kinds(txn: &Db, bucket: &str, key: &str) -> StoreResult<()> {
    check_kinds_on_path(txn, bucket, key)?;
    let clash = match key.strip_suffix('/') {
        Some(file) => file_exists(txn, bucket, file)?,
        None => folder_exists(txn, bucket, &format!("{key}/"))?,
    };
    if clash {
        return Err(StoreError::KindConflict);
    }
    Ok(())
}

/// `stem(n).ext` (files) or `name(n)` (folders) for the entry at `key`, in the same folder.
pub fn numbered_key(key: &str, n: u32) -> String {
    let parent = parent_of(key);
    let name = entry_name(key);
    if key.ends_with('/') {
        return format!("{parent}{name}({n})/");
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{parent}{stem}({n}).{ext}"),
        _ => format!("{parent}{name}({n})"),
    }
}

/// Where an entry can go at `to` under `mode`: the key to use, with whatever held it
/// removed (`Replace`). Fails `Exists` (refused, or no free name) or `KindConflict`.
fn destination(txn: &Db, bucket: &str, to: &str, mode: OnConflict) -> StoreResult<String> {
    check_kinds_on_path(txn, bucket, to)?;
    for n in 0..=MAX_RENAME_TRIES {
        let cand = if n == 0 { to.to_owned() } else { numbered_key(to, n) };
        if cand.len() > MAX_KEY_BYTES {
            return Err(StoreError::Exists);
        }
        let (same, other) = match cand.strip_suffix('/') {
            Some(file) => (folder_exists(txn, bucket, &cand)?, file_exists(txn, bucket, file)?),
            None => (file_exists(txn, bucket, &cand)?, folder_exists(txn, bucket, &format!("{cand}/"))?),
        };
        if !same && !other {
            return Ok(cand);
        }
        match mode {
            OnConflict::AutoRename => continue,
            OnConflict::Refuse if same => return Err(StoreError::Exists),
            OnConflict::Replace if same => {
                remove_entry(txn, bucket, &cand, false)?;
                return Ok(cand);
            }
            _ => return Err(StoreError::KindConflict),
        }
    }
    Err(StoreError::Exists)
}

/// Refuses (`KindConflict`) a key under a folder name that a file holds.
fn check_kinds_on_path(txn: &Db, bucket: &str, key: &str) -> StoreResult<()> {
    let mut folder = parent_of(key);
    while !folder.is_empty() {
        if file_exists(txn, bucket, &folder[..folder.len() - 1])? {
            return Err(StoreError::KindConflict);
        }
        folder = parent_of(folder);
    }
    Ok(())
}

/// The objects under folder `prefix` (its marker included), in key order.
fn objects_under(c: &Db, bucket: &str, prefix: &str) -> StoreResult<Vec<ObjectRecord>> {
    c.query_map(
        &format!("SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND key >= ?2 AND key < ?3 ORDER BY key"),
        params![bucket, prefix, subtree_end(prefix)],
        object_from_row,
    )
    .map_err(backend)
}

/// The folder rows under folder `prefix` (itself included), in key order.
fn folders_under(c: &Db, bucket: &str, prefix: &str) -> StoreResult<Vec<FolderRecord>> {
    c.query_map(
        &format!("SELECT {FOLDER_COLS} FROM folders WHERE bucket = ?1 AND key >= ?2 AND key < ?3 ORDER BY key"),
        params![bucket, prefix, subtree_end(prefix)],
        folder_from_row,
    )
    .map_err(backend)
}

/// Deletes a file, or a folder with everything under it (objects released, folder rows
/// gone), then (with `prune_parent`) prunes what held it. Making room for an entry about to
/// take the same place, the parent stays: an implied parent keeps its id.
fn remove_entry(txn: &Db, bucket: &str, key: &str, prune_parent: bool) -> StoreResult<FolderUsage> {
    let mut usage = FolderUsage::default();
    if key.ends_with('/') {
        for o in objects_under(txn, bucket, key)? {
            if !o.key.ends_with('/') {
                usage.files += 1;
                usage.bytes += o.size;
            }
            remove_object_row(txn, &o)?;
        }
        usage.folders = exec(
            txn,
            "DELETE FROM folders WHERE bucket = ?1 AND key >= ?2 AND key < ?3",
            params![bucket, key, subtree_end(key)],
        )
        .map_err(backend)? as u64;
    } else if let Some(o) = get_object_tx(txn, bucket, key)? {
        usage.files = 1;
        usage.bytes = o.size;
        remove_object_row(txn, &o)?;
    }
    if prune_parent {
        prune(txn, bucket, parent_of(key))?;
    }
    Ok(usage)
}

/// Rewrites the keys under `from` (a file key or a folder prefix) to start with `to` instead.
fn rekey(key: &str, from: &str, to: &str) -> String {
    format!("{to}{}", &key[from.len()..])
}

/// A folder cannot go into itself or below itself, nor replace a folder above it (which
/// would remove the folder being moved); onto a folder above it under another name (or
/// refused as taken) is fine.
fn check_move(from: &str, to: &str, mode: OnConflict) -> StoreResult<()> {
    if !from.ends_with('/') {
        return Ok(());
    }
    if to.starts_with(from) {
        return Err(StoreError::Conflict("a folder cannot go into itself".into()));
    }
    if from.starts_with(to) && mode == OnConflict::Replace {
        return Err(StoreError::Conflict("a folder cannot replace a folder it is in".into()));
    }
    Ok(())
}

/// UFile's rename: one plain key to another, whatever either looks like (no folder moves,
/// no name rule); `Replace` overwrites a key at `to`.
fn move_flat_tx(txn: &Db, m: &TreeMove) -> StoreResult<TreeEntry> {
    let (bucket, from, to) = (m.bucket.as_str(), m.from.as_str(), m.to.as_str());
    let src = get_object_tx(txn, bucket, from)?.ok_or(StoreError::NotFound)?;
    if from == to {
        return Ok(TreeEntry::File(src));
    }
    if let Some(existing) = get_object_tx(txn, bucket, to)? {
        if m.on_conflict != OnConflict::Replace {
            return Err(StoreError::Exists);
        }
        remove_object_row(txn, &existing)?;
    }
    exec(txn, "DELETE FROM objects WHERE bucket = ?1 AND key = ?2", params![bucket, from]).map_err(backend)?;
    insert_object_row(txn, &ObjectRecord { key: to.to_owned(), ..src.clone() })?;
    tree_removed(txn, bucket, from)?;
    tree_added(txn, bucket, to, &src.id, m.now_ms, false)?;
    Ok(TreeEntry::File(ObjectRecord { key: to.to_owned(), ..src }))
}

fn move_tx(txn: &Db, m: &TreeMove) -> StoreResult<TreeEntry> {
    if m.flat {
        return move_flat_tx(txn, m);
    }
    let (bucket, from) = (m.bucket.as_str(), m.from.as_str());
    let folder = from.ends_with('/');
    if folder != m.to.ends_with('/') {
        return Err(StoreError::KindConflict);
    }
    let Some(src) = get_entry_tx(txn, bucket, from)? else { return Err(StoreError::NotFound) };
    if from == m.to {
        return Ok(src);
    }
    check_move(from, &m.to, m.on_conflict)?;
    let to = destination(txn, bucket, &m.to, m.on_conflict)?;
    if folder {
        let end = subtree_end(from);
        exec(
            txn,
            "UPDATE objects SET key = ?4 || substr(key, length(?2) + 1),
                    parent = CASE WHEN parent IS NULL THEN NULL ELSE ?4 || substr(parent, length(?2) + 1) END
             WHERE bucket = ?1 AND key >= ?2 AND key < ?3",
            params![bucket, from, end, to],
        )
        .map_err(backend)?;
        exec(
            txn,
            "UPDATE folders SET key = ?4 || substr(key, length(?2) + 1),
                    parent = CASE WHEN key = ?2 THEN ?5 ELSE ?4 || substr(parent, length(?2) + 1) END
             WHERE bucket = ?1 AND key >= ?2 AND key < ?3",
            params![bucket, from, end, to, parent_of(&to)],
        )
        .map_err(backend)?;
    } else {
        exec(
            txn,
            "UPDATE objects SET key = ?3, parent = ?4 WHERE bucket = ?1 AND key = ?2",
            params![bucket, from, to, parent_of(&to)],
        )
        .map_err(backend)?;
    }
    // The destination's folders first: a parent both sides share keeps its row (and id).
    ensure_folder(txn, bucket, parent_of(&to), false, false, None, m.now_ms)?;
    prune(txn, bucket, parent_of(from))?;
    get_entry_tx(txn, bucket, &to)?.ok_or(StoreError::NotFound)
}

fn copy_tx(txn: &Db, m: &TreeMove) -> StoreResult<TreeEntry> {
    let (bucket, from) = (m.bucket.as_str(), m.from.as_str());
    let folder = from.ends_with('/');
    if folder != m.to.ends_with('/') {
        return Err(StoreError::KindConflict);
    }
    let Some(src) = get_entry_tx(txn, bucket, from)? else { return Err(StoreError::NotFound) };
    // Onto itself, replacing: nothing to do (UpYun copies a file onto itself to change its
    // metadata).
    if from == m.to && m.on_conflict == OnConflict::Replace {
        return Ok(src);
    }
    check_move(from, &m.to, m.on_conflict)?;
    let to = destination(txn, bucket, &m.to, m.on_conflict)?;
    let (objects, folders) = if folder {
        (objects_under(txn, bucket, from)?, folders_under(txn, bucket, from)?)
    } else {
        (get_object_tx(txn, bucket, from)?.into_iter().collect(), Vec::new())
    };
    for f in &folders {
        let key = rekey(&f.key, from, &to);
        txn.execute(
            "INSERT INTO folders(bucket, key, parent, id, created, modified, meta, explicit, kept)
             VALUES(?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8)",
            params![bucket, key, parent_of(&key), new_object_id(), m.now_ms, to_json(&f.meta)?, f.explicit, f.kept],
        )
        .map_err(backend)?;
    }
    let mut grown = 0i64;
    for o in &objects {
        let key = rekey(&o.key, from, &to);
        let mut meta = o.meta.clone();
        meta.access = ObjectAccess::Inherit;
        insert_object_row(
            txn,
            &ObjectRecord {
                id: new_object_id(),
                bucket: bucket.to_owned(),
                key,
                created_ms: m.now_ms,
                modified_ms: m.now_ms,
                meta,
                ..o.clone()
            },
        )?;
        exec(txn, "UPDATE contents SET refs = refs + 1 WHERE id = ?1", params![o.content_id]).map_err(backend)?;
        grown += o.size as i64;
    }
    super::refs::add_bucket_bytes(txn, bucket, grown)?;
    if grown > 0 {
        check_quota(txn, bucket)?;
    }
    ensure_folder(txn, bucket, parent_of(&to), false, false, None, m.now_ms)?;
    get_entry_tx(txn, bucket, &to)?.ok_or(StoreError::NotFound)
}

/// Inserts an object row as it is (id, timestamps, content) with its tree columns.
fn insert_object_row(txn: &Db, o: &ObjectRecord) -> StoreResult<()> {
    txn.execute(
        "INSERT INTO objects(bucket, key, content, size, etag, modified, meta, id, parent, created)
         VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
        params![
            o.bucket,
            o.key,
            o.content_id,
            o.size as i64,
            o.etag,
            o.modified_ms,
            to_json(&o.meta)?,
            o.id,
            file_parent(&o.key),
            o.created_ms
        ],
    )
    .map_err(backend)?;
    Ok(())
}

/// The tenant of `bucket` stores at most its quota's `storage_bytes` (trash included);
/// checked after a write that grew it, inside its transaction, which the error rolls back.
/// The limit is read in the same transaction, so a quota set on any node holds at once.
pub(crate) fn check_quota(txn: &Db, bucket: &str) -> StoreResult<()> {
    let limit: Option<Option<i64>> = query_one(
        txn,
        "SELECT storage_bytes FROM quotas WHERE tenant = (SELECT tenant FROM buckets WHERE name = ?1)",
        params![bucket],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend)?;
    let Some(Some(limit)) = limit else { return Ok(()) };
    let tenant: String =
        query_one(txn, "SELECT tenant FROM buckets WHERE name = ?1", params![bucket], |r| r.get(0)).map_err(backend)?;
    let used: i64 = query_one(txn, super::refs::TENANT_BYTES_OF, params![tenant], |r| r.get(0)).map_err(backend)?;
    if used > limit {
        return Err(StoreError::QuotaExceeded);
    }
    Ok(())
}

const ENTRY_COLS_FILE: &str = "0, bucket, key, content, size, etag, modified, created, meta, id, 0";
const ENTRY_COLS_FOLDER: &str = "1, bucket, key, 0, 0, '', modified, created, meta, id, explicit * 2 + kept";

fn entry_from_row(row: &DbRow<'_>) -> rusqlite::Result<TreeEntry> {
    let kind: i64 = row.get(0)?;
    let meta = from_json(&row.get::<String>(8)?)?;
    Ok(if kind == 0 {
        TreeEntry::File(ObjectRecord {
            bucket: row.get(1)?,
            key: row.get(2)?,
            content_id: row.get(3)?,
            size: row.get::<i64>(4)? as u64,
            etag: row.get(5)?,
            modified_ms: row.get(6)?,
            created_ms: row.get(7)?,
            meta,
            id: row.get(9)?,
        })
    } else {
        TreeEntry::Folder(FolderRecord {
            bucket: row.get(1)?,
            key: row.get(2)?,
            modified_ms: row.get(6)?,
            created_ms: row.get(7)?,
            meta,
            id: row.get(9)?,
            // Both flags in one column so the compound's arms keep one shape.
            explicit: row.get::<i64>(10)? & 2 != 0,
            kept: row.get::<i64>(10)? & 1 != 0,
        })
    })
}

/// The compound statement listing one folder: files and folders each read in order from
/// their `(bucket, parent, <sort column>, key)` index and merged, so a page costs its own
/// rows whatever the folder holds (checked with EXPLAIN in the tests).
pub(crate) fn list_sql(order: TreeOrder, kinds: EntryKinds, with_cursor: bool, with_prefix: bool) -> String {
    let (file_v, folder_v) = match order.by {
        OrderBy::Name => ("''", "''"),
        OrderBy::Modified => ("modified", "modified"),
        OrderBy::Created => ("created", "created"),
        // Folders' `size` column is always 0: a column (not a literal) so its index orders them.
        OrderBy::Size => ("size", "size"),
    };
    let dir = if order.descending { "DESC" } else { "ASC" };
    let cmp = if order.descending { "<" } else { ">" };
    // Names starting with a prefix: keys in [?6, ?7) (?7 NULL: up to the end). Only then:
    // the planner would otherwise prefer that range to the order's index. Served from the
    // index in name order; other orders sort the prefix's entries.
    let cursor = |v: &str| {
        let range = if with_prefix { " AND key >= ?6 AND (CAST(?7 AS TEXT) IS NULL OR key < ?7)" } else { "" };
        if !with_cursor {
            range.to_owned()
        } else if order.by == OrderBy::Name {
            format!("{range} AND key {cmp} ?4")
        } else {
            format!("{range} AND ({v}, key) {cmp} (?3, ?4)")
        }
    };
    let files = format!(
        "SELECT {ENTRY_COLS_FILE}, {file_v} AS v FROM objects WHERE bucket = ?1 AND parent = ?2{}",
        cursor(file_v)
    );
    let folders = format!(
        "SELECT {ENTRY_COLS_FOLDER}, {folder_v} AS v FROM folders WHERE bucket = ?1 AND parent = ?2{}",
        cursor(folder_v)
    );
    let select = match kinds {
        EntryKinds::All => format!("{files} UNION ALL {folders}"),
        EntryKinds::Files => files,
        EntryKinds::Folders => folders,
    };
    let sort = if order.by == OrderBy::Name { format!("3 {dir}") } else { format!("12 {dir}, 3 {dir}") };
    format!("{select} ORDER BY {sort} LIMIT ?5")
}

fn trash_from_row(row: &DbRow<'_>) -> rusqlite::Result<TrashItem> {
    Ok(TrashItem {
        bucket: row.get(0)?,
        id: row.get(1)?,
        key: row.get(2)?,
        folder: row.get(3)?,
        size: row.get::<i64>(4)? as u64,
        trashed_ms: row.get(5)?,
        created_ms: row.get(6)?,
        modified_ms: row.get(7)?,
        meta: from_json(&row.get::<String>(8)?)?,
    })
}

const TRASH_COLS: &str = "bucket, id, key, folder, size, trashed, created, modified, meta";

fn get_trash_tx(c: &Db, bucket: &str, id: &str) -> StoreResult<Option<(TrashItem, bool)>> {
    query_one(
        c,
        &format!("SELECT {TRASH_COLS}, parent_explicit FROM trash WHERE bucket = ?1 AND id = ?2"),
        params![bucket, id],
        |r| Ok((trash_from_row(r)?, r.get(9)?)),
    )
    .optional()
    .map_err(backend)
}

fn trash_tx(txn: &Db, bucket: &str, key: &str, now: i64) -> StoreResult<TrashItem> {
    let entry = get_entry_tx(txn, bucket, key)?.ok_or(StoreError::NotFound)?;
    let parent = parent_of(key);
    let parent_explicit =
        parent.is_empty() || get_folder_tx(txn, bucket, parent)?.is_some_and(|f| f.explicit || f.kept);
    let item_id = entry.id().to_owned();
    let objects = match &entry {
        TreeEntry::Folder(_) => objects_under(txn, bucket, key)?,
        TreeEntry::File(o) => vec![o.clone()],
    };
    let mut size = 0u64;
    for o in &objects {
        txn.execute(
            "INSERT INTO trash_objects(bucket, item, key, content, size, etag, modified, created, meta, id)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
            params![
                bucket,
                item_id,
                o.key,
                o.content_id,
                o.size as i64,
                o.etag,
                o.modified_ms,
                o.created_ms,
                to_json(&o.meta)?,
                o.id
            ],
        )
        .map_err(backend)?;
        exec(txn, "DELETE FROM objects WHERE bucket = ?1 AND key = ?2", params![bucket, o.key]).map_err(backend)?;
        size += o.size;
    }
    if entry.is_folder() {
        exec(
            txn,
            "INSERT INTO trash_folders(bucket, item, key, id, created, modified, meta, explicit, kept)
             SELECT bucket, ?4, key, id, created, modified, meta, explicit, kept FROM folders
             WHERE bucket = ?1 AND key >= ?2 AND key < ?3",
            params![bucket, key, subtree_end(key), item_id],
        )
        .map_err(backend)?;
        exec(
            txn,
            "DELETE FROM folders WHERE bucket = ?1 AND key >= ?2 AND key < ?3",
            params![bucket, key, subtree_end(key)],
        )
        .map_err(backend)?;
    }
    prune(txn, bucket, parent)?;
    let item = TrashItem {
        id: item_id,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        folder: entry.is_folder(),
        size,
        trashed_ms: now,
        created_ms: entry.created_ms(),
        modified_ms: entry.modified_ms(),
        meta: entry.metadata().clone(),
    };
    exec(
        txn,
        &format!("INSERT INTO trash({TRASH_COLS}, parent_explicit) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)"),
        params![
            item.bucket,
            item.id,
            item.key,
            item.folder,
            item.size as i64,
            item.trashed_ms,
            item.created_ms,
            item.modified_ms,
            to_json(&item.meta)?,
            parent_explicit
        ],
    )
    .map_err(backend)?;
    Ok(item)
}

fn trashed_objects(c: &Db, bucket: &str, item: &str) -> StoreResult<Vec<ObjectRecord>> {
    c.query_map(
        "SELECT bucket, key, content, size, etag, modified, meta, id, created FROM trash_objects
             WHERE bucket = ?1 AND item = ?2 ORDER BY key",
        params![bucket, item],
        object_from_row,
    )
    .map_err(backend)
}

fn drop_trash_rows(txn: &Db, bucket: &str, item: &str) -> StoreResult<()> {
    for table in ["trash_objects", "trash_folders"] {
        exec(txn, &format!("DELETE FROM {table} WHERE bucket = ?1 AND item = ?2"), params![bucket, item])
            .map_err(backend)?;
    }
    exec(txn, "DELETE FROM trash WHERE bucket = ?1 AND id = ?2", params![bucket, item]).map_err(backend)?;
    Ok(())
}

fn restore_tx(txn: &Db, bucket: &str, id: &str, to: &str, now: i64) -> StoreResult<TreeEntry> {
    let (item, parent_explicit) = get_trash_tx(txn, bucket, id)?.ok_or(StoreError::NotFound)?;
    let parent = parent_of(&item.key);
    if !parent.is_empty() && parent_explicit && !folder_exists(txn, bucket, parent)? {
        return Err(StoreError::Conflict("the folder it was in no longer exists".into()));
    }
    if parent_of(to) != parent || to.ends_with('/') != item.folder {
        return Err(StoreError::Conflict("an entry is restored into the folder it was in".into()));
    }
    let to = destination(txn, bucket, to, OnConflict::Refuse)?;
    for o in trashed_objects(txn, bucket, id)? {
        insert_object_row(txn, &ObjectRecord { key: rekey(&o.key, &item.key, &to), ..o })?;
    }
    if item.folder {
        exec(
            txn,
            "INSERT INTO folders(bucket, key, parent, id, created, modified, meta, explicit, kept)
             SELECT bucket, ?3 || substr(key, length(?4) + 1), '', id, created, modified, meta, explicit, kept
             FROM trash_folders WHERE bucket = ?1 AND item = ?2",
            params![bucket, id, to, item.key],
        )
        .map_err(backend)?;
        // Parents are computed in Rust (SQLite has no "last index of").
        let keys: Vec<String> = {
            txn.query_map(
                "SELECT key FROM folders WHERE bucket = ?1 AND key >= ?2 AND key < ?3",
                params![bucket, to, subtree_end(&to)],
                |r| r.get(0),
            )
            .map_err(backend)?
        };
        for k in keys {
            exec(
                txn,
                "UPDATE folders SET parent = ?3 WHERE bucket = ?1 AND key = ?2",
                params![bucket, k, parent_of(&k)],
            )
            .map_err(backend)?;
        }
    }
    drop_trash_rows(txn, bucket, id)?;
    ensure_folder(txn, bucket, parent_of(&to), false, false, None, now)?;
    get_entry_tx(txn, bucket, &to)?.ok_or(StoreError::NotFound)
}

/// Frees a trash item: its objects' content references and bytes go.
pub(crate) fn purge_tx(txn: &Db, bucket: &str, id: &str) -> StoreResult<TrashItem> {
    let (item, _) = get_trash_tx(txn, bucket, id)?.ok_or(StoreError::NotFound)?;
    for o in trashed_objects(txn, bucket, id)? {
        super::refs::add_bucket_bytes(txn, bucket, -(o.size as i64))?;
        content_unref(txn, o.content_id)?;
    }
    drop_trash_rows(txn, bucket, id)?;
    Ok(item)
}

#[async_trait]
impl TreeStore for SqlMetaStore {
    async fn list_folder(
        &self,
        bucket: &str,
        q: &FolderQuery,
        after: Option<TreeCursor>,
        limit: usize,
    ) -> StoreResult<Vec<TreeEntry>> {
        let bucket = bucket.to_owned();
        let q = q.clone();
        self.read(move |c| {
            let with_prefix = !q.name_prefix.is_empty();
            let sql = list_sql(q.order, q.kinds, after.is_some(), with_prefix);
            let (v, k) = after.map_or((0, String::new()), |a| (a.value, a.key));
            let mut values: Vec<Value> = vec![
                Value::Text(bucket),
                Value::Text(q.folder.clone()),
                Value::Integer(v),
                Value::Text(k),
                Value::Integer(limit as i64),
            ];
            if with_prefix {
                let from = format!("{}{}", q.folder, q.name_prefix);
                values.push(prefix_successor(&from).map_or(Value::Null, Value::Text));
                values.insert(5, Value::Text(from));
            }
            c.query_map(&sql, &param_refs(&values), entry_from_row).map_err(backend)
        })
        .await
    }

    async fn get_entry(&self, bucket: &str, key: &str) -> StoreResult<Option<TreeEntry>> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.read(move |c| get_entry_tx(c, &bucket, &key)).await
    }

    async fn get_entry_by_id(&self, bucket: &str, id: &str) -> StoreResult<Option<TreeEntry>> {
        let (bucket, id) = (bucket.to_owned(), id.to_owned());
        self.read(move |c| {
            let folder = query_one(
                c,
                &format!("SELECT {FOLDER_COLS} FROM folders WHERE bucket = ?1 AND id = ?2"),
                params![bucket, id],
                folder_from_row,
            )
            .optional()
            .map_err(backend)?;
            if let Some(f) = folder {
                return Ok(Some(TreeEntry::Folder(f)));
            }
            let obj = query_one(
                c,
                &format!("SELECT {OBJECT_COLS} FROM objects WHERE bucket = ?1 AND id = ?2"),
                params![bucket, id],
                object_from_row,
            )
            .optional()
            .map_err(backend)?;
            match obj {
                // A marker object stands for its folder.
                Some(o) if o.key.ends_with('/') => Ok(get_folder_tx(c, &bucket, &o.key)?.map(TreeEntry::Folder)),
                other => Ok(other.map(TreeEntry::File)),
            }
        })
        .await
    }

    async fn move_entry(&self, m: TreeMove) -> StoreResult<TreeEntry> {
        self.write(move |txn| move_tx(txn, &m)).await
    }

    async fn copy_entry(&self, m: TreeMove) -> StoreResult<TreeEntry> {
        self.write(move |txn| copy_tx(txn, &m)).await
    }

    async fn free_key(&self, bucket: &str, key: &str) -> StoreResult<String> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        // Auto-rename only reads.
        self.read(move |c| destination(c, &bucket, &key, OnConflict::AutoRename)).await
    }

    async fn delete_entry(&self, bucket: &str, key: &str, recursive: bool) -> StoreResult<FolderUsage> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |txn| {
            if get_entry_tx(txn, &bucket, &key)?.is_none() {
                return Err(StoreError::NotFound);
            }
            if key.ends_with('/') && !recursive && has_children(txn, &bucket, &key)? {
                return Err(StoreError::NotEmpty);
            }
            remove_entry(txn, &bucket, &key, true)
        })
        .await
    }

    async fn set_entry_meta(&self, bucket: &str, key: &str, meta: ObjectMeta, now_ms: i64) -> StoreResult<TreeEntry> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |txn| {
            let table = if key.ends_with('/') { "folders" } else { "objects" };
            let n = exec(
                txn,
                &format!("UPDATE {table} SET meta = ?3, modified = ?4 WHERE bucket = ?1 AND key = ?2"),
                params![bucket, key, to_json(&meta)?, now_ms],
            )
            .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            get_entry_tx(txn, &bucket, &key)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn folder_usage(&self, bucket: &str, folder: &str) -> StoreResult<FolderUsage> {
        let (bucket, folder) = (bucket.to_owned(), folder.to_owned());
        self.read(move |c| {
            let (lo, hi) =
                if folder.is_empty() { (String::new(), None) } else { (folder.clone(), Some(subtree_end(&folder))) };
            let (files, bytes): (i64, i64) = query_one(
                c,
                "SELECT count(*), CAST(coalesce(sum(size), 0) AS BIGINT) FROM objects
                     WHERE bucket = ?1 AND key >= ?2 AND (CAST(?3 AS TEXT) IS NULL OR key < ?3) AND parent IS NOT NULL",
                params![bucket, lo, hi],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(backend)?;
            let folders: i64 = query_one(
                c,
                "SELECT count(*) FROM folders WHERE bucket = ?1 AND key > ?2 AND (CAST(?3 AS TEXT) IS NULL OR key < ?3)",
                params![bucket, lo, hi],
                |r| r.get(0),
            )
            .map_err(backend)?;
            Ok(FolderUsage { bytes: bytes as u64, files: files as u64, folders: folders as u64 })
        })
        .await
    }

    async fn search(
        &self,
        bucket: &str,
        q: &SearchQuery,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<TreeEntry>> {
        let under = q.under.as_str();
        let hi = (!under.is_empty()).then(|| subtree_end(under));
        let mut values = vec![
            Value::Text(bucket.to_owned()),
            Value::Text(after.filter(|a| *a >= under).unwrap_or(under).to_owned()),
            hi.map_or(Value::Null, Value::Text),
            // ASCII only, as SQLite's lower() folds.
            Value::Text(q.name.to_ascii_lowercase()),
            Value::Integer(limit as i64),
        ];
        if q.direct {
            values.push(Value::Text(under.to_owned()));
        }
        // The name is what follows the parent (a folder's without its `/`), compared without
        // regard to ASCII case. A scan of the keys under `under`, paged by key.
        let (file_name, folder_name) =
            ("substr(key, length(parent) + 1)", "substr(key, length(parent) + 1, length(key) - length(parent) - 1)");
        let d = self.dialect();
        let test = |name: &str| {
            let mut t = if q.exact {
                format!(" AND lower({name}) = ?4")
            } else {
                format!(" AND {} > 0", d.position(&format!("lower({name})"), "?4"))
            };
            if q.direct {
                t.push_str(" AND parent = ?6");
            }
            if q.starred {
                t.push_str(&format!(" AND {}", d.json_is_true("meta", "$.starred")));
            }
            t
        };
        let files = format!(
            "SELECT {ENTRY_COLS_FILE}, '' FROM objects
             WHERE bucket = ?1 AND key > ?2 AND (CAST(?3 AS TEXT) IS NULL OR key < ?3) AND parent IS NOT NULL{}",
            test(file_name)
        );
        let folders = format!(
            "SELECT {ENTRY_COLS_FOLDER}, '' FROM folders WHERE bucket = ?1 AND key > ?2 AND (CAST(?3 AS TEXT) IS NULL OR key < ?3){}",
            test(folder_name)
        );
        let select = match q.kinds {
            EntryKinds::All => format!("{files} UNION ALL {folders}"),
            EntryKinds::Files => files,
            EntryKinds::Folders => folders,
        };
        self.read(move |c| {
            let sql = format!("{select} ORDER BY 3 LIMIT ?5");
            c.query_map(&sql, &param_refs(&values), entry_from_row).map_err(backend)
        })
        .await
    }

    async fn trash(&self, bucket: &str, key: &str, now_ms: i64) -> StoreResult<TrashItem> {
        let (bucket, key) = (bucket.to_owned(), key.to_owned());
        self.write(move |txn| trash_tx(txn, &bucket, &key, now_ms)).await
    }

    async fn list_trash(
        &self,
        bucket: &str,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<TrashItem>> {
        let bucket = bucket.to_owned();
        self.read(move |c| {
            let (t, id) = after.unwrap_or((i64::MAX, String::new()));
            c.query_map(
                &format!(
                    "SELECT {TRASH_COLS} FROM trash WHERE bucket = ?1 AND (trashed, id) < (?2, ?3)
                     ORDER BY trashed DESC, id DESC LIMIT ?4"
                ),
                params![bucket, t, id, limit as i64],
                trash_from_row,
            )
            .map_err(backend)
        })
        .await
    }

    async fn get_trash(&self, bucket: &str, id: &str) -> StoreResult<Option<TrashItem>> {
        let (bucket, id) = (bucket.to_owned(), id.to_owned());
        self.read(move |c| Ok(get_trash_tx(c, &bucket, &id)?.map(|(t, _)| t))).await
    }

    async fn restore(&self, bucket: &str, id: &str, to: &str, now_ms: i64) -> StoreResult<TreeEntry> {
        let (bucket, id, to) = (bucket.to_owned(), id.to_owned(), to.to_owned());
        self.write(move |txn| restore_tx(txn, &bucket, &id, &to, now_ms)).await
    }

    async fn purge(&self, bucket: &str, id: &str) -> StoreResult<TrashItem> {
        let (bucket, id) = (bucket.to_owned(), id.to_owned());
        self.write(move |txn| purge_tx(txn, &bucket, &id)).await
    }

    async fn expired_trash(&self, cutoff_ms: i64, limit: usize) -> StoreResult<Vec<(String, String)>> {
        self.read(move |c| {
            c.query_map(
                "SELECT bucket, id FROM trash WHERE trashed < ?1 ORDER BY trashed LIMIT ?2",
                params![cutoff_ms, limit as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(backend)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    /// Every listing order is read from indexes and merged: no sort of the folder's rows.
    #[test]
    fn listings_are_served_by_indexes() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::sqlite_schema::migrate(&mut conn).unwrap();
        for by in [OrderBy::Name, OrderBy::Modified, OrderBy::Created, OrderBy::Size] {
            for descending in [false, true] {
                for (cursor, kinds, prefix) in [
                    (false, EntryKinds::All, false),
                    (true, EntryKinds::All, false),
                    (true, EntryKinds::Files, false),
                    (true, EntryKinds::All, by == OrderBy::Name),
                ] {
                    let sql = list_sql(TreeOrder { by, descending }, kinds, cursor, prefix);
                    let values: &[&dyn rusqlite::ToSql] = if prefix {
                        &[&"b", &"f/", &0, &"k", &10, &"f/a", &"f/b"]
                    } else {
                        &[&"b", &"f/", &0, &"k", &10]
                    };
                    let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
                    let plan: Vec<String> =
                        st.query_map(values, |r| r.get::<_, String>(3)).unwrap().collect::<Result<_, _>>().unwrap();
                    let plan = plan.join(" | ");
                    assert!(!plan.contains("TEMP B-TREE"), "{by:?} {descending} {cursor}: {plan}");
                    assert!(plan.contains("MERGE") || kinds != EntryKinds::All, "{by:?} {descending} {cursor}: {plan}");
                    assert!(!plan.contains("SCAN objects") && !plan.contains("SCAN folders"), "{plan}");
                }
            }
        }
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered_key("a/b.txt", 2), "a/b(2).txt");
        assert_eq!(numbered_key("a/.rc", 1), "a/.rc(1)");
        assert_eq!(numbered_key("dir/", 1), "dir(1)/");
        assert_eq!(numbered_key("x/y/", 3), "x/y(3)/");
    }
}
