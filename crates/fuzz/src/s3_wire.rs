//! The S3 wire as s3s parses it for Chuan, without an engine behind it: SigV4 `Authorization`
//! headers and presigned queries, `aws-chunked` bodies (signed chunk chains, unsigned chunks
//! with checksum trailers), the XML and POST Object forms, under the same s3s limits
//! (`chuan_api_s3::s3s_config`). The backend only drains bodies and reads trailers, so
//! inputs run thousands of times faster than [`crate::requests`], which reaches the same
//! parsers through the engine.

use crate::sigv4::{self, sha256_hex};
use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result};
use std::sync::{Arc, OnceLock};

const AK: &str = "FUZZWIREACCESSKEY000";
const SK: &str = "fuzz/wire+secret/0123456789abcdefghijklm";
const HOST: &str = "127.0.0.1:9000";

/// One S3 request, as the fuzzer describes it.
#[derive(Arbitrary, Debug)]
pub struct WireInput {
    op: Op,
    auth: WireAuth,
    /// Body pieces: chunks of an `aws-chunked` body, or concatenated.
    chunks: Vec<Vec<u8>>,
    /// After framing: cut the body to this length, and XOR one byte (`(at, with)`).
    cut: Option<u16>,
    flip: Option<(u16, u8)>,
    /// `x-amz-decoded-content-length` is right unless this replaces it.
    decoded_length: Option<u32>,
    /// Body frame size (0: one frame).
    frame: u16,
    /// More headers (`Range`, `If-Match`, `x-amz-checksum-*`, ...), after the harness's.
    extra: Vec<(String, String)>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    PutObject,
    UploadPart,
    Complete,
    DeleteObjects,
    CreateBucket,
    /// POST Object: the body is the form (`boundary=fz`).
    PostObject,
    /// GET and HEAD, for the `Range` and conditional headers among `extra`.
    GetObject,
    HeadObject,
}

#[derive(Arbitrary, Debug)]
enum WireAuth {
    /// Signed over the body's SHA-256.
    Sha256,
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, chunk signatures chained from the header's.
    SignedChunks,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` with a checksum trailer: `(algorithm, value)`,
    /// the right value when `value` is `None`.
    UnsignedTrailer {
        algorithm: u8,
        value: Option<String>,
    },
    /// Fuzzed `Authorization`, `x-amz-date`, `x-amz-content-sha256` and query (presigned
    /// `X-Amz-*` parameters and the rest).
    Raw {
        authorization: String,
        date: String,
        content_sha: String,
        query: Vec<(String, String)>,
    },
}

/// Accepts what parses and drains bodies; every other operation is s3s's NotImplemented.
struct Drain;

async fn drain(body: Option<StreamingBlob>) -> S3Result<u64> {
    let mut n = 0;
    if let Some(mut body) = body {
        while let Some(chunk) = body.next().await {
            n += chunk.map_err(|e| s3s::s3_error!(IncompleteBody, "{e}"))?.len() as u64;
        }
    }
    Ok(n)
}

#[async_trait::async_trait]
impl s3s::S3 for Drain {
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let n = drain(req.input.body).await?;
        if let Some(t) = &req.trailing_headers {
            let _ = t.take();
        }
        Ok(S3Response::new(PutObjectOutput { size: Some(n as i64), ..Default::default() }))
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        drain(req.input.body).await?;
        Ok(S3Response::new(UploadPartOutput::default()))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let parts = req.input.multipart_upload.and_then(|m| m.parts).map_or(0, |p| p.len());
        Ok(S3Response::new(CompleteMultipartUploadOutput { key: Some(parts.to_string()), ..Default::default() }))
    }

    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let n = req.input.delete.objects.len();
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(vec![DeletedObject { key: Some(n.to_string()), ..Default::default() }]),
            ..Default::default()
        }))
    }

    async fn create_bucket(&self, _req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        Ok(S3Response::new(CreateBucketOutput::default()))
    }
}

fn service() -> &'static S3Service {
    static SERVICE: OnceLock<S3Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let mut b = S3ServiceBuilder::new(Drain);
        b.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
        b.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(chuan_api_s3::s3s_config()))));
        b.build()
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt"))
}

/// Builds the request `data` describes, signs it as asked, and has s3s parse it.
pub fn s3_wire(data: &[u8]) {
    let Ok(input) = WireInput::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let Some(req) = build(&input) else { return };
    runtime().block_on(async {
        if let Ok(resp) = service().call(req).await {
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
        }
    });
}

fn build(input: &WireInput) -> Option<http::Request<s3s::Body>> {
    let (method, path, query) = match input.op {
        Op::PutObject => ("PUT", "/wire/k%20y", ""),
        Op::UploadPart => ("PUT", "/wire/k", "partNumber=1&uploadId=u1"),
        Op::Complete => ("POST", "/wire/k", "uploadId=u1"),
        Op::DeleteObjects => ("POST", "/wire", "delete="),
        Op::CreateBucket => ("PUT", "/wire", ""),
        Op::PostObject => ("POST", "/wire", ""),
        Op::GetObject => ("GET", "/wire/k", ""),
        Op::HeadObject => ("HEAD", "/wire/k", ""),
    };
    let chunks: Vec<&[u8]> = input.chunks.iter().take(16).map(Vec::as_slice).collect();
    let plain: Vec<u8> = chunks.concat();
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut target = if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") };
    let mut body = plain.clone();
    let aws_chunked = |headers: &mut Vec<(String, String)>| {
        headers.push(("content-encoding".into(), "aws-chunked".into()));
        let n = input.decoded_length.map_or(plain.len() as u64, u64::from);
        headers.push(("x-amz-decoded-content-length".into(), n.to_string()));
    };
    match &input.auth {
        WireAuth::Sha256 | WireAuth::Unsigned => {
            let sha =
                if matches!(input.auth, WireAuth::Sha256) { sha256_hex(&plain) } else { "UNSIGNED-PAYLOAD".into() };
            let s = sigv4::sign(AK, SK, method, path, query, HOST, &sha);
            headers.extend([("x-amz-date".into(), s.date), ("x-amz-content-sha256".into(), sha)]);
            headers.push(("authorization".into(), s.authorization));
        }
        WireAuth::SignedChunks => {
            let sha = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
            let s = sigv4::sign(AK, SK, method, path, query, HOST, sha);
            body = s.signed_chunks(&chunks);
            aws_chunked(&mut headers);
            headers.extend([("x-amz-date".into(), s.date.clone()), ("x-amz-content-sha256".into(), sha.into())]);
            headers.push(("authorization".into(), s.authorization));
        }
        WireAuth::UnsignedTrailer { algorithm, value } => {
            let sha = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
            let (name, right) = match algorithm % 3 {
                0 => ("x-amz-checksum-crc32", {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.encode(crc32(&plain).to_be_bytes())
                }),
                1 => ("x-amz-checksum-sha256", {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD.encode(<sha2::Sha256 as sha2::Digest>::digest(&plain))
                }),
                _ => ("x-amz-checksum-crc64nvme", "AAAAAAAAAAA=".to_owned()),
            };
            let v = value.clone().unwrap_or(right);
            body = sigv4::unsigned_chunks(&chunks, Some(&format!("{name}:{v}")));
            aws_chunked(&mut headers);
            headers.push(("x-amz-trailer".into(), name.into()));
            let s = sigv4::sign(AK, SK, method, path, query, HOST, sha);
            headers.extend([("x-amz-date".into(), s.date), ("x-amz-content-sha256".into(), sha.into())]);
            headers.push(("authorization".into(), s.authorization));
        }
        WireAuth::Raw { authorization, date, content_sha, query: q } => {
            headers.push(("authorization".into(), authorization.clone()));
            headers.push(("x-amz-date".into(), date.clone()));
            headers.push(("x-amz-content-sha256".into(), content_sha.clone()));
            let extra: Vec<String> = q.iter().take(12).map(|(k, v)| format!("{k}={v}")).collect();
            if !extra.is_empty() {
                let sep = if target.contains('?') { '&' } else { '?' };
                target = format!("{target}{sep}{}", extra.join("&"));
            }
        }
    }
    if matches!(input.op, Op::PostObject) {
        headers.retain(|(k, _)| k != "authorization");
        headers.push(("content-type".into(), "multipart/form-data; boundary=fz".into()));
    }
    if let Some(cut) = input.cut {
        body.truncate(usize::from(cut));
    }
    if let Some((at, with)) = input.flip {
        let n = body.len();
        if n > 0 {
            body[usize::from(at) % n] ^= with;
        }
    }
    let mut b = http::Request::builder().method(method).uri(target.parse::<http::Uri>().ok()?);
    b = b.header(http::header::HOST, HOST);
    for (k, v) in &headers {
        b = b.header(k.as_str(), http::HeaderValue::from_str(v).ok()?);
    }
    for (k, v) in input.extra.iter().take(8) {
        let name = http::HeaderName::from_bytes(k.as_bytes()).ok()?;
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            b = b.header(name, http::HeaderValue::from_str(v).ok()?);
        }
    }
    b = b.header(http::header::CONTENT_LENGTH, body.len());
    let size = if input.frame == 0 { body.len().max(1) } else { usize::from(input.frame) };
    let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> =
        body.chunks(size).map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c)))).collect();
    let stream = http_body_util::StreamBody::new(futures::stream::iter(frames));
    b.body(s3s::Body::http_body_unsync(stream)).ok()
}

fn crc32(data: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(input: &WireInput) -> u16 {
        let req = build(input).expect("valid request");
        runtime().block_on(async { service().call(req).await.expect("answer").status().as_u16() })
    }

    fn put(auth: WireAuth) -> WireInput {
        WireInput {
            op: Op::PutObject,
            auth,
            chunks: vec![b"hello ".to_vec(), b"world".to_vec()],
            cut: None,
            flip: None,
            decoded_length: None,
            frame: 3,
            extra: vec![],
        }
    }

    /// The harness's signatures and framings are right: s3s accepts them, and refuses the
    /// same bodies once damaged.
    #[test]
    fn signed_bodies_get_through_and_damaged_ones_do_not() {
        for auth in [
            WireAuth::Sha256,
            WireAuth::Unsigned,
            WireAuth::SignedChunks,
            WireAuth::UnsignedTrailer { algorithm: 0, value: None },
            WireAuth::UnsignedTrailer { algorithm: 1, value: None },
        ] {
            let name = format!("{auth:?}");
            assert_eq!(status(&put(auth)), 200, "{name}");
        }
        let mut bad = put(WireAuth::SignedChunks);
        bad.flip = Some((100, 1));
        assert_ne!(status(&bad), 200, "a damaged signed chunk is refused");
        let mut bad = put(WireAuth::UnsignedTrailer { algorithm: 1, value: Some("AAAA".into()) });
        bad.frame = 0;
        let _ = status(&bad); // s3s hands the trailer to the backend; it must not panic
    }
}
