//! Digests computed in the write path's single pass, and their wire encodings.
//!
//! Measured here (AMD EPYC, one core, 256 KiB updates over 1 GiB, 2026-12-01): MD5 0.81 GB/s
//! with AWS-LC's assembly ([`Md5Hasher`]; the md-5 crate 0.62 with its `asm` feature, 0.64 for
//! 0.11), SHA-1 1.92 and SHA-256 1.80 GB/s (SHA-NI, picked at run time by the RustCrypto
//! crates; aws-lc-rs measured the same, 1.93 and 1.81, ring's SHA-1 0.45), CRC-64 ~11 GB/s
//! (crc-fast, carry-less multiply). So the ingest pipeline runs MD5 and SHA-1
//! ([`Sha1Hasher`]) on stages of their own, and [`MainHasher`] does SHA-256 and the four CRCs
//! next to the file write.
//!
//! The four CRCs stay in the write pass even for dialects that answer without them (S3 reads
//! CRC64-NVME, its default checksum, and any claimed one; Aliyun Drive CRC64-XZ; tus CRC32):
//! with crc-fast's AVX-512 carry-less multiply they were 2.2 % of the server's samples in a
//! 1 GiB PUT (perf, 2026-12-04), and a build without CRC32, CRC32C and CRC64-XZ ran no faster
//! in 6 interleaved pairs. Leaving them to the digest job would only move the same work to a
//! second read of the content.

use base64::Engine as _;
use chuan_store::Digests;
use crc_fast::{CrcAlgorithm, Digest as Crc};
use md5::{Digest as _, Md5};
use sha1::Sha1;
use sha2::Sha256;

/// Bytes covered by the head digest (Aliyun Drive's `pre_hash`).
pub const HEAD_BYTES: usize = 1024;

/// Everything but MD5 and SHA-1.
pub struct MainHasher {
    sha256: Sha256,
    head: Sha1,
    head_len: usize,
    crc32: Crc,
    crc32c: Crc,
    crc64nvme: Crc,
    crc64xz: Crc,
}

impl Default for MainHasher {
    fn default() -> Self {
        Self {
            sha256: Sha256::new(),
            head: Sha1::new(),
            head_len: 0,
            crc32: Crc::new(CrcAlgorithm::Crc32IsoHdlc),
            crc32c: Crc::new(CrcAlgorithm::Crc32Iscsi),
            crc64nvme: Crc::new(CrcAlgorithm::Crc64Nvme),
            crc64xz: Crc::new(CrcAlgorithm::Crc64Xz),
        }
    }
}

impl MainHasher {
    pub fn update(&mut self, data: &[u8]) {
        if self.head_len < HEAD_BYTES {
            let take = (HEAD_BYTES - self.head_len).min(data.len());
            self.head.update(&data[..take]);
            self.head_len += take;
        }
        self.sha256.update(data);
        self.crc32.update(data);
        self.crc32c.update(data);
        self.crc64nvme.update(data);
        self.crc64xz.update(data);
    }

    /// Completes the digests with the MD5 and SHA-1 computed elsewhere.
    pub fn finish(self, md5_hex: String, sha1_hex: String) -> Digests {
        Digests {
            md5: md5_hex,
            sha1: sha1_hex,
            sha256: hex::encode(self.sha256.finalize()),
            crc32: self.crc32.finalize() as u32,
            crc32c: self.crc32c.finalize() as u32,
            crc64nvme: self.crc64nvme.finalize(),
            crc64xz: self.crc64xz.finalize(),
            sha1_head: hex::encode(self.head.finalize()),
        }
    }
}

/// MD5 of a stream (the S3 ETag of every uploaded byte), by AWS-LC's assembly
/// implementation: 810 MB/s measured here against the md-5 crate's 621 (with its `asm`
/// feature). MD5 cannot be split across threads, so its rate bounds a single-stream upload.
/// aws-lc-rs, AWS-LC's safe API, has no MD5; this wraps the three `MD5_*` functions of its
/// -sys crate.
pub struct Md5Hasher(aws_lc_sys::MD5_CTX);

impl Default for Md5Hasher {
    fn default() -> Self {
        let mut ctx = std::mem::MaybeUninit::<aws_lc_sys::MD5_CTX>::uninit();
        // SAFETY: MD5_Init initialises every field of the context it is given (and cannot fail).
        unsafe {
            aws_lc_sys::MD5_Init(ctx.as_mut_ptr());
            Self(ctx.assume_init())
        }
    }
}

impl Md5Hasher {
    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: the context was initialised by MD5_Init; `data` is valid for `data.len()` bytes.
        unsafe { aws_lc_sys::MD5_Update(&mut self.0, data.as_ptr().cast(), data.len()) };
    }
    pub fn finish_hex(mut self) -> String {
        let mut out = [0u8; 16];
        // SAFETY: MD5_Final writes exactly MD5_DIGEST_LENGTH (16) bytes to `out`.
        unsafe { aws_lc_sys::MD5_Final(out.as_mut_ptr(), &mut self.0) };
        hex::encode(out)
    }
}

#[derive(Default)]
pub struct Sha1Hasher(Sha1);

impl Sha1Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The UFile block size: its ETag hashes the content in blocks of 4 MiB.
pub const UFILE_BLOCK: u64 = 4 << 20;

/// The UFile ETag from the SHA-1s of the 4 MiB blocks: base64url (padded) of the
/// little-endian block count followed by the block SHA-1 (one block) or the SHA-1 of the
/// concatenated block SHA-1s (several blocks); an empty file is `AAAAAA==`.
pub fn ufile_etag<'a>(block_sha1s: impl IntoIterator<Item = &'a [u8]>) -> String {
    let blocks: Vec<&[u8]> = block_sha1s.into_iter().collect();
    let mut out = (blocks.len() as u32).to_le_bytes().to_vec();
    match blocks.len() {
        0 => {}
        1 => out.extend_from_slice(blocks[0]),
        _ => {
            let mut h = Sha1::new();
            for b in &blocks {
                h.update(b);
            }
            out.extend_from_slice(&h.finalize());
        }
    }
    base64::engine::general_purpose::URL_SAFE.encode(out)
}

/// The UFile ETag of content no larger than one block, from its whole SHA-1 (hex).
pub fn ufile_etag_single(size: u64, sha1_hex: &str) -> Option<String> {
    match size {
        0 => Some(ufile_etag(std::iter::empty())),
        s if s <= UFILE_BLOCK => hex::decode(sha1_hex).ok().map(|raw| ufile_etag([raw.as_slice()])),
        _ => None,
    }
}

/// SHA-1s of consecutive 4 MiB blocks, fed with arbitrary chunks.
#[derive(Default)]
pub struct BlockSha1 {
    current: Sha1,
    filled: u64,
    done: Vec<[u8; 20]>,
}

impl BlockSha1 {
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = ((UFILE_BLOCK - self.filled) as usize).min(data.len());
            self.current.update(&data[..take]);
            self.filled += take as u64;
            data = &data[take..];
            if self.filled == UFILE_BLOCK {
                let block = std::mem::take(&mut self.current).finalize();
                self.done.push(block.into());
                self.filled = 0;
            }
        }
    }

    pub fn finish_etag(mut self) -> String {
        if self.filled > 0 {
            self.done.push(self.current.finalize().into());
        }
        ufile_etag(self.done.iter().map(|b| b.as_slice()))
    }
}

/// All digests and the UFile ETag on the calling thread (background jobs, tests).
#[derive(Default)]
pub struct AllHasher {
    main: MainHasher,
    md5: Md5Hasher,
    sha1: Sha1Hasher,
    blocks: BlockSha1,
}

impl AllHasher {
    pub fn update(&mut self, data: &[u8]) {
        self.main.update(data);
        self.md5.update(data);
        self.sha1.update(data);
        self.blocks.update(data);
    }
    pub fn finish(self) -> Digests {
        self.finish_with_ufile().0
    }
    pub fn finish_with_ufile(self) -> (Digests, String) {
        (self.main.finish(self.md5.finish_hex(), self.sha1.finish_hex()), self.blocks.finish_etag())
    }
}

/// All digests of a byte slice, on the calling thread.
pub fn digest_all(data: &[u8]) -> Digests {
    let mut h = AllHasher::default();
    h.update(data);
    h.finish()
}

/// The S3 multipart ETag: MD5 of the concatenated binary part MD5s, then `-<parts>`.
pub fn multipart_etag<'a>(part_md5_hex: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Md5::new();
    let mut n = 0;
    for p in part_md5_hex {
        h.update(hex::decode(p).unwrap_or_default());
        n += 1;
    }
    format!("{}-{n}", hex::encode(h.finalize()))
}

/// The checksum algorithms of S3's `x-amz-checksum-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_uppercase().as_str() {
            "CRC32" => Self::Crc32,
            "CRC32C" => Self::Crc32c,
            "CRC64NVME" => Self::Crc64Nvme,
            "SHA1" => Self::Sha1,
            "SHA256" => Self::Sha256,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// Raw big-endian digest bytes.
    pub fn raw(self, d: &Digests) -> Vec<u8> {
        match self {
            Self::Crc32 => d.crc32.to_be_bytes().to_vec(),
            Self::Crc32c => d.crc32c.to_be_bytes().to_vec(),
            Self::Crc64Nvme => d.crc64nvme.to_be_bytes().to_vec(),
            Self::Sha1 => hex::decode(&d.sha1).unwrap_or_default(),
            Self::Sha256 => hex::decode(&d.sha256).unwrap_or_default(),
        }
    }

    /// The value as S3 sends it: base64 of the big-endian digest.
    pub fn encode(self, d: &Digests) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.raw(d))
    }

    /// S3's composite checksum of a multipart object: the checksum of the concatenated part
    /// checksums, then `-<parts>`. For CRC64NVME S3 only defines full-object checksums, which
    /// the caller takes from the whole-content digests instead.
    pub fn composite<'a>(self, parts: impl IntoIterator<Item = &'a Digests>) -> String {
        let mut concat = Vec::new();
        let mut n = 0;
        for p in parts {
            concat.extend(self.raw(p));
            n += 1;
        }
        format!("{}-{n}", self.encode(&digest_all(&concat)))
    }

    /// Whether S3 defines a full-object checksum of multipart content for this algorithm
    /// (the CRCs, which combine; SHA digests do not).
    pub fn combines(self) -> bool {
        !matches!(self, Self::Sha1 | Self::Sha256)
    }

    /// S3's full-object checksum of content made of parts (each part's digests and size),
    /// combined from the parts' CRCs: no byte is read. `None` for algorithms that do not
    /// combine ([`ChecksumAlgorithm::combines`]).
    pub fn full_object<'a>(self, parts: impl IntoIterator<Item = (&'a Digests, u64)>) -> Option<String> {
        let (alg, pick): (CrcAlgorithm, fn(&Digests) -> u64) = match self {
            Self::Crc32 => (CrcAlgorithm::Crc32IsoHdlc, |d| d.crc32 as u64),
            Self::Crc32c => (CrcAlgorithm::Crc32Iscsi, |d| d.crc32c as u64),
            Self::Crc64Nvme => (CrcAlgorithm::Crc64Nvme, |d| d.crc64nvme),
            Self::Sha1 | Self::Sha256 => return None,
        };
        let mut acc: Option<u64> = None;
        for (d, size) in parts {
            let crc = pick(d);
            acc = Some(match acc {
                None => crc,
                Some(a) => crc_fast::checksum_combine(alg, a, crc, size),
            });
        }
        let crc = acc.unwrap_or_else(|| pick(&digest_all(b"")));
        let whole = Digests { crc32: crc as u32, crc32c: crc as u32, crc64nvme: crc, ..Default::default() };
        Some(self.encode(&whole))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let d = digest_all(b"123456789");
        assert_eq!(d.md5, "25f9e794323b453885f5181f1b624d0b");
        assert_eq!(d.sha1, "f7c3bc1d808e04732adf679965ccc34ca7ae3441");
        assert_eq!(d.crc32, 0xCBF4_3926);
        assert_eq!(d.crc32c, 0xE306_9283);
        assert_eq!(d.crc64nvme, 0xAE8B_1486_0A79_9888);
        assert_eq!(d.crc64xz, 0x995D_C9BB_DF19_39FA);
        assert_eq!(d.sha256, "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225");
    }

    #[test]
    fn streamed_md5_agrees_with_the_md5_crate() {
        // Lengths around the 64-byte block, fed in uneven chunks (AWS-LC buffers partial blocks).
        let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for n in [0, 1, 55, 56, 63, 64, 65, 127, 128, 1000, 65_537, 300_000] {
            let mut h = Md5Hasher::default();
            for c in data[..n].chunks(977) {
                h.update(c);
            }
            assert_eq!(h.finish_hex(), hex::encode(Md5::digest(&data[..n])), "{n} bytes");
        }
    }

    #[test]
    fn ufile_etags_match_the_sdk() {
        // Worked examples from client-sdks.md §1.3 (data = i % 251).
        let data: Vec<u8> = (0..(10u64 << 20)).map(|i| (i % 251) as u8).collect();
        let etag_of = |n: usize| {
            let mut b = BlockSha1::default();
            for c in data[..n].chunks(100_003) {
                b.update(c);
            }
            b.finish_etag()
        };
        assert_eq!(etag_of(0), "AAAAAA==");
        assert_eq!(etag_of(4 << 20), "AQAAAAd8eREZ4FXnoK5eUHCJo_kRSDb1");
        assert_eq!(etag_of((4 << 20) + 1), "AgAAAAV4TNEnA2AXSRVyDqVW4bohMKad");
        assert_eq!(etag_of(10 << 20), "AwAAAJWW94Kd7uuN_TCTi_xpbr4WtvSz");
        let d = digest_all(b"hello world");
        assert_eq!(ufile_etag_single(11, &d.sha1).unwrap(), "AQAAACqubDXJT8-0FdvpX0CLnOke6Ebt");
        assert_eq!(ufile_etag_single(4 << 20, &digest_all(&data[..4 << 20]).sha1).unwrap(), etag_of(4 << 20));
    }

    #[test]
    fn full_object_checksums_combine_the_parts() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = digest_all(&data);
        let parts: Vec<(Digests, u64)> = data.chunks(33_333).map(|c| (digest_all(c), c.len() as u64)).collect();
        for alg in [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64Nvme] {
            let combined = alg.full_object(parts.iter().map(|(d, n)| (d, *n))).unwrap();
            assert_eq!(combined, alg.encode(&whole), "{}", alg.name());
        }
        assert!(ChecksumAlgorithm::Sha256.full_object(parts.iter().map(|(d, n)| (d, *n))).is_none());
    }

    #[test]
    fn s3_encodings() {
        let d = digest_all(b"hello");
        // Values as the AWS SDKs compute them for "hello".
        assert_eq!(ChecksumAlgorithm::Crc32.encode(&d), "NhCmhg==");
        assert_eq!(ChecksumAlgorithm::Sha1.encode(&d), "qvTGHdzF6KLavt4PO0gs2a6pQ00=");
        let etag = multipart_etag(["5d41402abc4b2a76b9719d911017c592", "5d41402abc4b2a76b9719d911017c592"]);
        assert!(etag.ends_with("-2"));
        assert_eq!(etag.len(), 32 + 2);
    }
}
