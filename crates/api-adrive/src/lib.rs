//! The Aliyun Drive dialect (`aligo` 6.2.8 and the documented `create_with_proof` API): a
//! translator over the core engine.
//!
//! * Drives are buckets of the caller's tenant (each tenant has a default drive); the file
//!   tree is the core's (`Engine::list_folder`, `move_entry`, `copy_entry`, the trash):
//!   `file_id` is an entry's stable id; `parent_file_id` `root` is the top of the drive.
//! * Access tokens come from refresh tokens that `chuan admin` issues; both are the core's
//!   bearer credentials (kept as SHA-256 digests, never in clear).
//! * Uploads are core upload sessions (protocol state in the session; they expire like every
//!   Aliyun Drive session); parts go to the core's signed, expiring, part-bound URL grants
//!   served here; completion assembles the parts without copying.
//! * Instant upload follows the core's proof-of-possession rules (`proof_version v1`).
//!
//! `router.rs` turns a request into an [`router::Endpoint`]; `auth.rs` handles tokens;
//! `files.rs` the file tree (list in any order, get, update, path, size, search, drives,
//! download); `moves.rs` move and copy; `trash.rs` the recycle bin; `batch.rs` `/v3/batch`;
//! `upload.rs` the upload flow; `wire.rs` JSON shapes and errors (`error.rs`).

mod auth;
mod batch;
mod error;
mod files;
mod moves;
mod router;
mod trash;
mod upload;
mod wire;

use chuan_api_common::Body;
use chuan_api_common::RequestBody;
use chuan_core::Engine;
use http::{Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use std::sync::Arc;
use std::time::Duration;

pub use auth::{bearer, IssuedRefreshToken};
use error::{AdriveError, AdriveResult};
use router::Endpoint;

pub type Resp = Response<Body>;

/// A JSON operation's answer: its status and body (`None`: no body, as 204s have).
pub(crate) type Reply = (StatusCode, Option<serde_json::Value>);

fn render((status, body): Reply) -> Resp {
    match body {
        Some(v) => wire::json(status, &v),
        None => Response::builder().status(status).body(chuan_api_common::empty()).expect("valid response"),
    }
}

pub struct AdriveConfig {
    /// Lifetime of part-upload and download URLs.
    pub url_ttl: Duration,
    /// Lifetime of access tokens.
    pub token_ttl: Duration,
}

impl Default for AdriveConfig {
    fn default() -> Self {
        Self { url_ttl: Duration::from_secs(3600), token_ttl: Duration::from_secs(7200) }
    }
}

pub struct AdriveDialect {
    engine: Arc<Engine>,
    config: AdriveConfig,
    part_puts: Counter,
}

/// The largest JSON request body accepted.
const MAX_JSON: usize = 1 << 20;

impl AdriveDialect {
    pub fn new(engine: Arc<Engine>, config: AdriveConfig) -> Self {
        let part_puts = engine.metrics.register_counter("adrive_part_puts", "Aliyun Drive part uploads received");
        Self { engine, config, part_puts }
    }

    pub async fn handle(&self, req: Request<RequestBody>) -> Resp {
        match self.route(req).await {
            Ok(resp) => resp,
            Err(e) => wire::error_response(&e),
        }
    }

    async fn route(&self, req: Request<RequestBody>) -> AdriveResult<Resp> {
        let origin = chuan_api_common::origin(&req);
        let endpoint = router::parse(req.method(), req.uri().path())?;
        let query = req.uri().query().map(str::to_owned);
        match endpoint {
            Endpoint::PartUpload { upload_id, part_number } => {
                return self.put_part(&upload_id, part_number, query.as_deref(), req.into_body()).await;
            }
            Endpoint::Download { drive_id, file_id } => {
                return self.download(&drive_id, &file_id, query.as_deref(), req.headers()).await;
            }
            _ => {}
        }
        let token = auth::bearer(req.headers());
        let body = chuan_api_common::read_limited(req.into_body(), MAX_JSON).await.map_err(|e| {
            e.or_timeout(|_| AdriveError::bad_request("InvalidParameter", "request body too large or unreadable"))
        })?;
        let v: serde_json::Value = if body.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| AdriveError::bad_request("InvalidParameter", format!("malformed JSON body: {e}")))?
        };
        match endpoint {
            Endpoint::Token => return self.token(&v).await,
            Endpoint::CreateSession => {
                return Ok(wire::json(StatusCode::OK, &serde_json::json!({"result": true, "success": true})))
            }
            _ => {}
        }
        let token = token.ok_or_else(AdriveError::token_invalid)?;
        let p = self.principal(&token).await?;
        match endpoint {
            Endpoint::UserGet => self.user_get(&p).await,
            Endpoint::Create => self.create(&p, &token, &origin, &v).await,
            Endpoint::List => self.list(&p, &v).await.map(render),
            Endpoint::Get => self.get(&p, &origin, &v).await.map(render),
            Endpoint::GetByPath => self.get_by_path(&p, &origin, &v).await.map(render),
            Endpoint::GetDownloadUrl => self.get_download_url(&p, &origin, &v).await.map(render),
            Endpoint::Update => self.update(&p, &v).await.map(render),
            Endpoint::Trash => self.trash(&p, &v).await.map(render),
            Endpoint::Restore => self.restore(&p, &v).await.map(render),
            Endpoint::TrashList => self.list_trash(&p, &v).await.map(render),
            Endpoint::Delete => self.delete(&p, &v).await.map(render),
            Endpoint::Move => self.move_file(&p, &v).await.map(render),
            Endpoint::Copy => self.copy_file(&p, &v).await.map(render),
            Endpoint::Batch => self.batch(&p, &origin, &v).await.map(render),
            Endpoint::Search => self.search(&p, &v).await.map(render),
            Endpoint::GetPath => self.get_path(&p, &v).await.map(render),
            Endpoint::FolderSize => self.folder_size(&p, &v).await.map(render),
            Endpoint::DriveGet | Endpoint::DefaultDrive => self.drive_get(&p, &v).await.map(render),
            Endpoint::ListDrives => self.list_drives(&p).await.map(render),
            Endpoint::ListStarred => self.list_starred(&p, &v).await.map(render),
            Endpoint::GetUploadUrl => self.get_upload_url(&p, &origin, &v).await,
            Endpoint::ListUploadedParts => self.list_uploaded_parts(&p, &v).await,
            Endpoint::Complete => self.complete(&p, &v).await,
            Endpoint::Token | Endpoint::CreateSession | Endpoint::PartUpload { .. } | Endpoint::Download { .. } => {
                unreachable!("answered above")
            }
        }
    }
}
