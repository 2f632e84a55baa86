//! JSON shapes of the Aliyun Drive API and small request helpers.

use chuan_core::store::ObjectRecord;
use http::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{AdriveError, AdriveResult};
use crate::Resp;

pub fn json(status: StatusCode, v: &impl Serialize) -> Resp {
    chuan_api_common::json(status, v)
}

pub fn error_response(e: &AdriveError) -> Resp {
    json(e.status, &json!({"code": e.code, "message": e.message}))
}

pub fn str_field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub fn required<'a>(v: &'a Value, name: &'static str) -> AdriveResult<&'a str> {
    str_field(v, name).ok_or_else(|| AdriveError::bad_request("InvalidParameter", format!("{name} is required")))
}

pub fn u64_field(v: &Value, name: &str) -> Option<u64> {
    v.get(name).and_then(|x| x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok())))
}

/// ISO 8601 with milliseconds, as the service writes times.
pub fn iso(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// The name of an entry: the last segment of its key (a folder's key ends in `/`).
pub fn entry_name(key: &str) -> &str {
    key.trim_end_matches('/').rsplit('/').next().unwrap_or("")
}

pub fn is_folder(key: &str) -> bool {
    key.ends_with('/')
}

/// A file or folder as `BaseFile` JSON.
pub fn base_file(
    rec: &ObjectRecord,
    drive_id: &str,
    parent_file_id: &str,
    content_hash: Option<&str>,
    crc64: Option<u64>,
    download_url: Option<String>,
) -> Value {
    let name = entry_name(&rec.key);
    let folder = is_folder(&rec.key);
    let mut v = json!({
        "drive_id": drive_id,
        "domain_id": "chuan",
        "file_id": rec.id,
        "name": name,
        "type": if folder { "folder" } else { "file" },
        "parent_file_id": parent_file_id,
        "created_at": iso(rec.modified_ms),
        "updated_at": iso(rec.modified_ms),
        "hidden": false,
        "starred": false,
        "status": "available",
        "encrypt_mode": "none",
        "revision_id": "",
        "trashed": false,
    });
    if !folder {
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        v["size"] = json!(rec.size);
        v["file_extension"] = json!(ext);
        v["content_type"] = json!(rec.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()));
        v["mime_type"] = v["content_type"].clone();
        v["category"] = json!("others");
        v["content_hash_name"] = json!("sha1");
        if let Some(h) = content_hash {
            v["content_hash"] = json!(h);
        }
        if let Some(c) = crc64 {
            v["crc64_hash"] = json!(c.to_string());
        }
        if let Some(u) = download_url {
            v["download_url"] = json!(u.clone());
            v["url"] = json!(u);
        }
    }
    v
}
