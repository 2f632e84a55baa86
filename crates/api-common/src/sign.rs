//! The HMACs the protocols sign with, and their encodings.

use base64::Engine as _;
use hmac::{Hmac, Mac};

/// HMAC-SHA1 of `msg` keyed with `key` (UFile, UpYun, COS signatures).
pub fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut h = <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    h.update(msg);
    h.finalize().into_bytes().into()
}

/// HMAC-SHA256 of `msg` keyed with `key` (IoT device requests).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut h = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    h.update(msg);
    h.finalize().into_bytes().into()
}

/// Standard base64 (with padding).
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `Base64(HMAC-SHA1(key, msg))`, the signature shape of UFile and UpYun.
pub fn hmac_sha1_base64(key: &str, msg: &str) -> String {
    base64(&hmac_sha1(key.as_bytes(), msg.as_bytes()))
}

/// The SigV4 signing key of `secret` for a scope (`day` as `YYYYMMDD`).
pub fn sigv4_signing_key(secret: &str, day: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac_sha256(format!("AWS4{secret}").as_bytes(), day.as_bytes());
    let k = hmac_sha256(&k, region.as_bytes());
    let k = hmac_sha256(&k, service.as_bytes());
    hmac_sha256(&k, b"aws4_request")
}

/// Percent-encoding as SigV4 canonical requests want it: RFC 3986 unreserved characters
/// kept, everything else `%XX` (and `/` kept in paths).
pub fn aws_encode(s: &str, path: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (path && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A SigV4 header signature (`Authorization: AWS4-HMAC-SHA256 Credential=...`), parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigV4Authorization {
    /// `<access key>/<day>/<region>/<service>/aws4_request`
    pub credential: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

impl SigV4Authorization {
    pub fn parse(header: &str) -> Option<Self> {
        let rest = header.trim().strip_prefix("AWS4-HMAC-SHA256")?.trim_start();
        let (mut credential, mut signed, mut signature) = (None, None, None);
        for item in rest.split(',').map(str::trim) {
            match item.split_once('=')? {
                ("Credential", v) => credential = Some(v.to_owned()),
                ("SignedHeaders", v) => signed = Some(v.split(';').map(str::to_owned).collect()),
                ("Signature", v) => signature = Some(v.to_owned()),
                _ => return None,
            }
        }
        Some(Self { credential: credential?, signed_headers: signed?, signature: signature? })
    }

    pub fn render(&self) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={}, SignedHeaders={}, Signature={}",
            self.credential,
            self.signed_headers.join(";"),
            self.signature
        )
    }

    /// `(access key, day, region, service)` of the credential scope.
    pub fn scope(&self) -> Option<(&str, &str, &str, &str)> {
        let mut it = self.credential.split('/');
        let (ak, day, region, service, term) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
        (term == "aws4_request" && it.next().is_none()).then_some((ak, day, region, service))
    }
}

/// The SigV4 signature of a request with header authorization: `raw_path` as it arrived
/// (clients sign the path they send), `raw_query` canonicalized here, the `signed` headers
/// from `headers`, and `payload_hash` (the `x-amz-content-sha256` value). `amz_date` is the
/// request's `x-amz-date`. Returns the hex signature.
#[allow(clippy::too_many_arguments)]
pub fn sigv4_signature(
    secret: &str,
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &http::HeaderMap,
    signed: &[String],
    payload_hash: &str,
    amz_date: &str,
    scope: (&str, &str, &str),
) -> String {
    use sha2::Digest as _;
    let (day, region, service) = scope;
    let mut query: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| crate::query::decode(s, crate::query::Plus::Literal);
            (aws_encode(&dec(k), false), aws_encode(&dec(v), false))
        })
        .collect();
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut canonical_headers = String::new();
    for name in signed {
        let values: Vec<String> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let canonical = format!("{method}\n{raw_path}\n{query}\n{canonical_headers}\n{}\n{payload_hash}", signed.join(";"));
    let digest = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
    let sts = format!("AWS4-HMAC-SHA256\n{amz_date}\n{day}/{region}/{service}/aws4_request\n{digest}");
    let key = sigv4_signing_key(secret, day, region, service);
    hex::encode(hmac_sha256(&key, sts.as_bytes()))
}

/// The query parameters SigV2 signs as sub-resources (AWS's list), in the order it signs them.
const SIGV2_SUBRESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The SigV2 signature (base64 HMAC-SHA1) of a request whose canonicalized resource is
/// `resource` (the path as signed, without the query): `expires` for a presigned URL, else
/// the `Date` header (empty when `x-amz-date` is sent). Sub-resources come from `raw_query`.
pub fn sigv2_signature(
    secret: &str,
    method: &str,
    resource: &str,
    raw_query: &str,
    headers: &http::HeaderMap,
    expires: Option<&str>,
) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_owned();
    let date = match expires {
        Some(e) => e.to_owned(),
        None if headers.contains_key("x-amz-date") => String::new(),
        None => header("date"),
    };
    let mut amz: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.as_str();
        if !name.starts_with("x-amz-") {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
        match amz.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => {
                v.push(',');
                v.push_str(&value);
            }
            None => amz.push((name.to_owned(), value)),
        }
    }
    amz.sort();
    let query = crate::query::Query::parse(Some(raw_query), crate::query::Plus::Literal);
    let mut sub = String::new();
    for name in SIGV2_SUBRESOURCES {
        if let Some(v) = query.get(name) {
            sub.push(if sub.is_empty() { '?' } else { '&' });
            sub.push_str(name);
            if !v.is_empty() {
                sub.push('=');
                sub.push_str(v);
            }
        }
    }
    let mut sts = format!("{method}\n{}\n{}\n{date}\n", header("content-md5"), header("content-type"));
    for (n, v) in amz {
        sts.push_str(&format!("{n}:{v}\n"));
    }
    sts.push_str(resource);
    sts.push_str(&sub);
    hmac_sha1_base64(secret, &sts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_2202_and_4231_vectors() {
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sigv4_matches_aws_example() {
        // AWS's GET Object example ("Signature Calculations for the Authorization Header").
        let mut h = http::HeaderMap::new();
        h.insert("host", "examplebucket.s3.amazonaws.com".parse().unwrap());
        h.insert("range", "bytes=0-9".parse().unwrap());
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        h.insert("x-amz-content-sha256", empty.parse().unwrap());
        h.insert("x-amz-date", "20130524T000000Z".parse().unwrap());
        let signed: Vec<String> = ["host", "range", "x-amz-content-sha256", "x-amz-date"].map(String::from).to_vec();
        let sig = sigv4_signature(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "GET",
            "/test.txt",
            "",
            &h,
            &signed,
            empty,
            "20130524T000000Z",
            ("20130524", "us-east-1", "s3"),
        );
        assert_eq!(sig, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
        let auth = SigV4Authorization::parse(
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range, Signature=ab",
        )
        .unwrap();
        assert_eq!(auth.scope(), Some(("AK", "20130524", "us-east-1", "s3")));
        assert_eq!(auth.signed_headers, ["host", "range"]);
        assert_eq!(SigV4Authorization::parse(&auth.render()).unwrap(), auth);
    }

    #[test]
    fn sigv2_matches_aws_example() {
        // AWS's "Object GET" example of signing with SigV2.
        let mut h = http::HeaderMap::new();
        h.insert("date", "Tue, 27 Mar 2007 19:36:42 +0000".parse().unwrap());
        let sig = sigv2_signature(
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "GET",
            "/awsexamplebucket1/photos/puppy.jpg",
            "",
            &h,
            None,
        );
        assert_eq!(sig, "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
