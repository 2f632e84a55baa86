//! Slice uploads over core upload sessions (completed without copying):
//! * v4: `upload_slice_init` → `upload_slice_data` (any order, in parallel) →
//!   `upload_slice_finish`, and `upload_slice_list` to resume. With `uploadparts` every slice
//!   is checked on arrival against the client's SHA-1 chain: `datasha` of each slice but the
//!   last is the SHA-1 *state* after the bytes up to its end (five little-endian words), the
//!   last one the whole-file SHA-1. A slice is hashed from the previous slice's state, so when
//!   all slices match, the whole-file SHA-1 is proven without reading the file again.
//! * v3: one op, `upload_slice`: without `session` it opens (or resumes, answering the first
//!   missing `offset`) an upload; with it, stores a slice; the slice that completes the file
//!   finishes it.
//!
//! An `init` carrying the `sha` of content the tenant already holds creates the file at once
//! (instant upload); another tenant's content is never matched by a hash alone.

use chuan_core::store::{ObjectMeta, UploadKind, UploadRecord, WriteCondition};
use chuan_core::{Claim, Completion, CoreError, NewUpload, PartList, Possession, PutTarget, Staged};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Read;

use crate::dir::{BIZ_ATTR, SHA1};
use crate::error::{CosError, CosResult};
use crate::{ok, CosDialect, Ctx, Form, Resp, MAX_SLICE};

/// The slice sizes v4 allows.
const SLICE_SIZES: &[u64] = &[512 << 10, 1 << 20, 2 << 20, 3 << 20];

/// What a COS session remembers besides its parts (it lives as long as the core keeps
/// `UploadKind::Cos` sessions: a day).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SliceState {
    filesize: u64,
    slice_size: u64,
    /// The whole-file SHA-1 the client announced.
    sha: Option<String>,
    /// `uploadparts` `datasha` values, one per slice.
    chain: Option<Vec<String>>,
    insert_only: bool,
}

impl SliceState {
    fn slices(&self) -> u64 {
        self.filesize.div_ceil(self.slice_size)
    }
    fn same_file(&self, filesize: u64, slice_size: u64, sha: &Option<String>) -> bool {
        self.filesize == filesize && self.slice_size == slice_size && (sha.is_none() || self.sha == *sha)
    }
}

fn state_of(up: &UploadRecord) -> Option<SliceState> {
    (up.kind == UploadKind::Cos).then(|| serde_json::from_str::<SliceState>(&up.state).ok()).flatten()
}

fn valid_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// SHA-1 over a stream that may start from a saved state (hand-written around
/// `sha1::compress`: the RustCrypto hasher neither exposes nor accepts its state).
pub(crate) struct Sha1Chain {
    h: [u32; 5],
    block: [u8; 64],
    filled: usize,
    len: u64,
}

const SHA1_IV: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];

impl Sha1Chain {
    /// Resumes after `len` bytes (a multiple of 64) whose state is `h`.
    pub(crate) fn resume(h: [u32; 5], len: u64) -> Self {
        Self { h, block: [0; 64], filled: 0, len }
    }
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::resume(SHA1_IV, 0)
    }
    /// A state as `uploadparts` writes it: the five words little-endian, in hex.
    pub(crate) fn parse_state(hex_state: &str) -> Option<[u32; 5]> {
        let raw = hex::decode(hex_state).ok()?;
        if raw.len() != 20 {
            return None;
        }
        let mut h = [0u32; 5];
        for (i, w) in h.iter_mut().enumerate() {
            *w = u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().ok()?);
        }
        Some(h)
    }
    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.filled > 0 {
            let n = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled < 64 {
                return;
            }
            sha1::compress(&mut self.h, &[self.block.into()]);
            self.filled = 0;
        }
        let whole = data.len() / 64 * 64;
        let blocks: Vec<sha1::digest::generic_array::GenericArray<u8, _>> =
            data[..whole].chunks_exact(64).map(|c| *sha1::digest::generic_array::GenericArray::from_slice(c)).collect();
        sha1::compress(&mut self.h, &blocks);
        let rest = &data[whole..];
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }
    /// The state so far, as `uploadparts` writes it (only meaningful on a 64-byte boundary).
    pub(crate) fn state_hex(&self) -> Option<String> {
        (self.filled == 0).then(|| hex::encode(self.h.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>()))
    }
    /// The SHA-1 of everything hashed since the initial state (hex).
    pub(crate) fn finish(mut self) -> String {
        let bits = self.len.wrapping_mul(8);
        let mut tail = vec![0x80u8];
        let used = (self.filled + 1) % 64;
        tail.resize(1 + if used <= 56 { 56 - used } else { 120 - used }, 0);
        tail.extend_from_slice(&bits.to_be_bytes());
        let len = self.len;
        self.update(&tail);
        self.len = len;
        debug_assert_eq!(self.filled, 0);
        hex::encode(self.h.iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>())
    }
}

impl CosDialect {
    /// The newest unfinished COS slice upload of this path.
    async fn unfinished(&self, ctx: &Ctx, key: &str) -> CosResult<Option<(UploadRecord, SliceState)>> {
        let open = self.engine.open_uploads(&ctx.p, &ctx.t.bucket, key, UploadKind::Cos).await?;
        Ok(open.into_iter().find_map(|u| state_of(&u).map(|s| (u, s))))
    }

    async fn session(&self, ctx: &Ctx, form: &Form) -> CosResult<(UploadRecord, SliceState)> {
        let id = form.get("session").ok_or_else(|| CosError::new(-95, "ERROR_PROXY_NO_SESSION: session is missing"))?;
        let up = match self.engine.upload(&ctx.p, &ctx.t.bucket, ctx.t.key(), id).await {
            Err(CoreError::NoSuchUpload) => return Err(CosError::wrong_session()),
            r => r?,
        };
        let st = state_of(&up).ok_or_else(CosError::wrong_session)?;
        Ok((up, st))
    }

    /// What opening an upload has in common in v3 and v4: the path checks, `insertOnly`,
    /// the empty file, the instant upload. `Ok(Some(resp))` when the file is done already.
    async fn open_checks(
        &self,
        ctx: &Ctx,
        form: &Form,
        filesize: u64,
        sha: &Option<String>,
    ) -> CosResult<Option<Resp>> {
        let key = ctx.t.key().to_owned();
        self.check_file_path(ctx, &key).await?;
        let insert_only = form.get("insertOnly") != Some("0");
        if insert_only {
            match self.engine.head_object(&ctx.p, &ctx.t.bucket, &key).await {
                Ok(_) => return Err(CosError::same_file()),
                Err(CoreError::NoSuchKey) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut meta = ObjectMeta::default();
        meta.attrs.insert(BIZ_ATTR.into(), form.get("biz_attr").unwrap_or("").to_owned());
        let target = PutTarget {
            bucket: ctx.t.bucket.clone(),
            key: key.clone(),
            meta,
            condition: insert_only.then_some(WriteCondition::Absent),
            tree: chuan_core::store::TreeRule::Folders,
        };
        let committed = if filesize == 0 {
            Some(self.engine.put_empty(&ctx.p, target).await)
        } else if let Some(sha) = sha {
            match self.engine.claimable_content(&ctx.p, "sha1", sha, filesize, &Possession::None).await? {
                Some(content) => Some(self.engine.instant_put(&ctx.p, target, content, None).await),
                None => None,
            }
        } else {
            None
        };
        match committed {
            None => Ok(None),
            Some(Err(CoreError::PreconditionFailed)) => Err(CosError::same_file()),
            Some(r) => {
                r?;
                Ok(Some(ok(Some(ctx.t.urls(&key)))))
            }
        }
    }

    async fn open_session(&self, ctx: &Ctx, form: &Form, st: SliceState) -> CosResult<UploadRecord> {
        let mut meta = ObjectMeta::default();
        meta.attrs.insert(BIZ_ATTR.into(), form.get("biz_attr").unwrap_or("").to_owned());
        if st.chain.is_some() {
            // Proven slice by slice before the file can be finished.
            meta.attrs.insert(SHA1.into(), st.sha.clone().unwrap_or_default());
        }
        let mut new = NewUpload::new(UploadKind::Cos, &ctx.t.bucket, ctx.t.key());
        new.meta = meta;
        new.state = serde_json::to_string(&st).expect("serialisable");
        Ok(self.engine.create_upload(&ctx.p, new).await?)
    }

    fn sha_field(form: &Form) -> CosResult<Option<String>> {
        match form.get("sha") {
            None => Ok(None),
            Some(s) if valid_sha(s) => Ok(Some(s.to_ascii_lowercase())),
            Some(_) => Err(CosError::new(-168, "ERROR_CMD_COS_INVALID_SHA: sha must be 40 hex digits")),
        }
    }

    /// v4 `upload_slice_init`.
    pub(crate) async fn slice_init(&self, ctx: &Ctx, form: Form) -> CosResult<Resp> {
        let filesize = form
            .num("filesize")?
            .ok_or_else(|| CosError::new(-5971, "ERROR_CGI_PARAM_MISSING_FILESIZE: filesize is missing"))?;
        let slice_size = form.num("slice_size")?.unwrap_or(1 << 20);
        if !SLICE_SIZES.contains(&slice_size) {
            return Err(CosError::new(-4002, "ErrParamInvalid: slice_size is 524288, 1048576, 2097152 or 3145728"));
        }
        let mut sha = Self::sha_field(&form)?;
        let chain = match form.get("uploadparts") {
            None => None,
            Some(raw) => Some(parse_uploadparts(raw, filesize, slice_size, &mut sha)?),
        };
        if let Some(done) = self.open_checks(ctx, &form, filesize, &sha).await? {
            return Ok(done);
        }
        if let Some((up, st)) = self.unfinished(ctx, ctx.t.key()).await? {
            if st.same_file(filesize, slice_size, &sha) {
                return Err(CosError::new(-4019, "ErrOffsetToZero: an upload of this file is unfinished; list its slices (upload_slice_list) and resume")
                    .with_data(json!({"session": up.id, "slice_size": st.slice_size})));
            }
            self.engine.abort_upload(&ctx.p, &up).await?;
        }
        let insert_only = form.get("insertOnly") != Some("0");
        let st = SliceState { filesize, slice_size, sha, chain, insert_only };
        let up = self.open_session(ctx, &form, st).await?;
        Ok(ok(Some(json!({"session": up.id, "slice_size": slice_size, "serial_upload": 0}))))
    }

    /// Stores one slice after checking where it goes, its length and its chain state.
    async fn store_slice(
        &self,
        ctx: &Ctx,
        up: &UploadRecord,
        st: &SliceState,
        offset: u64,
        staged: Staged,
    ) -> CosResult<u64> {
        if !offset.is_multiple_of(st.slice_size) || offset >= st.filesize {
            return Err(CosError::new(
                -284,
                format!("ERROR_PROCESS_WRONG_SLICE_SIZE: offset {offset} is not the start of a slice of this file"),
            ));
        }
        let expected = st.slice_size.min(st.filesize - offset);
        if staged.size != expected {
            return Err(CosError::new(
                -284,
                format!(
                    "ERROR_PROCESS_WRONG_SLICE_SIZE: the slice at {offset} must be {expected} bytes, not {}",
                    staged.size
                ),
            ));
        }
        let index = (offset / st.slice_size) as usize;
        if let Some(chain) = &st.chain {
            let start = if index == 0 { Some(SHA1_IV) } else { Sha1Chain::parse_state(&chain[index - 1]) };
            let start = start.ok_or_else(|| CosError::new(-4016, "ErrNotSameSHA: bad datasha in uploadparts"))?;
            let last = offset + expected == st.filesize;
            let got = chain_hash(&staged, start, offset, last).await?;
            if !got.eq_ignore_ascii_case(&chain[index]) {
                return Err(CosError::new(
                    -4016,
                    format!("ErrNotSameSHA: the slice at {offset} does not match its datasha"),
                ));
            }
        }
        self.engine.commit_part(&ctx.p, up, index as u32 + 1, staged).await?;
        self.slices.inc();
        Ok(expected)
    }

    /// v4 `upload_slice_data`: the response and whether the upload may be finished now.
    pub(crate) async fn slice_data(&self, ctx: &Ctx, mut form: Form) -> CosResult<(Resp, bool)> {
        let (up, st) = self.session(ctx, &form).await?;
        let offset = form.num("offset")?.ok_or_else(|| CosError::param("offset is missing"))?;
        if let (Some(claimed), Some(known)) = (Self::sha_field(&form)?, &st.sha) {
            if claimed != *known {
                return Err(CosError::new(
                    -174,
                    "ERROR_CMD_COS_SHA_NOT_EQU: sha differs from the one the upload began with",
                ));
            }
        }
        let staged = form
            .content
            .take()
            .ok_or_else(|| CosError::new(-5990, "ERROR_CGI_MISSING_FILECONTENT: filecontent is missing"))?;
        debug_assert!(staged.size <= MAX_SLICE);
        let datalen = self.store_slice(ctx, &up, &st, offset, staged).await?;
        let complete = self.engine.list_parts(&ctx.p, &up, 0, 10_001).await?.len() as u64 == st.slices();
        Ok((ok(Some(json!({"session": up.id, "offset": offset, "datalen": datalen}))), complete))
    }

    /// v4 `upload_slice_finish`.
    pub(crate) async fn slice_finish(&self, ctx: &Ctx, form: Form) -> CosResult<Resp> {
        let (up, st) = self.session(ctx, &form).await?;
        if form.num("filesize")?.is_some_and(|f| f != st.filesize) {
            return Err(CosError::new(
                -175,
                "ERROR_CMD_COS_FILE_SIZE_NOT_EQU: filesize differs from the one the upload began with",
            ));
        }
        let want = Self::sha_field(&form)?.or_else(|| st.sha.clone());
        self.finish(ctx, &up, &st, want).await
    }

    /// Completes an upload whose slices are all stored: no bytes are copied; the whole-file
    /// SHA-1 is proven by the chain, or checked by the core from the slices when the client
    /// claims one without a chain.
    async fn finish(&self, ctx: &Ctx, up: &UploadRecord, st: &SliceState, want: Option<String>) -> CosResult<Resp> {
        let mut completion = Completion::new(PartList::All { count: st.slices() as u32 });
        completion.size = Some(st.filesize);
        match (&st.chain, want) {
            (Some(chain), Some(want)) if !chain.last().is_some_and(|l| l.eq_ignore_ascii_case(&want)) => {
                self.engine.abort_upload(&ctx.p, up).await?;
                return Err(CosError::new(
                    -174,
                    "ERROR_CMD_COS_SHA_NOT_EQU: the file's sha does not match; upload it again",
                ));
            }
            (None, Some(want)) => completion.claims.push(Claim::Sha1(want)),
            _ => {}
        }
        completion.condition = st.insert_only.then_some(WriteCondition::Absent);
        match self.engine.complete_upload(&ctx.p, up, completion).await {
            Err(CoreError::PreconditionFailed) => Err(CosError::same_file()),
            r => Ok(ok(Some(ctx.t.urls(&r?.object.key)))),
        }
    }

    /// v4 `upload_slice_list`: the unfinished upload's slices, else the finished file's URLs.
    pub(crate) async fn slice_list(&self, ctx: &Ctx) -> CosResult<Resp> {
        if let Some((up, st)) = self.unfinished(ctx, ctx.t.key()).await? {
            let parts = self.engine.list_parts(&ctx.p, &up, 0, 10_001).await?;
            let listparts: Vec<Value> = parts
                .iter()
                .map(|p| json!({"offset": u64::from(p.number - 1) * st.slice_size, "datalen": p.size}))
                .collect();
            return Ok(ok(Some(json!({
                "session": up.id,
                "slice_size": st.slice_size,
                "filesize": st.filesize,
                "listparts": listparts,
            }))));
        }
        let rec = self.engine.head_object(&ctx.p, &ctx.t.bucket, ctx.t.key()).await?;
        Ok(ok(Some(ctx.t.urls(&rec.key))))
    }

    /// v3 `upload_slice`: control (no session) or data.
    pub(crate) async fn slice_v3(&self, ctx: &Ctx, form: Form) -> CosResult<Resp> {
        if let Some(session) = form.get("session").map(str::to_owned) {
            let (resp, complete) = self.slice_data(ctx, form).await?;
            if !complete {
                return Ok(resp);
            }
            // The SDK stops at the slice whose answer carries `access_url`.
            let up = self.engine.upload(&ctx.p, &ctx.t.bucket, ctx.t.key(), &session).await?;
            let st = state_of(&up).ok_or_else(CosError::wrong_session)?;
            return self.finish(ctx, &up, &st, st.sha.clone()).await;
        }
        let sha = Self::sha_field(&form)?
            .ok_or_else(|| CosError::new(-5979, "ERROR_CGI_PARAM_MISSING_SHA: sha is missing"))?;
        let filesize = form
            .num("filesize")?
            .ok_or_else(|| CosError::new(-5971, "ERROR_CGI_PARAM_MISSING_FILESIZE: filesize is missing"))?;
        let slice_size = form.num("slice_size")?.unwrap_or(512 << 10);
        if slice_size == 0 || slice_size > MAX_SLICE || slice_size % 1024 != 0 {
            return Err(CosError::new(-4002, "ErrParamInvalid: slice_size is a multiple of 1 KiB up to 3 MiB"));
        }
        let sha = Some(sha);
        if let Some(done) = self.open_checks(ctx, &form, filesize, &sha).await? {
            return Ok(done);
        }
        if let Some((up, st)) = self.unfinished(ctx, ctx.t.key()).await? {
            if st.same_file(filesize, slice_size, &sha) {
                // Resume where the stored slices stop being contiguous.
                let parts = self.engine.list_parts(&ctx.p, &up, 0, 10_001).await?;
                let mut next = 1u32;
                for p in &parts {
                    if p.number != next {
                        break;
                    }
                    next += 1;
                }
                let offset = u64::from(next - 1) * slice_size;
                return Ok(ok(Some(json!({"session": up.id, "slice_size": slice_size, "offset": offset}))));
            }
            self.engine.abort_upload(&ctx.p, &up).await?;
        }
        let insert_only = form.get("insertOnly") != Some("0");
        let st = SliceState { filesize, slice_size, sha, chain: None, insert_only };
        let up = self.open_session(ctx, &form, st).await?;
        Ok(ok(Some(json!({"session": up.id, "slice_size": slice_size, "offset": 0}))))
    }
}

/// Validates `uploadparts` against the file and returns the `datasha` values; the last one
/// is the whole-file SHA-1 (taken as `sha` when the client sent none).
fn parse_uploadparts(raw: &str, filesize: u64, slice_size: u64, sha: &mut Option<String>) -> CosResult<Vec<String>> {
    let bad = |m: &str| CosError::new(-4002, format!("ErrParamInvalid: uploadparts {m}"));
    let parts: Vec<Value> = serde_json::from_str(raw).map_err(|_| bad("must be a JSON list"))?;
    let count = filesize.div_ceil(slice_size);
    if parts.len() as u64 != count || count == 0 {
        return Err(bad(&format!("must list {count} slices")));
    }
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let offset = i as u64 * slice_size;
        let len = slice_size.min(filesize - offset);
        if p["offset"].as_u64() != Some(offset) || p["datalen"].as_u64() != Some(len) {
            return Err(bad(&format!("entry {i} must have offset {offset} and datalen {len}")));
        }
        let datasha =
            p["datasha"].as_str().filter(|s| valid_sha(s)).ok_or_else(|| bad("datasha must be 40 hex digits"))?;
        out.push(datasha.to_ascii_lowercase());
    }
    let last = out.last().cloned().unwrap_or_default();
    match sha {
        Some(s) if *s != last => return Err(bad("last datasha must equal sha")),
        Some(_) => {}
        None => *sha = Some(last),
    }
    Ok(out)
}

/// Hashes a staged slice from the chain state before it: the state after it, or for the
/// last slice the whole-file SHA-1. The slice is read back from its staging file, because the
/// SDKs send `session` and `offset` — which say where the chain starts — after the data.
async fn chain_hash(staged: &Staged, start: [u32; 5], offset: u64, last: bool) -> CosResult<String> {
    let mut file = staged.reopen().map_err(|e| CoreError::Internal(format!("staged slice: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let mut chain = Sha1Chain::resume(start, offset);
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            chain.update(&buf[..n]);
        }
        Ok::<_, std::io::Error>(if last { chain.finish() } else { chain.state_hex().unwrap_or_default() })
    })
    .await
    .map_err(|e| CoreError::Internal(e.to_string()))?
    .map_err(|e| CosError::from(CoreError::Internal(format!("staged slice: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::Digest;

    fn sample(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn chain_states_match_the_sdk_example() {
        // client-sdks.md §3.4: 2.5 MiB of i % 251, 1 MiB slices.
        let data = sample(5 << 19);
        let mut c = Sha1Chain::new();
        c.update(&data[..1 << 20]);
        assert_eq!(c.state_hex().unwrap(), "463935c7eea4ca2705d0f481ecedb31f4d0f3a96");
        // Resumed from the stated state, as a slice arriving alone is checked.
        let mut c2 =
            Sha1Chain::resume(Sha1Chain::parse_state("463935c7eea4ca2705d0f481ecedb31f4d0f3a96").unwrap(), 1 << 20);
        for piece in data[1 << 20..2 << 20].chunks(1000) {
            c2.update(piece);
        }
        assert_eq!(c2.state_hex().unwrap(), "657c72d675f1e792607e5c0a7405f66cbdb8c290");
        let mut c3 =
            Sha1Chain::resume(Sha1Chain::parse_state("657c72d675f1e792607e5c0a7405f66cbdb8c290").unwrap(), 2 << 20);
        c3.update(&data[2 << 20..]);
        assert_eq!(c3.finish(), "d08b7e21afb7bc45b7bc7e265d812094252a14ac");
        assert_eq!(hex::encode(sha1::Sha1::digest(&data)), "d08b7e21afb7bc45b7bc7e265d812094252a14ac");
    }

    #[test]
    fn finish_pads_every_length() {
        for n in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 1000] {
            let data = sample(n);
            let mut c = Sha1Chain::new();
            c.update(&data);
            assert_eq!(c.finish(), hex::encode(sha1::Sha1::digest(&data)), "length {n}");
        }
    }
}
