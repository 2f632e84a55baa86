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

#[cfg(test)]
mod tests {
    use super::content_type;

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
