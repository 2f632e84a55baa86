//! Multipart uploads: sessions live in the core's metadata (they survive restarts), parts are
//! blobs, and completion writes a manifest of part blobs without copying their bytes.

use chuan_core::hash::ChecksumAlgorithm;
use chuan_core::store::{PartRecord, UploadKind};
use chuan_core::{Completion, Engine, NewUpload, PartList, Principal};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use crate::checksum::{multipart_checksum, Claims, CHECKSUM_TYPE_ATTR};
use crate::error::OrS3;
use crate::get::set_checksum;
use crate::put::object_meta;
use crate::timestamp;

const MAX_PART_NUMBER: i32 = 10_000;

fn part_number(n: i32) -> S3Result<u32> {
    if !(1..=MAX_PART_NUMBER).contains(&n) {
        return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"));
    }
    Ok(n as u32)
}

fn upload_algorithm(meta: &chuan_core::store::ObjectMeta) -> Option<ChecksumAlgorithm> {
    meta.checksum_algorithm.as_deref().and_then(ChecksumAlgorithm::parse)
}

pub async fn create_multipart_upload(
    engine: &Engine,
    p: &Principal,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let input = req.input;
    let mut meta = object_meta(
        input.content_type,
        input.content_encoding,
        input.content_disposition,
        input.content_language,
        input.cache_control,
        input.expires,
        input.metadata,
    );
    let mut checksum_type = None;
    if let Some(a) = &input.checksum_algorithm {
        let alg = ChecksumAlgorithm::parse(a.as_str())
            .ok_or_else(|| s3_error!(InvalidArgument, "unsupported checksum algorithm"))?;
        meta.checksum_algorithm = Some(alg.name().to_owned());
        let ty = crate::checksum::upload_checksum_type(alg, input.checksum_type.as_ref().map(|t| t.as_str()))?;
        meta.attrs.insert(CHECKSUM_TYPE_ATTR.to_owned(), ty.to_owned());
        checksum_type = Some(ChecksumType::from_static(ty));
    } else if input.checksum_type.is_some() {
        return Err(s3_error!(InvalidRequest, "The x-amz-checksum-type header requires x-amz-checksum-algorithm."));
    }
    meta.acl = crate::acl::object_acl!(engine, p, input)?;
    let algorithm = input.checksum_algorithm.clone();
    let mut new = NewUpload::new(UploadKind::S3, &input.bucket, &input.key);
    new.meta = meta;
    let upload = engine.create_upload(p, new).await.s3()?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload.id),
        checksum_algorithm: algorithm,
        checksum_type,
        ..Default::default()
    }))
}

pub async fn upload_part(
    engine: &Engine,
    p: &Principal,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let input = req.input;
    let number = part_number(input.part_number)?;
    let upload = engine.upload(p, &input.bucket, &input.key, &input.upload_id).await.s3()?;
    let mut claims = Claims::new(
        input.content_md5,
        input.checksum_algorithm.as_ref().map(|a| a.as_str()),
        input.checksum_crc32,
        input.checksum_crc32c,
        input.checksum_crc64nvme,
        input.checksum_sha1,
        input.checksum_sha256,
    )?;
    let staged =
        crate::checksum::stage_verified(engine, p, input.body, input.content_length, &mut claims, req.trailing_headers)
            .await?;
    if let Some(alg) = upload_algorithm(&upload.meta) {
        // An upload created with a checksum algorithm takes parts carrying that checksum.
        let sent = claims.checksums.first().map(|(a, _)| *a);
        if sent != Some(alg) {
            return Err(s3_error!(
                InvalidRequest,
                "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
                alg.name().to_ascii_lowercase(),
                sent.map_or("null".to_owned(), |a| a.name().to_ascii_lowercase())
            ));
        }
    }
    let digests = staged.digests.clone();
    let part = engine.commit_part(p, &upload, number, staged).await.s3()?;
    let mut out = UploadPartOutput { e_tag: Some(ETag::Strong(part.etag)), ..Default::default() };
    let alg = claims.algorithm().or_else(|| upload_algorithm(&upload.meta));
    set_checksum(
        &mut out.checksum_crc32,
        &mut out.checksum_crc32c,
        &mut out.checksum_crc64nvme,
        &mut out.checksum_sha1,
        &mut out.checksum_sha256,
        alg,
        &digests,
    );
    Ok(S3Response::new(out))
}

/// `bytes=first-last` of a copy source.
fn copy_range(range: &str, size: u64) -> S3Result<(u64, u64)> {
    let bad = || {
        s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy")
    };
    let spec = range.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (first, last): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if first > last || last >= size {
        return Err(s3_error!(InvalidRange, "The requested range is not satisfiable"));
    }
    Ok((first, last + 1))
}

pub async fn upload_part_copy(
    engine: &Engine,
    p: &Principal,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let input = req.input;
    let number = part_number(input.part_number)?;
    let upload = engine.upload(p, &input.bucket, &input.key, &input.upload_id).await.s3()?;
    let (src_bucket, src_key) = crate::copy::source(&input.copy_source)?;
    let src = crate::copy::checked_source!(engine, p, &src_bucket, &src_key, input);
    let range = match &input.copy_source_range {
        Some(r) => Some(copy_range(r, src.size)?),
        None => None,
    };
    let part = engine.copy_part(p, &upload, number, &src, range).await.s3()?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(ETag::Strong(part.etag)),
            last_modified: Some(timestamp(part.modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

/// A checksum the client listed for a part in CompleteMultipartUpload must be the part's.
fn check_part_checksums(listed: &CompletedPart, stored: &PartRecord) -> S3Result<()> {
    for (alg, v) in [
        (ChecksumAlgorithm::Crc32, &listed.checksum_crc32),
        (ChecksumAlgorithm::Crc32c, &listed.checksum_crc32c),
        (ChecksumAlgorithm::Crc64Nvme, &listed.checksum_crc64nvme),
        (ChecksumAlgorithm::Sha1, &listed.checksum_sha1),
        (ChecksumAlgorithm::Sha256, &listed.checksum_sha256),
    ] {
        if let Some(v) = v {
            if alg.encode(&stored.digests) != *v {
                return Err(s3_error!(
                    InvalidPart,
                    "The {} checksum of part {} does not match",
                    alg.name(),
                    stored.number
                ));
            }
        }
    }
    Ok(())
}

pub async fn complete_multipart_upload(
    engine: &Engine,
    p: &Principal,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let input = req.input;
    let listed = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
    let upload = match engine.upload(p, &input.bucket, &input.key, &input.upload_id).await {
        Err(chuan_core::CoreError::NoSuchUpload) => {
            return completed_before(engine, p, &input.bucket, &input.key, &listed).await
        }
        r => r.s3()?,
    };
    if listed.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema: it lists no Part."
        ));
    }
    let mut parts = Vec::with_capacity(listed.len());
    for part in &listed {
        let n = part.part_number.ok_or_else(|| s3_error!(MalformedXML, "a Part has no PartNumber"))?;
        let etag = part.e_tag.as_ref().ok_or_else(|| s3_error!(MalformedXML, "a Part has no ETag"))?;
        parts.push((part_number(n)?, etag.value().to_owned()));
    }
    // Per-part checksums, the whole object's checksum and its size are checked before
    // anything is committed.
    let stored = engine.list_parts(p, &upload, 0, MAX_PART_NUMBER as usize + 1).await.s3()?;
    for l in &listed {
        if let Some(s) = stored.iter().find(|s| Some(s.number as i32) == l.part_number) {
            check_part_checksums(l, s)?;
        }
    }
    // A part listed twice in a row (a resent part whose first attempt finished last) counts
    // once: the entry whose ETag is the stored part's.
    parts.dedup_by(|later, earlier| {
        if later.0 != earlier.0 {
            return false;
        }
        if stored.iter().any(|s| s.number == later.0 && s.etag == later.1) {
            *earlier = later.clone();
        }
        true
    });
    let chosen: Vec<&PartRecord> = parts.iter().filter_map(|(n, _)| stored.iter().find(|s| s.number == *n)).collect();
    let alg = upload_algorithm(&upload.meta);
    // Sessions from before checksum types were kept take S3's default for their algorithm.
    let ty = upload
        .meta
        .attrs
        .get(CHECKSUM_TYPE_ATTR)
        .cloned()
        .or_else(|| alg.and_then(|a| crate::checksum::upload_checksum_type(a, None).ok()).map(str::to_owned));
    if let (Some(asked), Some(ty)) = (&input.checksum_type, &ty) {
        if asked.as_str() != ty {
            return Err(s3_error!(
                InvalidRequest,
                "The upload was created using the {ty} checksum mode. The complete request must use the same checksum mode."
            ));
        }
    }
    let checksum = match (alg, &ty) {
        (Some(alg), Some(ty)) if chosen.len() == parts.len() => {
            Some((alg, multipart_checksum(alg, ty, chosen.iter().map(|p| (&p.digests, p.size)))))
        }
        _ => None,
    };
    let claimed = [
        (ChecksumAlgorithm::Crc32, &input.checksum_crc32),
        (ChecksumAlgorithm::Crc32c, &input.checksum_crc32c),
        (ChecksumAlgorithm::Crc64Nvme, &input.checksum_crc64nvme),
        (ChecksumAlgorithm::Sha1, &input.checksum_sha1),
        (ChecksumAlgorithm::Sha256, &input.checksum_sha256),
    ];
    for (a, value) in claimed {
        let Some(value) = value else { continue };
        crate::checksum::well_formed(a, value.split_once('-').map_or(value.as_str(), |(v, _)| v))?;
        match &checksum {
            Some((alg, ours)) if *alg == a => {
                if value.trim() != ours {
                    return Err(s3_error!(
                        BadDigest,
                        "The {} you specified did not match the calculated checksum.",
                        format!("x-amz-checksum-{}", a.name().to_ascii_lowercase())
                    ));
                }
            }
            _ => {
                return Err(s3_error!(
                    InvalidRequest,
                    "The upload was not created with the {} checksum algorithm.",
                    a.name().to_ascii_lowercase()
                ))
            }
        }
    }
    if let Some(size) = input.mpu_object_size {
        let total: u64 = chosen.iter().map(|p| p.size).sum();
        if size < 0 || size as u64 != total {
            return Err(s3_error!(
                InvalidRequest,
                "The provided 'x-amz-mp-object-size' header value {size} does not match what was computed: {total}"
            ));
        }
    }
    let mut completion = Completion::new(PartList::Listed(parts));
    completion.condition =
        crate::put::write_condition(engine, p, &input.bucket, &input.key, &input.if_none_match, &input.if_match)
            .await?;
    let done = engine.complete_upload(p, &upload, completion).await.s3()?;
    let rec = done.object;
    let mut out = CompleteMultipartUploadOutput {
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(ETag::Strong(rec.etag)),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        ..Default::default()
    };
    if let (Some((alg, value)), Some(ty)) = (checksum, ty) {
        match alg {
            ChecksumAlgorithm::Crc32 => out.checksum_crc32 = Some(value),
            ChecksumAlgorithm::Crc32c => out.checksum_crc32c = Some(value),
            ChecksumAlgorithm::Crc64Nvme => out.checksum_crc64nvme = Some(value),
            ChecksumAlgorithm::Sha1 => out.checksum_sha1 = Some(value),
            ChecksumAlgorithm::Sha256 => out.checksum_sha256 = Some(value),
        }
        out.checksum_type = Some(ChecksumType::from(ty));
    }
    Ok(S3Response::new(out))
}

/// A CompleteMultipartUpload retried after it succeeded (its answer lost) succeeds again, as
/// in S3: the session is gone, but the object its parts made is still at the key when its
/// ETag is the one those parts give. Anything else is NoSuchUpload.
async fn completed_before(
    engine: &Engine,
    p: &Principal,
    bucket: &str,
    key: &str,
    listed: &[CompletedPart],
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let no_such_upload = || crate::to_s3_error(chuan_core::CoreError::NoSuchUpload);
    let etags: Vec<String> = listed.iter().filter_map(|l| l.e_tag.as_ref().map(|e| e.value().to_owned())).collect();
    if etags.is_empty() || etags.len() != listed.len() {
        return Err(no_such_upload());
    }
    let expected = chuan_core::hash::multipart_etag(etags.iter().map(String::as_str));
    match engine.head_object(p, bucket, key).await {
        Ok(rec) if rec.etag == expected => Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(bucket.to_owned()),
            key: Some(key.to_owned()),
            e_tag: Some(ETag::Strong(rec.etag)),
            location: Some(format!("/{bucket}/{key}")),
            ..Default::default()
        })),
        _ => Err(no_such_upload()),
    }
}

pub async fn abort_multipart_upload(
    engine: &Engine,
    p: &Principal,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let input = req.input;
    let upload = engine.upload(p, &input.bucket, &input.key, &input.upload_id).await.s3()?;
    engine.abort_upload(p, &upload).await.s3()?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(
    engine: &Engine,
    p: &Principal,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let input = req.input;
    let upload = engine.upload(p, &input.bucket, &input.key, &input.upload_id).await.s3()?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let marker = input.part_number_marker.map(|m| m.max(0) as u32).unwrap_or(0);
    let mut parts = engine.list_parts(p, &upload, marker, max + 1).await.s3()?;
    let truncated = parts.len() > max;
    parts.truncate(max);
    let alg = upload_algorithm(&upload.meta);
    let next = parts.last().map(|p| p.number as i32);
    let list = parts
        .iter()
        .map(|part| {
            let mut out = Part {
                part_number: Some(part.number as i32),
                e_tag: Some(ETag::Strong(part.etag.clone())),
                size: Some(part.size as i64),
                last_modified: Some(timestamp(part.modified_ms)),
                ..Default::default()
            };
            set_checksum(
                &mut out.checksum_crc32,
                &mut out.checksum_crc32c,
                &mut out.checksum_crc64nvme,
                &mut out.checksum_sha1,
                &mut out.checksum_sha256,
                alg,
                &part.digests,
            );
            out
        })
        .collect();
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if truncated { next } else { None },
        is_truncated: Some(truncated),
        parts: Some(list),
        checksum_algorithm: alg.map(|a| ChecksumAlgorithm_::from(a.name().to_owned())),
        checksum_type: upload.meta.attrs.get(CHECKSUM_TYPE_ATTR).map(|t| ChecksumType::from(t.clone())),
        ..Default::default()
    }))
}

type ChecksumAlgorithm_ = s3s::dto::ChecksumAlgorithm;

pub async fn list_multipart_uploads(
    engine: &Engine,
    p: &Principal,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let input = req.input;
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let key_marker = input.key_marker.clone().unwrap_or_default();
    let id_marker = input.upload_id_marker.clone().unwrap_or_default();
    // Without an upload-id marker, the key marker excludes that key entirely.
    let after = if key_marker.is_empty() {
        None
    } else if id_marker.is_empty() {
        Some((key_marker.as_str(), "\u{10FFFF}"))
    } else {
        Some((key_marker.as_str(), id_marker.as_str()))
    };
    let mut uploads = engine.list_uploads(p, &input.bucket, &prefix, after, max + 1).await.s3()?;
    let truncated = uploads.len() > max;
    uploads.truncate(max);
    let next = uploads.last().map(|u| (u.key.clone(), u.id.clone()));
    let list = uploads
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(u.key),
            upload_id: Some(u.id),
            initiated: Some(timestamp(u.created_ms)),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            // Who started it owns what it makes (the bucket's owner unless another tenant).
            initiator: Some({
                let o = crate::acl::owner_of(u.meta.acl.as_ref(), &u.tenant);
                Initiator { display_name: o.display_name, id: o.id }
            }),
            owner: Some(crate::acl::owner_of(u.meta.acl.as_ref(), &u.tenant)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: input.prefix,
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker: if truncated { next.as_ref().map(|n| n.0.clone()) } else { None },
        next_upload_id_marker: if truncated { next.map(|n| n.1) } else { None },
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(list),
        ..Default::default()
    }))
}
