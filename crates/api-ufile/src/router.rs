//! Every UFile operation, parsed from method, key, query and headers before anything else.
//! The bucket is the first label of `Host`; the key is the decoded path.

use http::{HeaderMap, Method};

use crate::error::{UfileError, UfileResult};

pub use chuan_api_common::Query;

/// How the ufile SDKs encode: the key in the path as urllib3 normalises it (`%20`, `%XX` for
/// non-ASCII, `+` raw: a plus); `prefix`, `marker`, `newFileName`, `FileName`... with requests'
/// `params=` (`quote_plus`: `+` is a space), except the presigned `Signature`, base64 that
/// `private_download_url` places in the URL unencoded; `X-Ufile-Copy-Source` is `quote`d.
pub(crate) const WIRE: chuan_api_common::Wire =
    chuan_api_common::Wire::new(chuan_api_common::query::Plus::Space, &["Signature"]);

pub fn parse_query(raw: Option<&str>) -> Query {
    WIRE.query(raw)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    PutFile,
    Copy { source: String },
    Rename { new_key: String, force: bool },
    Restore,
    StorageClass,
    PostFile,
    UploadHit { hash: String, file_name: String, size: u64 },
    GetFile,
    HeadFile,
    DeleteFile,
    OpMeta,
    InitMultipart,
    UploadPart { upload_id: String, part: u32 },
    UploadPartCopy { upload_id: String, part: u32, source: String },
    FinishMultipart { upload_id: String, new_key: Option<String> },
    AbortMultipart { upload_id: String },
    ListParts { upload_id: String },
    PrefixFileList,
    ListObjects,
}

impl Endpoint {
    /// Whether this operation may be served unsigned from a public bucket.
    pub fn is_public_read(&self) -> bool {
        matches!(self, Endpoint::GetFile | Endpoint::HeadFile)
    }
}

fn bad(msg: &str) -> UfileError {
    UfileError::bad_request(msg)
}

pub fn parse(method: &Method, key: &str, q: &Query, headers: &HeaderMap) -> UfileResult<Endpoint> {
    let copy_source = headers.get("x-ufile-copy-source").and_then(|v| WIRE.header_name(v));
    let part = || -> UfileResult<u32> {
        q.get("partNumber").and_then(|p| p.parse().ok()).ok_or_else(|| bad("partNumber must be a number"))
    };
    let upload_id =
        || q.get("uploadId").filter(|u| !u.is_empty()).map(str::to_owned).ok_or_else(|| bad("uploadId is required"));
    if key.is_empty() {
        return Ok(match *method {
            Method::GET if q.has("muploadpart") => Endpoint::ListParts { upload_id: upload_id()? },
            Method::GET if q.has("listobjects") => Endpoint::ListObjects,
            Method::GET if q.has("list") => Endpoint::PrefixFileList,
            Method::GET => Endpoint::PrefixFileList,
            Method::POST => Endpoint::PostFile,
            _ => return Err(bad("unsupported bucket operation")),
        });
    }
    if key == "uploadhit" && *method == Method::POST {
        let hash = q.get("Hash").ok_or_else(|| bad("Hash is required"))?.to_owned();
        let file_name = q.get("FileName").ok_or_else(|| bad("FileName is required"))?.to_owned();
        let size = q.get("FileSize").and_then(|s| s.parse().ok()).ok_or_else(|| bad("FileSize must be a number"))?;
        return Ok(Endpoint::UploadHit { hash, file_name, size });
    }
    Ok(match *method {
        Method::PUT if q.has("uploadId") => match copy_source {
            Some(source) => Endpoint::UploadPartCopy { upload_id: upload_id()?, part: part()?, source },
            None => Endpoint::UploadPart { upload_id: upload_id()?, part: part()? },
        },
        Method::PUT if q.has("newFileName") => Endpoint::Rename {
            new_key: q.get("newFileName").unwrap_or("").to_owned(),
            force: q.get("force").is_none_or(|f| f.eq_ignore_ascii_case("true")),
        },
        Method::PUT if q.has("restore") => Endpoint::Restore,
        Method::PUT if q.has("storageClass") => Endpoint::StorageClass,
        Method::PUT => match copy_source {
            Some(source) => Endpoint::Copy { source },
            None => Endpoint::PutFile,
        },
        Method::POST if q.has("uploads") => Endpoint::InitMultipart,
        Method::POST if q.has("uploadId") => Endpoint::FinishMultipart {
            upload_id: upload_id()?,
            new_key: q.get("newKey").filter(|k| !k.is_empty()).map(str::to_owned),
        },
        Method::POST if q.has("opmeta") => Endpoint::OpMeta,
        Method::DELETE if q.has("uploadId") => Endpoint::AbortMultipart { upload_id: upload_id()? },
        Method::DELETE => Endpoint::DeleteFile,
        Method::GET => Endpoint::GetFile,
        Method::HEAD => Endpoint::HeadFile,
        _ => return Err(bad("unsupported operation")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(m: Method, key: &str, q: &str) -> Endpoint {
        parse(&m, key, &parse_query(Some(q)), &HeaderMap::new()).unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(p(Method::PUT, "k", ""), Endpoint::PutFile);
        assert_eq!(p(Method::POST, "k", "uploads"), Endpoint::InitMultipart);
        assert_eq!(
            p(Method::PUT, "k", "uploadId=u&partNumber=0"),
            Endpoint::UploadPart { upload_id: "u".into(), part: 0 }
        );
        assert_eq!(
            p(Method::POST, "k", "uploadId=u"),
            Endpoint::FinishMultipart { upload_id: "u".into(), new_key: None }
        );
        assert_eq!(p(Method::GET, "", "list&prefix=a+b"), Endpoint::PrefixFileList);
        assert_eq!(parse_query(Some("prefix=a+b&Signature=x+y%2F")).get("prefix"), Some("a b"));
        assert_eq!(parse_query(Some("prefix=a+b&Signature=x+y%2F")).get("Signature"), Some("x+y/"));
        assert_eq!(
            p(Method::PUT, "k", "newFileName=n&force=false"),
            Endpoint::Rename { new_key: "n".into(), force: false }
        );
    }
}
