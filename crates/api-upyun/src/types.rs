//! Content types from file extensions: UpYun serves a file with the type its extension names
//! unless the upload gave one ("默认使用文件扩展名判断文件类型", the REST and form API docs), on
//! every upload path (REST PUT, form, resumable and parallel multipart, block upload).

/// The type to store: `explicit` when given (a `Content-Type` header, the form's or block
/// policy's `content-type`, `X-Upyun-Multi-Type`), else the one `key`'s extension names
/// (`mime_guess`), else `application/octet-stream`.
pub(crate) fn content_type(explicit: Option<&str>, key: &str) -> String {
    match explicit.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => t.to_owned(),
        None => mime_guess::from_path(key).first_or_octet_stream().essence_str().to_owned(),
    }
}

/// The extension `allow-file-type` is checked against, lower-case: the uploaded file's name's,
/// else the key's (`""` for none; a leading-dot name like `.bashrc` has none).
pub(crate) fn extension(file_name: &str, key: &str) -> String {
    let of = |n: &str| {
        let base = n.rsplit('/').next().unwrap_or(n);
        base.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()).map(|(_, e)| e.to_ascii_lowercase())
    };
    of(file_name).or_else(|| of(key)).unwrap_or_default()
}

/// Whether `ext` is one of the policy's `allow-file-type` list (`jpg,jpeg,png`; a leading `.`
/// and case do not matter).
pub(crate) fn allowed_file_type(types: &str, ext: &str) -> bool {
    types.split(',').any(|t| t.trim().trim_start_matches('.').eq_ignore_ascii_case(ext))
}

#[cfg(test)]
mod tests {
    use super::{allowed_file_type, content_type, extension};

    #[test]
    fn extensions_and_allowed_types() {
        assert_eq!(extension("pic.PNG", "/x/{filename}"), "png");
        assert_eq!(extension("", "/x/a.jpg"), "jpg");
        assert_eq!(extension(".bashrc", "/k"), "");
        assert!(allowed_file_type("jpg, .PNG", "png") && !allowed_file_type("jpg,jpeg", "png"));
    }

    #[test]
    fn explicit_types_win_then_the_extension_decides() {
        assert_eq!(content_type(None, "a/b.png"), "image/png");
        assert_eq!(content_type(None, "x.JPG"), "image/jpeg");
        assert_eq!(content_type(Some(""), "n.txt"), "text/plain");
        assert_eq!(content_type(None, "noext"), "application/octet-stream");
        assert_eq!(content_type(None, "dir.v2/file"), "application/octet-stream");
        assert_eq!(content_type(Some("text/x-custom"), "a.png"), "text/x-custom");
    }
}
