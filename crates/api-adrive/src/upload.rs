//! The upload flow: create (folder, instant upload with proof, pre-hash, or a session with
//! per-part presigned URLs), part PUT, fresh URLs, uploaded-part listing, complete.

use base64::Engine as _;
use chuan_core::store::{ObjectMeta, OnConflict, UploadKind, UploadRecord};
use chuan_core::{Claim, Completion, CoreError, NewUpload, PartList, Possession, Principal, PutTarget};
use http::{Response, StatusCode};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{AdriveError, AdriveResult};
use crate::files::name_segments;
use crate::wire::{self, required, str_field, u64_field};
use crate::{AdriveDialect, Resp};

/// Protocol state kept with the core upload session.
#[derive(Debug, Serialize, Deserialize)]
struct UploadState {
    file_id: String,
    drive_id: String,
    parent_file_id: String,
    name: String,
    size: u64,
    parts: u32,
    /// Declared size of each part, when the client gave them all.
    part_sizes: Option<Vec<u64>>,
    content_hash: Option<String>,
}

/// The 8-byte window `proof_version v1` asks for: `int(md5_hex(token)[0..16], 16) mod size`.
pub fn proof_window(access_token: &str, size: u64) -> (u64, u64) {
    if size == 0 {
        return (0, 0);
    }
    let digest = Md5::digest(access_token.as_bytes());
    let m = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let offset = m % size;
    (offset, 8.min(size - offset))
}

fn state_of(upload: &UploadRecord) -> AdriveResult<UploadState> {
    (upload.kind == UploadKind::Adrive).then(|| serde_json::from_str(&upload.state).ok()).flatten().ok_or_else(|| {
        AdriveError::new(StatusCode::NOT_FOUND, "NotFound.UploadId", "The upload_id does not belong to Aliyun Drive.")
    })
}

fn new_file_id() -> String {
    hex::encode(rand::random::<[u8; 20]>())
}

impl AdriveDialect {
    /// Part-upload URLs (the core's signed URL grants) for the numbered parts of a session.
    async fn part_list(
        &self,
        p: &Principal,
        origin: &str,
        upload: &UploadRecord,
        numbers: impl Iterator<Item = u32>,
        state: &UploadState,
    ) -> AdriveResult<Vec<Value>> {
        let mut list = Vec::new();
        for n in numbers {
            let query = self.engine.sign_part_upload(p, upload, n, self.config.url_ttl).await?;
            let url = format!("{origin}/adrive/upload/{}/{n}?{query}", upload.id);
            let mut v = json!({"part_number": n, "upload_url": url, "internal_upload_url": url, "content_type": ""});
            if let Some(sizes) = &state.part_sizes {
                v["part_size"] = json!(sizes[(n - 1) as usize]);
            }
            list.push(v);
        }
        Ok(list)
    }

    /// `create_with_proof` / `createWithFolders`.
    pub(crate) async fn create(&self, p: &Principal, token: &str, origin: &str, v: &Value) -> AdriveResult<Resp> {
        let drive = required(v, "drive_id")?;
        let name = required(v, "name")?;
        let segs = name_segments(name)?;
        let mut parent_key = self.folder_key(p, drive, str_field(v, "parent_file_id").unwrap_or("root")).await?;
        for seg in &segs[..segs.len() - 1] {
            let folder = format!("{parent_key}{seg}/");
            parent_key = self.engine.create_folder(p, drive, &folder, OnConflict::Replace).await?.0.key().to_owned();
        }
        let mut leaf = segs[segs.len() - 1].to_owned();
        let parent_file_id = self.parent_id(p, drive, &format!("{parent_key}{leaf}")).await?;
        let mode = str_field(v, "check_name_mode").unwrap_or("ignore");
        let folder = str_field(v, "type") == Some("folder");

        if folder {
            // An existing folder is answered with `exist: true` (aligo's get_folder_by_path
            // relies on it), unless auto_rename asks for a new one beside it.
            let on = if mode == "auto_rename" { OnConflict::AutoRename } else { OnConflict::Replace };
            let (e, existed) = self.engine.create_folder(p, drive, &format!("{parent_key}{leaf}/"), on).await?;
            return Ok(wire::json(
                StatusCode::CREATED,
                &json!({"parent_file_id": parent_file_id, "type": "folder", "file_id": e.id(), "domain_id": "chuan",
                        "drive_id": drive, "file_name": e.name(), "encrypt_mode": "none", "exist": existed}),
            ));
        }

        let size = u64_field(v, "size")
            .ok_or_else(|| AdriveError::bad_request("InvalidParameter.Size", "size is required for files"))?;
        let mut key = format!("{parent_key}{leaf}");
        let existing = match self.engine.head_object(p, drive, &key).await {
            Ok(r) => Some(r),
            Err(CoreError::NoSuchKey) => None,
            Err(e) => return Err(e.into()),
        };
        let mut file_id = new_file_id();
        if let Some(old) = &existing {
            match mode {
                "refuse" => {
                    return Ok(wire::json(
                        StatusCode::CREATED,
                        &json!({"parent_file_id": parent_file_id, "type": "file", "file_id": old.id, "domain_id": "chuan",
                                "drive_id": drive, "file_name": leaf, "encrypt_mode": "none", "exist": true,
                                "rapid_upload": false, "upload_id": "", "part_info_list": []}),
                    ))
                }
                "auto_rename" => {
                    key = self.engine.free_key(p, drive, &key).await?;
                    leaf = chuan_core::store::entry_name(&key).to_owned();
                }
                // overwrite (and ignore, since one key cannot hold two files): the file keeps its id.
                _ => file_id = old.id.clone(),
            }
        }
        let content_type = str_field(v, "content_type").map(str::to_owned);
        let meta = ObjectMeta { content_type: content_type.clone(), ..Default::default() };

        // Instant upload: the full hash, with a proof of possession for content the caller's
        // tenant does not hold. A miss (whatever its reason) continues as a normal upload.
        if let Some(hash) = str_field(v, "content_hash") {
            let proof = match (str_field(v, "proof_version"), v.get("proof_code").and_then(Value::as_str)) {
                (Some("v1") | None, Some(code)) => {
                    let (offset, len) = proof_window(token, size);
                    match base64::engine::general_purpose::STANDARD.decode(code.trim()) {
                        Ok(bytes) if bytes.len() as u64 == len => Possession::Bytes(vec![(offset, bytes)]),
                        _ => Possession::None,
                    }
                }
                _ => Possession::None,
            };
            let hit = self.engine.claimable_content(p, "sha1", &hash.to_ascii_lowercase(), size, &proof).await?;
            if let Some(held) = hit {
                let target = PutTarget {
                    bucket: drive.to_owned(),
                    key: key.clone(),
                    meta,
                    condition: None,
                    tree: chuan_core::store::TreeRule::Folders,
                };
                let rec = self.engine.instant_put(p, target, held, Some(file_id)).await?;
                return Ok(wire::json(
                    StatusCode::CREATED,
                    &json!({"parent_file_id": parent_file_id, "upload_id": format!("rapid-{}", rec.id), "rapid_upload": true,
                            "type": "file", "file_id": rec.id, "domain_id": "chuan", "drive_id": drive,
                            "file_name": leaf, "encrypt_mode": "none", "location": "chuan", "revision_id": "",
                            "part_info_list": []}),
                ));
            }
        } else if let Some(pre) = str_field(v, "pre_hash") {
            // The pre-hash covers only the first KiB: it matches only content the caller's own
            // tenant holds, so it never reveals another tenant's files.
            let own = self.engine.own_content(p, "sha1_head", &pre.to_ascii_lowercase(), size).await?;
            if own.is_some() {
                return Ok(wire::json(
                    StatusCode::CONFLICT,
                    &json!({"code": "PreHashMatched", "message": "Pre hash matched.", "parent_file_id": parent_file_id,
                            "file_name": leaf, "pre_hash": pre}),
                ));
            }
        }

        let requested = v.get("part_info_list").and_then(Value::as_array).cloned().unwrap_or_default();
        let parts = (requested.len() as u32).max(1);
        let sizes: Option<Vec<u64>> = requested.iter().map(|x| u64_field(x, "part_size")).collect();
        let part_sizes = match sizes {
            Some(s) if !s.is_empty() && s.len() as u32 == parts => {
                if s.iter().sum::<u64>() != size {
                    return Err(AdriveError::bad_request(
                        "InvalidParameter.PartInfoList",
                        "The part sizes do not add up to the file size.",
                    ));
                }
                Some(s)
            }
            _ => None,
        };
        if u64::from(parts) > size.max(1) || parts > 10_000 {
            return Err(AdriveError::bad_request("InvalidParameter.PartInfoList", "Too many parts for this size."));
        }
        let state = UploadState {
            file_id: file_id.clone(),
            drive_id: drive.to_owned(),
            parent_file_id: parent_file_id.clone(),
            name: leaf.clone(),
            size,
            parts,
            part_sizes,
            content_hash: str_field(v, "content_hash").map(|h| h.to_ascii_uppercase()),
        };
        let mut new = NewUpload::new(UploadKind::Adrive, drive, &key);
        new.meta = meta;
        new.state = serde_json::to_string(&state).expect("serialisable");
        let upload = self.engine.create_upload(p, new).await?;
        let list = self.part_list(p, origin, &upload, 1..=parts, &state).await?;
        Ok(wire::json(
            StatusCode::CREATED,
            &json!({"parent_file_id": parent_file_id, "part_info_list": list, "upload_id": upload.id,
                    "rapid_upload": false, "type": "file", "file_id": file_id, "domain_id": "chuan", "drive_id": drive,
                    "file_name": leaf, "encrypt_mode": "none", "location": "chuan", "revision_id": ""}),
        ))
    }

    /// The length part `n` must have, as (min, max): exact when the client declared part
    /// sizes; otherwise any equal split of the file into `parts` pieces.
    fn part_bounds(state: &UploadState, n: u32) -> (u64, u64) {
        if let Some(sizes) = &state.part_sizes {
            let s = sizes[(n - 1) as usize];
            return (s, s);
        }
        let (size, parts) = (state.size, u64::from(state.parts));
        if parts == 1 {
            return (size, size);
        }
        // A part size P splits `size` into `parts` pieces when (parts-1)*P < size <= parts*P.
        let min_p = size.div_ceil(parts);
        let max_p = (size - 1) / (parts - 1);
        if u64::from(n) < parts {
            (min_p, max_p)
        } else {
            (size.saturating_sub((parts - 1) * max_p).max(1), size - (parts - 1) * min_p)
        }
    }

    /// `PUT` of one part to its presigned URL.
    pub(crate) async fn put_part(
        &self,
        upload_id: &str,
        n: u32,
        query: Option<&str>,
        body: chuan_api_common::RequestBody,
    ) -> AdriveResult<Resp> {
        // aligo asks for a fresh URL on 403 (and only then): an invalid grant answers 403.
        let (p, upload) = self.engine.part_upload_grant(upload_id, n, query).await?;
        self.part_puts.inc();
        let state = state_of(&upload)?;
        if n == 0 || n > state.parts {
            return Err(AdriveError::bad_request("InvalidParameter.PartNumber", "The part number is out of range."));
        }
        let (min, max) = Self::part_bounds(&state, n);
        let staged = self.engine.stage(&p, http_body_util::BodyDataStream::new(body)).await?;
        if staged.size < min || staged.size > max {
            return Err(AdriveError::bad_request(
                "InvalidParameter.PartSize",
                format!(
                    "Part {n} is {} bytes; expected {}.",
                    staged.size,
                    if min == max { min.to_string() } else { format!("{min} to {max}") }
                ),
            ));
        }
        let part = self.engine.commit_part(&p, &upload, n, staged).await?;
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(http::header::ETAG, format!("\"{}\"", part.etag.to_ascii_uppercase()))
            .body(chuan_api_common::empty())
            .expect("valid response"))
    }

    async fn session(&self, p: &Principal, v: &Value) -> AdriveResult<(UploadRecord, UploadState)> {
        let upload = self.engine.upload_by_id(p, required(v, "upload_id")?).await?;
        let state = state_of(&upload)?;
        if Some(state.file_id.as_str()) != str_field(v, "file_id")
            || Some(state.drive_id.as_str()) != str_field(v, "drive_id")
        {
            return Err(AdriveError::new(
                StatusCode::NOT_FOUND,
                "NotFound.UploadId",
                "The upload_id does not match the file.",
            ));
        }
        Ok((upload, state))
    }

    pub(crate) async fn get_upload_url(&self, p: &Principal, origin: &str, v: &Value) -> AdriveResult<Resp> {
        let (upload, state) = self.session(p, v).await?;
        let asked: Vec<u32> = v
            .get("part_info_list")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(|x| u64_field(x, "part_number")).map(|n| n as u32).collect())
            .unwrap_or_default();
        let numbers: Vec<u32> = if asked.is_empty() { (1..=state.parts).collect() } else { asked };
        if numbers.iter().any(|n| *n == 0 || *n > state.parts) {
            return Err(AdriveError::bad_request("InvalidParameter.PartNumber", "The part number is out of range."));
        }
        let list = self.part_list(p, origin, &upload, numbers.into_iter(), &state).await?;
        Ok(wire::json(
            StatusCode::OK,
            &json!({"domain_id": "chuan", "drive_id": state.drive_id, "file_id": state.file_id, "upload_id": upload.id,
                    "part_info_list": list, "create_at": wire::iso(upload.created_ms)}),
        ))
    }

    pub(crate) async fn list_uploaded_parts(&self, p: &Principal, v: &Value) -> AdriveResult<Resp> {
        let (upload, state) = self.session(p, v).await?;
        let marker = u64_field(v, "part_number_marker").unwrap_or(0) as u32;
        let parts = self.engine.list_parts(p, &upload, marker, 10_000).await?;
        let list: Vec<Value> = parts
            .iter()
            .map(|x| json!({"part_number": x.number, "part_size": x.size, "etag": x.etag.to_ascii_uppercase()}))
            .collect();
        Ok(wire::json(
            StatusCode::OK,
            &json!({"file_id": state.file_id, "upload_id": upload.id, "parallel_upload": false,
                    "uploaded_parts": list, "next_part_number_marker": ""}),
        ))
    }

    pub(crate) async fn complete(&self, p: &Principal, v: &Value) -> AdriveResult<Resp> {
        let (upload, state) = self.session(p, v).await?;
        // Parts split the file evenly (all but the last the same size) unless the client
        // declared each part's size at creation.
        let parts = self.engine.list_parts(p, &upload, 0, state.parts as usize).await?;
        let equal_split = state.part_sizes.is_some()
            || parts.windows(2).take(parts.len().saturating_sub(2)).all(|w| w[0].size == w[1].size);
        if !equal_split {
            return Err(AdriveError::bad_request("InvalidParameter.Size", "The parts do not split the file evenly."));
        }
        let mut completion = Completion::new(PartList::All { count: state.parts });
        completion.size = Some(state.size);
        // Whole-file digests for the answer (one read over the parts, no copy), checked
        // against the client's content_hash: a mismatch keeps nothing.
        completion.digests = true;
        let claimed = str_field(v, "content_hash").map(str::to_owned).or(state.content_hash.clone());
        completion.claims.extend(claimed.map(|h| Claim::Sha1(h.to_ascii_lowercase())));
        completion.object_id = Some(state.file_id.clone());
        let done = match self.engine.complete_upload(p, &upload, completion).await {
            Err(CoreError::BadDigest { .. }) => {
                return Err(AdriveError::bad_request(
                    "InvalidParameter.ContentHash",
                    "The content_hash does not match the uploaded data.",
                ))
            }
            r => r?,
        };
        let rec = done.object;
        let digests = done.digests.unwrap_or_default();
        let sha1 = digests.sha1.to_ascii_uppercase();
        let entry = chuan_core::store::TreeEntry::File(rec);
        let mut file =
            wire::base_file(&entry, &state.drive_id, &state.parent_file_id, Some(&sha1), Some(digests.crc64xz), None);
        file["upload_id"] = json!(upload.id);
        Ok(wire::json(StatusCode::OK, &file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_window_matches_the_documented_example() {
        // client-sdks.md §4.2: 3000-byte file, token "test-access-token" → offset 2222.
        assert_eq!(proof_window("test-access-token", 3000), (2222, 8));
        assert_eq!(proof_window("t", 0), (0, 0));
        let (off, len) = proof_window("test-access-token", 5);
        assert!(off < 5 && len == 5 - off);
    }

    #[test]
    fn part_bounds_without_declared_sizes() {
        let st = |size, parts| UploadState {
            file_id: String::new(),
            drive_id: String::new(),
            parent_file_id: String::new(),
            name: String::new(),
            size,
            parts,
            part_sizes: None,
            content_hash: None,
        };
        // 25 MiB in 3 parts of 10 MiB (aligo's chunking).
        let s = st(25 << 20, 3);
        let (lo, hi) = AdriveDialect::part_bounds(&s, 1);
        assert!(lo <= 10 << 20 && 10 << 20 <= hi);
        let (lo, hi) = AdriveDialect::part_bounds(&s, 3);
        assert!(lo <= 5 << 20 && 5 << 20 <= hi);
        assert_eq!(AdriveDialect::part_bounds(&st(500, 1), 1), (500, 500));
    }
}
