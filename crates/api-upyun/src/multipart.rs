//! Uploads in parts, both of `upyun` 2.5.5's flavours, over core upload sessions:
//! * resumable sequential (`X-Upyun-Multi-Stage: initiate,upload` … `upload,complete`): parts
//!   must come in order; a wrong one is answered "part id error" with `X-Upyun-Next-Part-Id`
//!   so the SDK jumps to where the server is;
//! * parallel (`X-Upyun-Multi-Disorder: true`): parts in any order, then `complete`.
//!
//! Part ids start at 0 (stored as part numbers from 1). The core's completion checks that
//! every part is there, the declared length and the optional whole-file MD5, and assembles
//! without copying.

use chuan_api_common::RequestBody;
use chuan_core::store::{ObjectMeta, UploadKind, UploadRecord};
use chuan_core::{Claim, Completion, NewUpload, PartList, Principal};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};

use crate::error::{UpyunError, UpyunResult};
use crate::{header, Resp, UpyunDialect};

/// What an UpYun session remembers besides its parts (it lives as long as the core keeps
/// `UploadKind::Upyun` sessions: a day, as UpYun keeps unfinished uploads).
#[derive(Serialize, Deserialize)]
struct State {
    /// `X-Upyun-Multi-Length`; `None` when the client did not declare it (the SDK's
    /// `init_multi_uploader` without `file_size`): the parts then decide the length.
    #[serde(default)]
    length: Option<u64>,
    part_size: u64,
    disorder: bool,
}

const DEFAULT_PART: u64 = 1 << 20;
/// Parts an upload may have (ids 0..MAX_PARTS), as UpYun allows.
const MAX_PARTS: u64 = 10_000;

impl State {
    /// How many parts the declared length makes (unknown without one).
    fn count(&self) -> Option<u64> {
        self.length.map(|l| l.div_ceil(self.part_size).max(1))
    }
}

fn uuid_header(r: &mut Resp, id: &str) {
    if let Ok(v) = HeaderValue::from_str(id) {
        r.headers_mut().insert("x-upyun-multi-uuid", v);
    }
}

fn state_of(up: &UploadRecord) -> UpyunResult<State> {
    (up.kind == UploadKind::Upyun)
        .then(|| serde_json::from_str::<State>(&up.state).ok())
        .flatten()
        .ok_or_else(|| UpyunError::coded(40011061, "x-upyun-multi-uuid not found"))
}

impl UpyunDialect {
    pub(crate) async fn multipart(
        &self,
        p: &Principal,
        parts: &Parts,
        bucket: &str,
        key: &str,
        body: RequestBody,
    ) -> UpyunResult<Resp> {
        let stages: Vec<String> = header(parts, "x-upyun-multi-stage")
            .unwrap_or("")
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        let has = |s: &str| stages.iter().any(|x| x == s);
        let up = if has("initiate") {
            let length = match header(parts, "x-upyun-multi-length") {
                None => None,
                Some(l) => Some(
                    l.trim().parse::<u64>().map_err(|_| UpyunError::bad("X-Upyun-Multi-Length must be a number"))?,
                ),
            };
            let part_size =
                header(parts, "x-upyun-multi-part-size").and_then(|l| l.parse().ok()).unwrap_or(DEFAULT_PART);
            if part_size == 0 || !part_size.is_multiple_of(1 << 20) {
                return Err(UpyunError::bad("X-Upyun-Multi-Part-Size must be a multiple of 1 MiB"));
            }
            if length.is_some_and(|l| l.div_ceil(part_size) > MAX_PARTS) {
                return Err(UpyunError::bad(format!("more than {MAX_PARTS} parts: use a larger part size")));
            }
            let disorder = header(parts, "x-upyun-multi-disorder").is_some_and(|d| d.eq_ignore_ascii_case("true"));
            let meta = ObjectMeta {
                content_type: Some(crate::types::content_type(header(parts, "x-upyun-multi-type"), key)),
                ..crate::rest::meta_of(parts, key)
            };
            let state = State { length, part_size, disorder };
            let mut new = NewUpload::new(UploadKind::Upyun, bucket, key);
            new.meta = meta;
            new.state = serde_json::to_string(&state).expect("serialisable");
            self.engine.create_upload(p, new).await?
        } else {
            let id =
                header(parts, "x-upyun-multi-uuid").ok_or_else(|| UpyunError::bad("X-Upyun-Multi-Uuid is required"))?;
            self.engine.upload(p, bucket, key, id).await?
        };
        let state = state_of(&up)?;
        if has("upload") {
            let part: u32 = header(parts, "x-upyun-part-id")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| UpyunError::bad("X-Upyun-Part-Id is required"))?;
            let count = state.count();
            if u64::from(part) >= count.unwrap_or(MAX_PARTS) {
                return Err(UpyunError::bad("part id out of range"));
            }
            if !state.disorder {
                let next = self.engine.list_parts(p, &up, 0, 10_001).await?.len() as u32;
                if part != next {
                    let mut e = UpyunError::new(StatusCode::BAD_REQUEST, 40011059, "part id error");
                    e.next_part = Some(next);
                    return Err(e);
                }
            }
            // No part is larger than the part size: held to it while it streams in.
            let limit = chuan_core::StageOptions::at_most(state.part_size).deferring_sha1();
            let staged = match self.engine.stage_with(p, http_body_util::BodyDataStream::new(body), limit).await {
                Err(chuan_core::CoreError::EntityTooLarge { .. }) => {
                    return Err(UpyunError::bad(format!(
                        "wrong content-length header: parts are at most {} bytes",
                        state.part_size
                    )))
                }
                r => r?,
            };
            if header(parts, "content-md5").is_some_and(|m| !m.eq_ignore_ascii_case(&staged.digests.md5)) {
                return Err(UpyunError::new(StatusCode::BAD_REQUEST, 40000006, "Content-MD5 not match"));
            }
            match (state.length, count) {
                (Some(length), Some(count)) => {
                    let last = u64::from(part) + 1 == count;
                    let expected = if last { length - state.part_size * (count - 1) } else { state.part_size };
                    if staged.size != expected {
                        return Err(UpyunError::bad(format!(
                            "part {part} is {} bytes; expected {expected}",
                            staged.size
                        )));
                    }
                }
                // Length unknown: any part may turn out the last, so each is at most the part
                // size; completion checks that all but the last are exactly it.
                _ if staged.size == 0 || staged.size > state.part_size => {
                    return Err(UpyunError::bad(format!(
                        "part {part} is {} bytes; parts are 1 to {} bytes",
                        staged.size, state.part_size
                    )));
                }
                _ => {}
            }
            self.engine.commit_part(p, &up, part + 1, staged).await?;
        }
        if has("complete") {
            return self.complete(p, &up, &state, parts).await;
        }
        let mut r =
            http::Response::builder().status(StatusCode::NO_CONTENT).body(chuan_api_common::empty()).expect("valid");
        uuid_header(&mut r, &up.id);
        if !state.disorder {
            let next = self.engine.list_parts(p, &up, 0, 10_001).await?.len();
            r.headers_mut().insert("x-upyun-next-part-id", HeaderValue::from(next));
        }
        Ok(r)
    }

    async fn complete(&self, p: &Principal, up: &UploadRecord, state: &State, parts: &Parts) -> UpyunResult<Resp> {
        let mut completion = match state.count() {
            Some(count) => Completion::new(PartList::All { count: count as u32 }),
            None => Completion::new(PartList::Stored),
        };
        completion.size = state.length;
        completion.block = Some(state.part_size);
        if let Some(want) = header(parts, "x-upyun-multi-md5") {
            completion.claims.push(Claim::Md5(want.to_ascii_lowercase()));
        }
        let done = match self.engine.complete_upload(p, up, completion).await {
            // The SDK starts over on this answer: the core kept nothing of it.
            Err(chuan_core::CoreError::BadDigest { .. }) => {
                return Err(UpyunError::new(StatusCode::BAD_REQUEST, 40011062, "file md5 not match"))
            }
            Err(e @ (chuan_core::CoreError::MissingParts(_) | chuan_core::CoreError::SizeMismatch { .. })) => {
                return Err(UpyunError::bad(format!("{e}; upload the missing parts")))
            }
            r => r?,
        };
        let mut r = http::Response::builder()
            .status(StatusCode::CREATED)
            .header(http::header::ETAG, format!("\"{}\"", done.object.etag))
            .body(chuan_api_common::empty())
            .expect("valid");
        uuid_header(&mut r, &up.id);
        // As UpYun's complete answer: the length (which may only now be known) and the type.
        r.headers_mut().insert("x-upyun-multi-length", HeaderValue::from(done.object.size));
        let ct = done.object.meta.content_type.as_deref().unwrap_or("application/octet-stream");
        if let Ok(v) = HeaderValue::from_str(ct) {
            r.headers_mut().insert("x-upyun-multi-type", v);
        }
        Ok(r)
    }

    pub(crate) async fn cancel(&self, p: &Principal, parts: &Parts, bucket: &str, key: &str) -> UpyunResult<Resp> {
        let id = header(parts, "x-upyun-multi-uuid").unwrap_or("");
        let up = self.engine.upload(p, bucket, key, id).await?;
        state_of(&up)?;
        self.engine.abort_upload(p, &up).await?;
        Ok(http::Response::builder().status(StatusCode::NO_CONTENT).body(chuan_api_common::empty()).expect("valid"))
    }
}
