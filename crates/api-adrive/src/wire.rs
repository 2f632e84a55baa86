//! JSON shapes of the Aliyun Drive API and small request helpers.

use chuan_core::store::TreeEntry;
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

/// A file or folder as `BaseFile` JSON: `parent_file_id` is `root` at the top of the drive;
/// files carry their digests (upper-case SHA-1, CRC-64/XZ) and, when given, a download URL.
pub fn base_file(
    e: &TreeEntry,
    drive_id: &str,
    parent_file_id: &str,
    content_hash: Option<&str>,
    crc64: Option<u64>,
    download_url: Option<String>,
) -> Value {
    let name = e.name();
    let meta = e.metadata();
    let mut v = json!({
        "drive_id": drive_id,
        "domain_id": "chuan",
        "file_id": e.id(),
        "name": name,
        "type": if e.is_folder() { "folder" } else { "file" },
        "parent_file_id": parent_file_id,
        "created_at": iso(e.created_ms()),
        "updated_at": iso(e.modified_ms()),
        "hidden": false,
        "starred": meta.starred,
        "status": "available",
        "encrypt_mode": "none",
        "revision_id": "",
        "trashed": false,
    });
    if let Some(d) = &meta.description {
        v["description"] = json!(d);
    }
    if !meta.user.is_empty() {
        v["user_meta"] = json!(serde_json::to_string(&meta.user).unwrap_or_default());
    }
    if let TreeEntry::File(rec) = e {
        let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        v["size"] = json!(rec.size);
        v["file_extension"] = json!(ext);
        v["content_type"] = json!(rec.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()));
        v["mime_type"] = v["content_type"].clone();
        v["category"] = json!(category(ext));
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

/// The service's file categories, by extension (what `category = "..."` searches match).
pub fn category(ext: &str) -> &'static str {
    match ext.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" | "png" | "gif" | "bmp" | "webp" | "heic" | "tif" | "tiff" | "svg" => "image",
        "mp4" | "mkv" | "mov" | "avi" | "flv" | "wmv" | "webm" | "m4v" | "ts" => "video",
        "mp3" | "flac" | "wav" | "aac" | "ogg" | "m4a" | "wma" | "ape" => "audio",
        "apk" | "exe" | "dmg" | "msi" | "ipa" | "deb" | "rpm" => "app",
        "txt" | "md" | "pdf" | "doc" | "docx" | "xls" | "xlsx" | "ppt" | "pptx" | "csv" | "rtf" | "epub" => "doc",
        "zip" | "rar" | "7z" | "tar" | "gz" | "bz2" | "xz" => "zip",
        _ => "others",
    }
}
