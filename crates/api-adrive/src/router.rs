//! Every Aliyun Drive operation Chuan serves, parsed from method and path before anything else.

use http::Method;

use crate::error::{AdriveError, AdriveResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    CreateSession,
    UserGet,
    Create,
    List,
    Get,
    GetByPath,
    GetDownloadUrl,
    Update,
    Trash,
    Restore,
    TrashList,
    Delete,
    Move,
    Copy,
    Batch,
    Search,
    GetPath,
    FolderSize,
    DriveGet,
    DefaultDrive,
    ListDrives,
    ListStarred,
    GetUploadUrl,
    ListUploadedParts,
    Complete,
    /// `PUT /adrive/upload/<upload_id>/<part_number>?expires=&sig=` (presigned)
    PartUpload {
        upload_id: String,
        part_number: u32,
    },
    /// `GET /adrive/download/<drive_id>/<file_id>?expires=&sig=` (presigned)
    Download {
        drive_id: String,
        file_id: String,
    },
}

pub fn parse(method: &Method, path: &str) -> AdriveResult<Endpoint> {
    if let Some(rest) = path.strip_prefix("/adrive/upload/") {
        if let Some((id, part)) = rest.split_once('/') {
            if let (true, Ok(n)) = (method == Method::PUT, part.parse()) {
                return Ok(Endpoint::PartUpload { upload_id: id.to_owned(), part_number: n });
            }
        }
    }
    if let Some(rest) = path.strip_prefix("/adrive/download/") {
        if let Some((drive, file)) = rest.split_once('/') {
            if method == Method::GET || method == Method::HEAD {
                return Ok(Endpoint::Download { drive_id: drive.to_owned(), file_id: file.to_owned() });
            }
        }
    }
    if method != Method::POST {
        return Err(not_found(path));
    }
    Ok(match path {
        "/v2/account/token" | "/token/refresh" => Endpoint::Token,
        "/users/v1/users/device/create_session" => Endpoint::CreateSession,
        "/v2/user/get" | "/adrive/v2/user/get" => Endpoint::UserGet,
        "/v2/file/create_with_proof" | "/adrive/v2/file/createWithFolders" | "/v2/file/create" => Endpoint::Create,
        "/adrive/v3/file/list" | "/v2/file/list" | "/adrive/v2/file/list" => Endpoint::List,
        "/v2/file/get" | "/adrive/v2/file/get" => Endpoint::Get,
        "/v2/file/get_by_path" | "/adrive/v1/file/get_by_path" => Endpoint::GetByPath,
        "/v2/file/get_download_url" => Endpoint::GetDownloadUrl,
        "/v2/file/update" | "/v3/file/update" => Endpoint::Update,
        "/v2/recyclebin/trash" => Endpoint::Trash,
        "/v2/recyclebin/restore" => Endpoint::Restore,
        "/v2/recyclebin/list" | "/adrive/v2/recyclebin/list" => Endpoint::TrashList,
        "/v2/file/delete" | "/v3/file/delete" => Endpoint::Delete,
        "/v2/file/move" | "/v3/file/move" => Endpoint::Move,
        "/v2/file/copy" | "/v3/file/copy" => Endpoint::Copy,
        "/v3/batch" | "/v2/batch" | "/adrive/v2/batch" | "/adrive/v4/batch" => Endpoint::Batch,
        "/v2/file/search" | "/adrive/v3/file/search" => Endpoint::Search,
        "/adrive/v1/file/get_path" | "/v2/file/get_path" => Endpoint::GetPath,
        "/adrive/v1/file/get_folder_size_info" | "/v2/file/get_folder_size_info" => Endpoint::FolderSize,
        "/v2/drive/get" => Endpoint::DriveGet,
        "/v2/file/list_by_custom_index_key" | "/adrive/v2/file/list_by_custom_index_key" => Endpoint::ListStarred,
        "/v2/drive/get_default_drive" => Endpoint::DefaultDrive,
        "/v2/drive/list_my_drives" | "/adrive/v1/drive/list_my_drives" => Endpoint::ListDrives,
        "/v2/file/get_upload_url" => Endpoint::GetUploadUrl,
        "/v2/file/list_uploaded_parts" => Endpoint::ListUploadedParts,
        "/v2/file/complete" => Endpoint::Complete,
        _ => return Err(not_found(path)),
    })
}

fn not_found(path: &str) -> AdriveError {
    AdriveError::new(http::StatusCode::NOT_FOUND, "NotFound.Operation", format!("no such operation: {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_and_sdk_paths() {
        assert_eq!(parse(&Method::POST, "/adrive/v2/file/createWithFolders").unwrap(), Endpoint::Create);
        assert_eq!(parse(&Method::POST, "/v2/file/create_with_proof").unwrap(), Endpoint::Create);
        assert_eq!(
            parse(&Method::PUT, "/adrive/upload/abc/3").unwrap(),
            Endpoint::PartUpload { upload_id: "abc".into(), part_number: 3 }
        );
        assert!(parse(&Method::GET, "/v2/file/get").is_err());
        assert!(parse(&Method::POST, "/v2/nope").is_err());
    }
}
