//! ListObjects (v1) and ListObjectsV2.

use chuan_core::{Engine, ListQuery, ListResult, Principal};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::error::OrS3;
use crate::timestamp;

const MAX_KEYS: i32 = 1000;

/// `encoding-type=url`: percent-encode everything but unreserved characters and `/`, which
/// is what the AWS SDKs decode (they unquote, so a literal `+` must arrive as `%2B`).
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Rendered {
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
}

/// `owners`: each object's owner is listed (ListObjects always, V2 with `fetch-owner`).
fn render(result: &ListResult, url: bool, owners: bool) -> Rendered {
    let enc = |s: &str| if url { url_encode(s) } else { s.to_owned() };
    Rendered {
        contents: result
            .objects
            .iter()
            .map(|o| Object {
                key: Some(enc(&o.key)),
                size: Some(o.size as i64),
                e_tag: Some(ETag::Strong(o.etag.clone())),
                last_modified: Some(timestamp(o.modified_ms)),
                storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                owner: owners.then(|| crate::acl::owner_of(o.meta.acl.as_ref(), &result.bucket_owner)),
                ..Default::default()
            })
            .collect(),
        prefixes: result.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect(),
    }
}

fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

fn wants_url(e: &Option<EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid Encoding Method specified in Request")),
    }
}

pub async fn list_objects(
    engine: &Engine,
    p: &Principal,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let q = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after: input.marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let result = engine.list_objects(p, &input.bucket, &q).await.s3()?;
    let r = render(&result, url, true);
    let enc = |s: String| if url { url_encode(&s) } else { s };
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        // ListObjects (v1) answers its Prefix as given, even with encoding-type=url (the SDKs
        // decode Marker, NextMarker and Delimiter of v1, but not Prefix).
        prefix: Some(q.prefix.clone()),
        marker: Some(enc(input.marker.unwrap_or_default())),
        // An empty delimiter is no delimiter, and S3 does not echo it.
        delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
        max_keys: Some(q.max_keys as i32),
        is_truncated: Some(result.truncated),
        next_marker: if result.truncated { result.next_after.clone().map(enc) } else { None },
        contents: Some(r.contents),
        common_prefixes: Some(r.prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

use chuan_api_common::encode_token;

fn decode_token(token: &str) -> S3Result<String> {
    chuan_api_common::decode_token(token)
        .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))
}

pub async fn list_objects_v2(
    engine: &Engine,
    p: &Principal,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let after = match (&input.continuation_token, &input.start_after) {
        (Some(t), _) if !t.is_empty() => Some(decode_token(t)?),
        (_, Some(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    };
    let q = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after,
        max_keys: max_keys(input.max_keys)?,
    };
    let result = engine.list_objects(p, &input.bucket, &q).await.s3()?;
    let r = render(&result, url, input.fetch_owner == Some(true));
    let enc = |s: String| if url { url_encode(&s) } else { s };
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(enc(q.prefix.clone())),
        // An empty delimiter is no delimiter, and S3 does not echo it.
        delimiter: input.delimiter.filter(|d| !d.is_empty()).map(enc),
        max_keys: Some(q.max_keys as i32),
        key_count: Some((r.contents.len() + r.prefixes.len()) as i32),
        continuation_token: input.continuation_token,
        start_after: input.start_after.map(enc),
        is_truncated: Some(result.truncated),
        next_continuation_token: if result.truncated { result.next_after.as_deref().map(encode_token) } else { None },
        contents: Some(r.contents),
        common_prefixes: Some(r.prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}

/// The version id every object of an unversioned bucket has (S3's `null` version).
pub(crate) const NULL_VERSION: &str = "null";

/// A request naming a version of an object: in Chuan's unversioned buckets only the `null`
/// version exists (the object itself); any other id is S3's 400 InvalidArgument.
pub(crate) fn check_version(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some(NULL_VERSION) => Ok(()),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

/// ListObjectVersions of an unversioned bucket: each object once, as its `null` version and
/// the latest, paged by key like ListObjects.
pub async fn list_object_versions(
    engine: &Engine,
    p: &Principal,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let input = req.input;
    let url = wants_url(&input.encoding_type)?;
    let q = ListQuery {
        prefix: input.prefix.clone().unwrap_or_default(),
        delimiter: input.delimiter.clone(),
        after: input.key_marker.clone().filter(|m| !m.is_empty()),
        max_keys: max_keys(input.max_keys)?,
    };
    let result = engine.list_objects(p, &input.bucket, &q).await.s3()?;
    let enc = |s: &str| if url { url_encode(s) } else { s.to_owned() };
    let versions = result
        .objects
        .iter()
        .map(|o| ObjectVersion {
            key: Some(enc(&o.key)),
            version_id: Some(NULL_VERSION.to_owned()),
            is_latest: Some(true),
            size: Some(o.size as i64),
            e_tag: Some(ETag::Strong(o.etag.clone())),
            last_modified: Some(timestamp(o.modified_ms)),
            storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
            owner: Some(crate::acl::owner_of(o.meta.acl.as_ref(), &result.bucket_owner)),
            ..Default::default()
        })
        .collect();
    let prefixes = result.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(enc(p)) }).collect();
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(enc(&q.prefix)),
        delimiter: input.delimiter.filter(|d| !d.is_empty()).map(|d| enc(&d)),
        key_marker: Some(enc(input.key_marker.as_deref().unwrap_or_default())),
        version_id_marker: Some(input.version_id_marker.unwrap_or_default()),
        max_keys: Some(q.max_keys as i32),
        is_truncated: Some(result.truncated),
        next_key_marker: if result.truncated { result.next_after.as_deref().map(enc) } else { None },
        next_version_id_marker: result.truncated.then(|| NULL_VERSION.to_owned()),
        versions: Some(versions),
        common_prefixes: Some(prefixes),
        encoding_type: input.encoding_type,
        ..Default::default()
    }))
}
