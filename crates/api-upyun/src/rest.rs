//! Objects and folders over REST, over the core's file tree: put, get/head (with
//! `x-upyun-meta-*`), delete, mkdir, `PATCH ?metadata`, text listings, copy/move of files and
//! whole folders, usage.

use chuan_api_common::RequestBody;
use chuan_core::store::{FolderQuery, ObjectMeta, OnConflict, OrderBy, TreeEntry, TreeOrder};
use chuan_core::{AttrUpdate, CoreError, Op, Principal, PutTarget, StageOptions, UserMetaChange};
use http::request::Parts;
use http::{header as h, Response, StatusCode};
use std::collections::BTreeMap;

use crate::error::{UpyunError, UpyunResult};
use crate::{header, Resp, UpyunDialect};

/// The `x-upyun-list-iter` value that says "no more entries".
pub const LIST_END: &str = "g2gCZAAEbmV4dGQAA2VvZg";

fn folder_key(key: &str) -> String {
    if key.ends_with('/') {
        key.to_owned()
    } else {
        format!("{key}/")
    }
}

/// The attribute `Content-Secret` is kept in.
pub(crate) const CONTENT_SECRET: &str = "upyun-content-secret";

/// The prefix of UpYun's user-metadata headers (`x-upyun-meta-<name>: <value>`).
const META_PREFIX: &str = "x-upyun-meta-";

/// Longest file or folder name UpYun takes, in bytes.
const MAX_NAME: usize = 255;

/// `x-upyun-meta-*` headers as (name, value), names lower-case without the prefix.
fn user_meta(parts: &Parts) -> BTreeMap<String, String> {
    parts
        .headers
        .iter()
        .filter_map(|(n, v)| {
            let name = n.as_str().strip_prefix(META_PREFIX)?;
            Some((name.to_owned(), v.to_str().ok()?.to_owned()))
        })
        .filter(|(n, _)| !n.is_empty())
        .collect()
}

/// An upload's metadata from its headers; `key`'s extension gives the type when none is sent.
pub(crate) fn meta_of(parts: &Parts, key: &str) -> ObjectMeta {
    let mut meta = ObjectMeta {
        content_type: Some(crate::types::content_type(header(parts, "content-type"), key)),
        user: user_meta(parts),
        ..Default::default()
    };
    // `Content-Secret` guards downloads through UpYun's CDN; kept with the object.
    if let Some(secret) = header(parts, "content-secret") {
        meta.attrs.insert(CONTENT_SECRET.into(), secret.to_owned());
    }
    meta
}

/// Every segment of a path is a name UpYun takes: at most 255 bytes (40300003 otherwise).
fn check_names(key: &str) -> UpyunResult<()> {
    for seg in key.trim_end_matches('/').split('/') {
        if seg.len() > MAX_NAME {
            return Err(CoreError::NameTooLong { limit: MAX_NAME }.into());
        }
    }
    Ok(())
}

impl UpyunDialect {
    pub(crate) async fn put(
        &self,
        p: &Principal,
        parts: &Parts,
        bucket: &str,
        key: &str,
        body: RequestBody,
    ) -> UpyunResult<Resp> {
        chuan_core::names::validate_key(key)?;
        check_names(key)?;
        self.engine.check_access(p, Op::Write, bucket, key).await?;
        // UpYun answers with MD5s only: the SHA-1 of a big body is left to the background job.
        let options = StageOptions::default().deferring_sha1();
        let staged = self.engine.stage_with(p, http_body_util::BodyDataStream::new(body), options).await?;
        if header(parts, "content-md5").is_some_and(|m| !m.eq_ignore_ascii_case(&staged.digests.md5)) {
            return Err(UpyunError::new(StatusCode::BAD_REQUEST, 40000006, "Content-MD5 not match"));
        }
        let md5 = staged.digests.md5.clone();
        let target = PutTarget {
            meta: meta_of(parts, key),
            tree: chuan_core::store::TreeRule::KeepFolders,
            ..PutTarget::new(bucket, key)
        };
        self.engine.commit_put(p, target, staged).await?;
        Ok(stored(&md5))
    }

    /// The file at `key`, else the folder (explicit or implied) at `key/`.
    async fn entry(&self, p: &Principal, bucket: &str, key: &str) -> UpyunResult<TreeEntry> {
        if !key.ends_with('/') {
            match self.engine.entry(p, bucket, key).await {
                Err(CoreError::NoSuchKey) => {}
                r => return Ok(r?),
            }
        }
        Ok(self.engine.entry(p, bucket, &folder_key(key)).await?)
    }

    /// GET (with `Range`) and HEAD of a file; HEAD also answers for folders. User metadata
    /// comes back as `x-upyun-meta-*` headers.
    pub(crate) async fn get(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        with_body: bool,
        range: Option<&str>,
    ) -> UpyunResult<Resp> {
        let entry = if with_body {
            TreeEntry::File(self.engine.head_object(p, bucket, key).await?)
        } else {
            self.entry(p, bucket, key).await?
        };
        let mut b = Response::builder()
            .status(StatusCode::OK)
            .header("x-upyun-file-type", if entry.is_folder() { "folder" } else { "file" })
            .header("x-upyun-file-size", entry.size())
            .header("x-upyun-file-date", entry.modified_ms() / 1000)
            .header(h::ACCEPT_RANGES, "bytes");
        for (name, value) in &entry.metadata().user {
            if let (Ok(n), Ok(v)) =
                (http::HeaderName::try_from(format!("{META_PREFIX}{name}")), http::HeaderValue::from_str(value))
            {
                b = b.header(n, v);
            }
        }
        let TreeEntry::File(rec) = entry else {
            return Ok(b.header(h::CONTENT_LENGTH, 0).body(chuan_api_common::empty()).expect("valid"));
        };
        b = b.header(h::ETAG, format!("\"{}\"", rec.etag)).header(
            h::CONTENT_TYPE,
            rec.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
        );
        if let Some(md5) = (!rec.etag.contains('-')).then_some(&rec.etag) {
            b = b.header("content-md5", md5.as_str());
        }
        if !with_body {
            return Ok(b.header(h::CONTENT_LENGTH, rec.size).body(chuan_api_common::empty()).expect("valid"));
        }
        let (b, start, end) = chuan_api_common::with_range(b, range, rec.size)
            .map_err(|()| UpyunError::new(StatusCode::RANGE_NOT_SATISFIABLE, 41600001, "range not satisfiable"))?;
        let content = self.engine.content_for_read(&rec).await?;
        Ok(b.header(h::CONTENT_LENGTH, end - start)
            .body(chuan_api_common::stream(self.engine.open_read(p, &rec, &content, start, end).await?))
            .expect("valid"))
    }

    /// `GET /<service>/<path>`: the file, or the folder's listing when the path names a folder
    /// (with or without the trailing `/`).
    pub(crate) async fn get_or_list(&self, p: &Principal, parts: &Parts, bucket: &str, key: &str) -> UpyunResult<Resp> {
        match self.get(p, bucket, key, true, header(parts, "range")).await {
            Err(e) if e.code == UpyunError::not_found().code => {
                match self.engine.entry(p, bucket, &folder_key(key)).await {
                    Ok(_) => self.list(p, parts, bucket, &folder_key(key)).await,
                    Err(_) => Err(e),
                }
            }
            r => r,
        }
    }

    /// `POST` with `folder: true`: an existing folder is fine (200); a file of that name is
    /// 406 40600001.
    pub(crate) async fn mkdir(&self, p: &Principal, bucket: &str, key: &str) -> UpyunResult<Resp> {
        let key = folder_key(key);
        check_names(&key)?;
        self.engine.create_folder(p, bucket, &key, OnConflict::Replace).await?;
        Ok(ok())
    }

    /// A file, or an empty folder (403 40300005 when it holds anything).
    pub(crate) async fn delete(&self, p: &Principal, bucket: &str, key: &str) -> UpyunResult<Resp> {
        let entry = self.entry(p, bucket, key).await?;
        self.engine.delete_entry(p, bucket, entry.key(), false).await?;
        Ok(ok())
    }

    /// `PATCH /<service>/<path>?metadata=merge|replace|delete` with `x-upyun-meta-*` headers:
    /// sets those names (keeping others), keeps only those, or removes them.
    pub(crate) async fn patch_metadata(
        &self,
        p: &Principal,
        parts: &Parts,
        bucket: &str,
        key: &str,
        mode: &str,
    ) -> UpyunResult<Resp> {
        let given = user_meta(parts);
        let change = match mode {
            "merge" => UserMetaChange::Merge(given),
            "replace" => UserMetaChange::Replace(given),
            "delete" => UserMetaChange::Delete(given.into_keys().collect()),
            _ => return Err(UpyunError::bad("metadata must be merge, replace or delete")),
        };
        let entry = self.entry(p, bucket, key).await?;
        let update = AttrUpdate { user: Some(change), ..Default::default() };
        self.engine.update_attributes(p, bucket, entry.key(), update).await?;
        Ok(ok())
    }

    /// `X-Upyun-Copy-Source` / `X-Upyun-Move-Source: /<service>/<path>`. A file replaces a file
    /// at the destination and keeps its metadata (`x-upyun-metadata-directive: replace` takes
    /// the request's instead); a folder moves or copies whole (everything under it) in one
    /// step, into a name that must be free (409 otherwise). Across services only files copy.
    pub(crate) async fn copy_or_move(
        &self,
        p: &Principal,
        parts: &Parts,
        bucket: &str,
        key: &str,
        moving: bool,
    ) -> UpyunResult<Resp> {
        let decoded = parts
            .headers
            .get(if moving { "x-upyun-move-source" } else { "x-upyun-copy-source" })
            .and_then(|v| crate::WIRE.header_name(v))
            .unwrap_or_default();
        let (sb, sk) = decoded
            .trim_start_matches('/')
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| UpyunError::bad("the source must be /<service>/<path>"))?;
        chuan_core::names::validate_key(key)?;
        check_names(key)?;
        let src = self.entry(p, sb, sk).await?;
        let replace_meta =
            header(parts, "x-upyun-metadata-directive").is_some_and(|d| d.eq_ignore_ascii_case("replace"));
        if sb != bucket {
            let TreeEntry::File(_) = src else {
                return Err(UpyunError::bad("folders move and copy within one service"));
            };
            if moving {
                return Err(UpyunError::bad("files move within one service; copy them, then delete"));
            }
            let target = PutTarget {
                meta: meta_of(parts, key),
                tree: chuan_core::store::TreeRule::KeepFolders,
                ..PutTarget::new(bucket, key)
            };
            self.engine.copy_object(p, sb, sk, target, replace_meta).await?;
            return Ok(ok());
        }
        let (to, on_conflict) = if src.is_folder() {
            (folder_key(key), OnConflict::Refuse)
        } else {
            (key.trim_end_matches('/').to_owned(), OnConflict::Replace)
        };
        let done = if moving {
            self.engine.move_entry(p, bucket, src.key(), &to, on_conflict).await?
        } else {
            self.engine.copy_entry(p, bucket, src.key(), &to, on_conflict).await?
        };
        if replace_meta {
            let update = AttrUpdate { user: Some(UserMetaChange::Replace(user_meta(parts))), ..Default::default() };
            self.engine.update_attributes(p, bucket, done.key(), update).await?;
        }
        Ok(ok())
    }

    /// `GET /<service>/<dir>/`: `name\ttype\tsize\tmtime` lines (`N` file, `F` folder), in name
    /// order (`X-List-Order: asc|desc`), paged by `X-List-Limit` and `X-List-Iter`; the next
    /// iter (or the end marker) in `x-upyun-list-iter`.
    pub(crate) async fn list(&self, p: &Principal, parts: &Parts, bucket: &str, dir: &str) -> UpyunResult<Resp> {
        let limit = header(parts, "x-list-limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100).clamp(1, 10_000);
        let descending = match header(parts, "x-list-order") {
            None => false,
            Some(o) if o.eq_ignore_ascii_case("asc") => false,
            Some(o) if o.eq_ignore_ascii_case("desc") => true,
            Some(_) => {
                return Err(UpyunError::new(StatusCode::FORBIDDEN, 40300014, "x-list-order must be asc or desc"))
            }
        };
        let iter = header(parts, "x-list-iter").filter(|i| *i != LIST_END).map(decode_iter).transpose()?;
        let order = TreeOrder { by: OrderBy::Name, descending };
        let page = self
            .engine
            .list_folder(p, bucket, &FolderQuery::new(dir, order), iter.as_deref(), limit.min(chuan_core::MAX_PAGE))
            .await?;
        let mut body = String::new();
        for e in &page.items {
            let kind = if e.is_folder() { "F" } else { "N" };
            body.push_str(&format!("{}\t{kind}\t{}\t{}\n", e.name(), e.size(), e.modified_ms() / 1000));
        }
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(h::CONTENT_TYPE, "text/plain")
            .header("x-upyun-list-iter", page.next.as_deref().map(encode_iter).unwrap_or_else(|| LIST_END.to_owned()))
            .body(chuan_api_common::full(body.trim_end_matches('\n').to_owned()))
            .expect("valid"))
    }

    pub(crate) async fn usage(&self, p: &Principal, bucket: &str) -> UpyunResult<Resp> {
        let bytes = self.engine.bucket_bytes(p, bucket).await?;
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(h::CONTENT_TYPE, "text/plain")
            .body(chuan_api_common::full(bytes.to_string()))
            .expect("valid"))
    }
}

fn ok() -> Resp {
    Response::builder().status(StatusCode::OK).body(chuan_api_common::empty()).expect("valid")
}

use chuan_api_common::encode_token as encode_iter;

fn decode_iter(iter: &str) -> UpyunResult<String> {
    chuan_api_common::decode_token(iter).ok_or_else(|| UpyunError::bad("bad x-list-iter"))
}

/// The answer to a stored file: its MD5 as `Content-MD5` and `ETag`.
pub(crate) fn stored(md5: &str) -> Resp {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-md5", md5)
        .header(h::ETAG, format!("\"{md5}\""))
        .body(chuan_api_common::empty())
        .expect("valid")
}
