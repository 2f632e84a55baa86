//! Whole requests through the server's router ([`chuan::dispatch::route`]) against a live
//! engine in a temporary data directory, the way `chuan serve` builds it (fairness limits
//! off so the fuzzer is never throttled; time paused so lookup floors cost nothing).
//!
//! The fuzzer picks a dialect and whether the harness signs the request with credentials it
//! made at set-up, so bodies reach the parsers behind each protocol's authentication: S3 XML
//! and aws-chunked decoding (SigV4 with `UNSIGNED-PAYLOAD`, the body's SHA-256,
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER` and `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), UFile,
//! UpYun and COS signatures, JSON bodies and forms, Aliyun Drive with a bearer token, Chuan's
//! own API with the root's Basic credentials. The data directory is replaced every
//! [`RESET_EVERY`] inputs so it does not grow without bound.

use crate::sigv4::{self, aws_encode, sha256_hex};
use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use bytes::Bytes;
use chuan::dispatch::{route, State};
use chuan_api_common::sign::hmac_sha1;
use chuan_core::store::CredentialKind;
use chuan_core::{CredentialSpec, EngineConfig, FairnessConfig, Principal, PutTarget, KEY_PAIRS};
use http_body_util::BodyExt;
use md5::{Digest as _, Md5};
use std::cell::RefCell;

/// Inputs served by one data directory before it is replaced.
const RESET_EVERY: u64 = 5_000;
const BUCKET: &str = "fuzzbucket";
const ROOT_AK: &str = "FUZZROOTACCESSKEY000";
const ROOT_SK: &str = "fuzz/root+secret/0123456789abcdefghijklm";
const UPYUN_OP: &str = "fuzzop";
const UPYUN_PW: &str = "fuzzpassword";

/// One request, as the fuzzer describes it.
#[derive(Arbitrary, Debug)]
pub struct FuzzRequest {
    pub auth: Auth,
    pub method: Verb,
    /// Object key (or path tail): encoded by the harness for signed requests, raw otherwise.
    pub key: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Body frame size (0: one frame).
    pub frame: u16,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Verb {
    Get,
    Put,
    Post,
    Delete,
    Head,
    Patch,
    Options,
}

#[derive(Arbitrary, Debug)]
pub enum Auth {
    /// The path, query and headers exactly as given; no credentials.
    Raw {
        path: String,
    },
    S3 {
        payload: S3Payload,
        virtual_host: bool,
    },
    Ufile,
    Upyun,
    Cos {
        v3: bool,
        once: bool,
    },
    /// Aliyun Drive endpoints with the set-up's bearer token.
    Adrive {
        endpoint: u8,
    },
    /// `/_chuan/...` with the root's Basic credentials.
    Chuan {
        native: bool,
    },
    /// A form POST (`multipart/form-data; boundary=fz`) to the bucket, unsigned: the body is
    /// the form.
    Form {
        ufile_host: bool,
    },
    Iot,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum S3Payload {
    Unsigned,
    Sha256,
    UnsignedTrailer { decoded_length: u32, trailer: u8 },
    SignedChunks { decoded_length: u32 },
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    state: State,
    tenant_ak: String,
    tenant_sk: String,
    appid: u64,
    bearer: String,
    served: u64,
    _dir: tempfile::TempDir,
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

fn setup() -> Harness {
    // On tmpfs when there is one: durability is not under test here, and fsyncs would
    // dominate the time of every write.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("temp dir");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("rt");
    let unlimited = FairnessConfig {
        requests_per_sec: 0.0,
        concurrent_uploads: 0,
        probes_per_sec: 0.0,
        address_probes_per_sec: 0.0,
        ..Default::default()
    };
    let engine = runtime
        .block_on(chuan::setup::open_engine(
            dir.path(),
            None,
            None,
            EngineConfig { fairness: unlimited, ..Default::default() },
        ))
        .expect("engine");
    // The server's default limits, as `chuan serve` parses them from no flags.
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        limits: chuan::limits::ServeLimits,
    }
    let limits = <Defaults as clap::Parser>::parse_from(["fuzz"]).limits;
    let state = chuan::server::build_state(engine.clone(), vec!["localhost".into()], &limits);
    let (tenant_ak, tenant_sk, appid, bearer) = runtime.block_on(async {
        let op = Principal::operator();
        engine.ensure_root_credential(ROOT_AK, ROOT_SK).await.expect("root");
        engine.create_tenant(&op, "fuzz").await.expect("tenant");
        let key =
            engine.issue_credential(&op, CredentialSpec::new("fuzz", CredentialKind::TenantKey)).await.expect("key");
        let (_, p) = engine.credential(&key.access_key, KEY_PAIRS).await.expect("lookup").expect("known");
        engine.create_bucket(&p, BUCKET, None).await.expect("bucket");
        for (k, v) in [("a.txt", &b"hello"[..]), ("dir/b.bin", &[7u8; 3000][..]), ("dir/", &b""[..])] {
            let staged = engine.stage(&p, futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(v))])).await;
            engine.commit_put(&p, PutTarget::new(BUCKET, k), staged.expect("stage")).await.expect("put");
        }
        let appid = state.cos.appid_of("fuzz").await.expect("appid");
        state.upyun.register_operator(&op, "fuzz", BUCKET, UPYUN_OP, UPYUN_PW).await.expect("operator");
        let refresh = state.adrive.issue_refresh_token(&op, "fuzz").await.expect("refresh");
        let (bearer, _) = engine
            .exchange_bearer(
                CredentialKind::AdriveRefresh,
                &refresh.refresh_token,
                CredentialKind::AdriveAccess,
                std::time::Duration::from_secs(7200),
            )
            .await
            .expect("exchange")
            .expect("known refresh token");
        (key.access_key, key.secret, appid, bearer)
    });
    Harness { runtime, state, tenant_ak, tenant_sk, appid, bearer, served: 0, _dir: dir }
}

/// Builds the request `input` describes and routes it; the answer's body is read to the end.
pub fn requests(data: &[u8]) {
    let Ok(input) = FuzzRequest::arbitrary_take_rest(Unstructured::new(data)) else { return };
    HARNESS.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|h| h.served >= RESET_EVERY) {
            *slot = None; // drop the old engine (and its directory) first
            *slot = Some(setup());
        }
        let h = slot.as_mut().expect("set up");
        h.served += 1;
        let _ = serve_with(h, &input);
    });
}

/// Routes `input` and reads the answer to its end; its status, or `None` when `input`
/// describes no valid HTTP request.
fn serve_with(h: &Harness, input: &FuzzRequest) -> Option<u16> {
    let req = build(h, input)?;
    let state = &h.state;
    Some(h.runtime.block_on(async {
        let resp = route(state, req).await;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            if frame.is_err() {
                break;
            }
        }
        status
    }))
}

#[cfg(test)]
fn serve(input: &FuzzRequest) -> Option<u16> {
    HARNESS.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(setup());
        }
        serve_with(slot.as_ref().expect("set up"), input)
    })
}

fn verb(v: Verb) -> &'static str {
    match v {
        Verb::Get => "GET",
        Verb::Put => "PUT",
        Verb::Post => "POST",
        Verb::Delete => "DELETE",
        Verb::Head => "HEAD",
        Verb::Patch => "PATCH",
        Verb::Options => "OPTIONS",
    }
}

/// RFC 3986 unreserved characters kept, everything else `%XX` (SigV4's URI encoding);
/// `/` kept when `path`.
fn header_value(v: &str) -> Option<http::HeaderValue> {
    http::HeaderValue::from_str(v).ok()
}

/// The fuzzed headers that are valid header names and values.
fn extra_headers(input: &FuzzRequest) -> Vec<(http::HeaderName, http::HeaderValue)> {
    input
        .headers
        .iter()
        .filter_map(|(k, v)| Some((http::HeaderName::from_bytes(k.as_bytes()).ok()?, header_value(v)?)))
        .filter(|(k, _)| k != http::header::HOST && k != http::header::CONTENT_LENGTH)
        .take(16)
        .collect()
}

fn body_of(input: &FuzzRequest) -> chuan_api_common::RequestBody {
    let size = if input.frame == 0 { input.body.len().max(1) } else { usize::from(input.frame) };
    let frames: Vec<Result<http_body::Frame<Bytes>, chuan_api_common::BoxError>> =
        input.body.chunks(size).map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c)))).collect();
    http_body_util::StreamBody::new(futures::stream::iter(frames)).boxed_unsync()
}

fn build(h: &Harness, input: &FuzzRequest) -> Option<http::Request<chuan_api_common::RequestBody>> {
    let method = verb(input.method);
    let now = time::OffsetDateTime::now_utc();
    let mut headers: Vec<(String, String)> = Vec::new();
    let host;
    let target: String;
    match input.auth {
        Auth::Raw { ref path } => {
            host = "127.0.0.1:9000".to_owned();
            let q: Vec<String> = input.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            target = if q.is_empty() { path.clone() } else { format!("{path}?{}", q.join("&")) };
        }
        Auth::S3 { payload, virtual_host } => {
            let key = aws_encode(&input.key, true);
            let (path, hst) = if virtual_host {
                (format!("/{key}"), format!("{BUCKET}.localhost:9000"))
            } else {
                (format!("/{BUCKET}/{key}"), "127.0.0.1:9000".to_owned())
            };
            host = hst;
            let mut q: Vec<String> = input
                .query
                .iter()
                .take(6)
                .map(|(k, v)| format!("{}={}", aws_encode(k, false), aws_encode(v, false)))
                .collect();
            q.sort();
            let query = q.join("&");
            let content_sha = match payload {
                S3Payload::Unsigned => "UNSIGNED-PAYLOAD".to_owned(),
                S3Payload::Sha256 => sha256_hex(&input.body),
                S3Payload::UnsignedTrailer { decoded_length, trailer } => {
                    headers.push(("content-encoding".into(), "aws-chunked".into()));
                    headers.push(("x-amz-decoded-content-length".into(), decoded_length.to_string()));
                    let t = ["x-amz-checksum-crc32", "x-amz-checksum-sha256", "x-amz-checksum-crc64nvme", ""]
                        [usize::from(trailer) % 4];
                    if !t.is_empty() {
                        headers.push(("x-amz-trailer".into(), t.into()));
                    }
                    "STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_owned()
                }
                S3Payload::SignedChunks { decoded_length } => {
                    headers.push(("content-encoding".into(), "aws-chunked".into()));
                    headers.push(("x-amz-decoded-content-length".into(), decoded_length.to_string()));
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned()
                }
            };
            let signed = sigv4::sign(ROOT_AK, ROOT_SK, method, &path, &query, &host, &content_sha);
            headers.push(("x-amz-date".into(), signed.date));
            headers.push(("x-amz-content-sha256".into(), content_sha));
            headers.push(("authorization".into(), signed.authorization));
            target = if query.is_empty() { path } else { format!("{path}?{query}") };
        }
        Auth::Ufile => {
            host = format!("{BUCKET}.ufile.test:9000");
            let key = aws_encode(&input.key, true);
            let find = |n: &str| {
                input.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str()).unwrap_or("")
            };
            let sts = format!("{method}\n{}\n{}\n\n/{BUCKET}/{}", find("content-md5"), find("content-type"), input.key);
            let sig =
                base64::engine::general_purpose::STANDARD.encode(hmac_sha1(h.tenant_sk.as_bytes(), sts.as_bytes()));
            headers.push(("authorization".into(), format!("UCloud {}:{sig}", h.tenant_ak)));
            target = with_query(format!("/{key}"), input);
        }
        Auth::Upyun => {
            host = "127.0.0.1:9000".to_owned();
            let uri = format!("/{BUCKET}/{}", aws_encode(&input.key, true));
            let date = chuan_api_common::http_date(chuan_core::store::now_ms());
            let pw = hex::encode(Md5::digest(UPYUN_PW.as_bytes()));
            let sig = base64::engine::general_purpose::STANDARD
                .encode(hmac_sha1(pw.as_bytes(), format!("{method}&{uri}&{date}").as_bytes()));
            headers.push(("date".into(), date));
            headers.push(("authorization".into(), format!("UPYUN {UPYUN_OP}:{sig}")));
            target = with_query(uri, input);
        }
        Auth::Cos { v3, once } => {
            host = "127.0.0.1:9000".to_owned();
            let path = format!("/{}", aws_encode(&input.key, true));
            let fileid = format!("/{}/{BUCKET}{path}", h.appid);
            let t = now.unix_timestamp();
            let (e, f) = if once { (0, fileid.as_str()) } else { (t + 600, "") };
            let plain = format!("a={}&k={}&e={e}&t={t}&r=42&f={f}&b={BUCKET}", h.appid, h.tenant_ak);
            let mut raw = hmac_sha1(h.tenant_sk.as_bytes(), plain.as_bytes()).to_vec();
            raw.extend_from_slice(plain.as_bytes());
            headers.push(("authorization".into(), base64::engine::general_purpose::STANDARD.encode(raw)));
            let api = if v3 { "v1" } else { "v2" };
            target = with_query(format!("/files/{api}/{}/{BUCKET}{path}", h.appid), input);
        }
        Auth::Adrive { endpoint } => {
            host = "127.0.0.1:9000".to_owned();
            let paths = [
                "/adrive/v3/file/list",
                "/adrive/v2/file/createWithFolders",
                "/v2/file/get",
                "/adrive/v1.0/openFile/complete",
                "/v2/file/get_by_path",
                "/v3/file/update",
                "/v2/recyclebin/trash",
                "/v2/file/get_download_url",
                "/v2/user/get",
                "/v2/account/token",
            ];
            headers.push(("authorization".into(), format!("Bearer {}", h.bearer)));
            target = with_query(paths[usize::from(endpoint) % paths.len()].to_owned(), input);
        }
        Auth::Chuan { native } => {
            host = "127.0.0.1:9000".to_owned();
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{ROOT_AK}:{ROOT_SK}"));
            headers.push(("authorization".into(), format!("Basic {basic}")));
            let base = if native { "/_chuan/v1/instant/" } else { "/_chuan/admin/" };
            target = with_query(format!("{base}{}", aws_encode(&input.key, true)), input);
        }
        Auth::Form { ufile_host } => {
            host = if ufile_host { format!("{BUCKET}.ufile.test:9000") } else { "127.0.0.1:9000".to_owned() };
            headers.push(("content-type".into(), "multipart/form-data; boundary=fz".into()));
            target = if ufile_host { "/".to_owned() } else { format!("/{BUCKET}/") };
        }
        Auth::Iot => {
            host = "127.0.0.1:9000".to_owned();
            target = with_query(format!("/api/v1/{}", aws_encode(&input.key, true)), input);
        }
    }
    let uri: http::Uri = target.parse().ok()?;
    let mut b = http::Request::builder().method(http::Method::from_bytes(method.as_bytes()).ok()?).uri(uri);
    b = b.header(http::header::HOST, header_value(&host)?);
    for (k, v) in &headers {
        b = b.header(k.as_str(), header_value(v)?);
    }
    for (k, v) in extra_headers(input) {
        b = b.header(k, v);
    }
    b = b.header(http::header::CONTENT_LENGTH, input.body.len());
    b.body(body_of(input)).ok()
}

fn with_query(path: String, input: &FuzzRequest) -> String {
    let q: Vec<String> =
        input.query.iter().take(6).map(|(k, v)| format!("{}={}", aws_encode(k, false), aws_encode(v, false))).collect();
    if q.is_empty() {
        path
    } else {
        format!("{path}?{}", q.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        auth: Auth,
        method: Verb,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> FuzzRequest {
        FuzzRequest {
            auth,
            method,
            key: key.into(),
            query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.to_vec(),
            frame: 3,
        }
    }

    /// The harness's signatures are right: each dialect answers a signed request with success,
    /// so fuzzed bodies reach the parsers behind authentication.
    #[test]
    fn signed_requests_get_through() {
        let s3 = |p| Auth::S3 { payload: p, virtual_host: false };
        let cases = [
            (req(s3(S3Payload::Sha256), Verb::Put, "k/x y.txt", &[], &[], b"abc"), 200),
            (req(s3(S3Payload::Unsigned), Verb::Get, "k/x y.txt", &[], &[], b""), 200),
            (req(s3(S3Payload::Unsigned), Verb::Get, "", &[("list-type", "2"), ("prefix", "k/")], &[], b""), 200),
            (req(Auth::Ufile, Verb::Put, "u.bin", &[], &[("Content-Type", "text/plain")], b"ufile"), 200),
            (req(Auth::Upyun, Verb::Put, "up.bin", &[], &[], b"upyun"), 200),
            (req(Auth::Cos { v3: false, once: false }, Verb::Get, "a.txt", &[("op", "stat")], &[], b""), 200),
            (req(Auth::Adrive { endpoint: 8 }, Verb::Post, "", &[], &[], b"{}"), 200),
            (req(Auth::Chuan { native: false }, Verb::Get, "stats", &[], &[], b""), 200),
        ];
        for (input, want) in cases {
            let got = serve(&input);
            assert_eq!(got, Some(want), "{input:?}");
        }
    }
}
