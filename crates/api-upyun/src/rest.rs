//! Objects and folders over REST: put, get/head, delete, mkdir, text listings, copy/move, usage.

use chuan_api_common::RequestBody;
use chuan_core::store::{ObjectMeta, ObjectRecord};
use chuan_core::{CoreError, ListQuery, Op, Principal, PutTarget};
use http::request::Parts;
use http::{header as h, Response, StatusCode};

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

pub(crate) fn meta_of(parts: &Parts) -> ObjectMeta {
    let mut meta = ObjectMeta { content_type: header(parts, "content-type").map(str::to_owned), ..Default::default() };
    // `Content-Secret` guards downloads through UpYun's CDN; kept with the object.
    if let Some(secret) = header(parts, "content-secret") {
        meta.attrs.insert(CONTENT_SECRET.into(), secret.to_owned());
    }
    meta
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
        self.engine.check_access(p, Op::Write, bucket, key).await?;
        let staged = self.engine.stage(p, http_body_util::BodyDataStream::new(body)).await?;
        if header(parts, "content-md5").is_some_and(|m| !m.eq_ignore_ascii_case(&staged.digests.md5)) {
            return Err(UpyunError::new(StatusCode::BAD_REQUEST, 40000006, "Content-MD5 not match"));
        }
        let md5 = staged.digests.md5.clone();
        let target = PutTarget {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            meta: meta_of(parts),
            condition: None,
            tree: true,
        };
        self.engine.commit_put(p, target, staged).await?;
        Ok(stored(&md5))
    }

    /// GET (with `Range`) and HEAD of a file; HEAD also answers for folders.
    pub(crate) async fn get(
        &self,
        p: &Principal,
        bucket: &str,
        key: &str,
        with_body: bool,
        range: Option<&str>,
    ) -> UpyunResult<Resp> {
        let rec = match self.engine.head_object(p, bucket, key).await {
            Err(CoreError::NoSuchKey) if !with_body => match self.engine.head_object(p, bucket, &folder_key(key)).await
            {
                Ok(folder) => folder,
                // A folder implied by the keys under it (created by a nested upload).
                Err(CoreError::NoSuchKey) => return self.implied_folder(p, bucket, key).await,
                Err(e) => return Err(e.into()),
            },
            r => r?,
        };
        let folder = rec.key.ends_with('/');
        let mut b = Response::builder()
            .status(StatusCode::OK)
            .header("x-upyun-file-type", if folder { "folder" } else { "file" })
            .header("x-upyun-file-size", rec.size)
            .header("x-upyun-file-date", rec.modified_ms / 1000)
            .header(h::ETAG, format!("\"{}\"", rec.etag))
            .header(h::CONTENT_TYPE, rec.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()))
            .header(h::ACCEPT_RANGES, "bytes");
        if let Some(md5) = (!rec.etag.contains('-')).then_some(&rec.etag) {
            b = b.header("content-md5", md5.as_str());
        }
        if !with_body {
            return Ok(b.header(h::CONTENT_LENGTH, rec.size).body(chuan_api_common::empty()).expect("valid"));
        }
        let (b, start, end) = chuan_api_common::with_range(b, range, rec.size)
            .map_err(|()| UpyunError::new(StatusCode::RANGE_NOT_SATISFIABLE, 41600001, "range not satisfiable"))?;
        let content = self.engine.content_of(&rec).await?;
        Ok(b.header(h::CONTENT_LENGTH, end - start)
            .body(chuan_api_common::stream(self.engine.open_read(p, &rec, &content, start, end).await?))
            .expect("valid"))
    }

    async fn implied_folder(&self, p: &Principal, bucket: &str, key: &str) -> UpyunResult<Resp> {
        let dir = folder_key(key);
        let q = ListQuery { prefix: dir, delimiter: None, after: None, max_keys: 1 };
        let page = self.engine.list_objects(p, bucket, &q).await?;
        let child = page.objects.first().ok_or_else(UpyunError::not_found)?;
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header("x-upyun-file-type", "folder")
            .header("x-upyun-file-size", 0)
            .header("x-upyun-file-date", child.modified_ms / 1000)
            .header(h::CONTENT_LENGTH, 0)
            .body(chuan_api_common::empty())
            .expect("valid"))
    }

    pub(crate) async fn mkdir(&self, p: &Principal, bucket: &str, key: &str) -> UpyunResult<Resp> {
        let key = folder_key(key);
        chuan_core::names::validate_key(&key)?;
        self.engine.put_empty(p, PutTarget::new(bucket, &key)).await?;
        Ok(Response::builder().status(StatusCode::OK).body(chuan_api_common::empty()).expect("valid"))
    }

    pub(crate) async fn delete(&self, p: &Principal, bucket: &str, key: &str) -> UpyunResult<Resp> {
        // A folder goes only when empty.
        let folder = if key.ends_with('/') {
            Some(key.to_owned())
        } else if self.engine.head_object(p, bucket, key).await.is_err() {
            Some(folder_key(key))
        } else {
            None
        };
        if let Some(dir) = folder {
            let q = ListQuery { prefix: dir.clone(), delimiter: None, after: Some(dir.clone()), max_keys: 1 };
            if !self.engine.list_objects(p, bucket, &q).await?.objects.is_empty() {
                return Err(UpyunError::new(StatusCode::FORBIDDEN, 40300005, "directory not empty"));
            }
            if self.engine.delete_object(p, bucket, &dir).await?.is_none() {
                return Err(UpyunError::not_found());
            }
        } else if self.engine.delete_object(p, bucket, key).await?.is_none() {
            return Err(UpyunError::not_found());
        }
        Ok(Response::builder().status(StatusCode::OK).body(chuan_api_common::empty()).expect("valid"))
    }

    /// `X-Upyun-Copy-Source` / `X-Upyun-Move-Source: /<service>/<path>`: the destination shares
    /// the content; a move then removes the source.
    pub(crate) async fn copy_or_move(
        &self,
        p: &Principal,
        parts: &Parts,
        bucket: &str,
        key: &str,
        moving: bool,
    ) -> UpyunResult<Resp> {
        let source = header(parts, if moving { "x-upyun-move-source" } else { "x-upyun-copy-source" }).unwrap_or("");
        let decoded = chuan_api_common::percent_decode(source);
        let (sb, sk) = decoded
            .trim_start_matches('/')
            .split_once('/')
            .filter(|(b, k)| !b.is_empty() && !k.is_empty())
            .ok_or_else(|| UpyunError::bad("the source must be /<service>/<path>"))?;
        let target = PutTarget {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            meta: ObjectMeta::default(),
            condition: None,
            tree: true,
        };
        self.engine.copy_object(p, sb, sk, target, false).await?;
        if moving && !(sb == bucket && sk == key) {
            self.engine.delete_object(p, sb, sk).await?;
        }
        Ok(Response::builder().status(StatusCode::OK).body(chuan_api_common::empty()).expect("valid"))
    }

    /// `GET /<service>/<dir>/`: `name\ttype\tsize\tmtime` lines (`N` file, `F` folder), paged
    /// by `X-List-Limit` and `X-List-Iter`, the next iter (or the end marker) in
    /// `x-upyun-list-iter`. `X-List-Order: desc` lists newest names first.
    pub(crate) async fn list(&self, p: &Principal, parts: &Parts, bucket: &str, dir: &str) -> UpyunResult<Resp> {
        let limit = header(parts, "x-list-limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(100).clamp(1, 10_000);
        let desc = header(parts, "x-list-order").is_some_and(|o| o.eq_ignore_ascii_case("desc"));
        let iter = header(parts, "x-list-iter").filter(|i| *i != LIST_END).map(str::to_owned);
        let prefix = dir.to_owned();
        // Ascending pages resume after the last name; descending ones (rare, small folders)
        // are an offset into the reversed listing.
        let (entries, next) = if desc {
            let all = self.list_all(p, bucket, &prefix).await?;
            let offset: usize = iter.and_then(|i| i.strip_prefix('d').and_then(|n| n.parse().ok())).unwrap_or(0);
            let page: Vec<_> = all.iter().rev().skip(offset).take(limit).cloned().collect();
            let more = offset + page.len() < all.len();
            (page, more.then(|| format!("d{}", offset + limit)))
        } else {
            let after = match iter {
                Some(i) => Some(decode_iter(&i)?),
                None => (!prefix.is_empty()).then(|| prefix.clone()),
            };
            let q = ListQuery { prefix: prefix.clone(), delimiter: Some("/".into()), after, max_keys: limit };
            let page = self.engine.list_objects(p, bucket, &q).await?;
            let mut entries: Vec<Entry> = page.objects.iter().filter(|o| o.key != prefix).map(Entry::file).collect();
            for cp in &page.common_prefixes {
                entries.push(self.folder_entry(p, bucket, cp).await?);
            }
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            (entries, if page.truncated { page.next_after.map(|a| encode_iter(&a)) } else { None })
        };
        let mut body = String::new();
        for e in &entries {
            let name = e.key[prefix.len()..].trim_end_matches('/');
            body.push_str(&format!("{name}\t{}\t{}\t{}\n", if e.folder { "F" } else { "N" }, e.size, e.mtime));
        }
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(h::CONTENT_TYPE, "text/plain")
            .header("x-upyun-list-iter", next.unwrap_or_else(|| LIST_END.to_owned()))
            .body(chuan_api_common::full(body.trim_end_matches('\n').to_owned()))
            .expect("valid"))
    }

    async fn list_all(&self, p: &Principal, bucket: &str, prefix: &str) -> UpyunResult<Vec<Entry>> {
        let mut out = Vec::new();
        let mut after = (!prefix.is_empty()).then(|| prefix.to_owned());
        loop {
            let q = ListQuery {
                prefix: prefix.to_owned(),
                delimiter: Some("/".into()),
                after: after.clone(),
                max_keys: 1000,
            };
            let page = self.engine.list_objects(p, bucket, &q).await?;
            out.extend(page.objects.iter().filter(|o| o.key != prefix).map(Entry::file));
            for cp in &page.common_prefixes {
                out.push(self.folder_entry(p, bucket, cp).await?);
            }
            if !page.truncated || out.len() > 100_000 {
                break;
            }
            after = page.next_after;
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// A folder line: the time of the folder's own entry when it has one (`mkdir`).
    async fn folder_entry(&self, p: &Principal, bucket: &str, prefix: &str) -> UpyunResult<Entry> {
        let mtime = match self.engine.head_object(p, bucket, prefix).await {
            Ok(rec) => rec.modified_ms / 1000,
            Err(CoreError::NoSuchKey) => 0,
            Err(e) => return Err(e.into()),
        };
        Ok(Entry { key: prefix.to_owned(), folder: true, size: 0, mtime })
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

#[derive(Clone)]
struct Entry {
    key: String,
    folder: bool,
    size: u64,
    mtime: i64,
}

impl Entry {
    fn file(o: &ObjectRecord) -> Self {
        Self { key: o.key.clone(), folder: o.key.ends_with('/'), size: o.size, mtime: o.modified_ms / 1000 }
    }
}

fn encode_iter(after: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

fn decode_iter(iter: &str) -> UpyunResult<String> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(iter)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| UpyunError::bad("bad x-list-iter"))
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
