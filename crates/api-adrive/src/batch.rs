//! `/v3/batch` (and `/adrive/v2|v4/batch`): up to 100 file operations in one request, each
//! answered on its own (`{"responses": [{"id", "status", "body"}]}`, in request order), as
//! aligo's `batch_*` calls send them.

use chuan_core::Principal;
use http::StatusCode;
use serde_json::{json, Value};

use crate::error::{AdriveError, AdriveResult};
use crate::files::ok;
use crate::{AdriveDialect, Reply};

/// Most sub-requests one batch may carry (aligo sends chunks of 100).
pub const MAX_BATCH: usize = 100;

impl AdriveDialect {
    pub(crate) async fn batch(&self, p: &Principal, origin: &str, v: &Value) -> AdriveResult<Reply> {
        let requests = v
            .get("requests")
            .and_then(Value::as_array)
            .ok_or_else(|| AdriveError::bad_request("InvalidParameter.Requests", "requests must be a list"))?;
        if requests.len() > MAX_BATCH {
            return Err(AdriveError::bad_request(
                "InvalidParameter.Requests",
                format!("at most {MAX_BATCH} requests per batch; send the rest in another"),
            ));
        }
        let mut responses = Vec::with_capacity(requests.len());
        for r in requests {
            let id = r.get("id").cloned().unwrap_or(Value::Null);
            let body = r.get("body").cloned().unwrap_or_else(|| json!({}));
            let url = r.get("url").and_then(Value::as_str).unwrap_or("");
            let outcome = match url {
                "/file/move" => self.move_file(p, &body).await,
                "/file/copy" => self.copy_file(p, &body).await,
                "/file/get" => self.get(p, origin, &body).await,
                "/file/get_download_url" => self.get_download_url(p, origin, &body).await,
                "/file/update" => self.update(p, &body).await,
                "/file/delete" => self.delete(p, &body).await,
                "/recyclebin/trash" => self.trash(p, &body).await,
                "/recyclebin/restore" => self.restore(p, &body).await,
                other => Err(AdriveError::new(
                    StatusCode::NOT_FOUND,
                    "NotFound.Operation",
                    format!("no such batch operation: {other}"),
                )),
            };
            let (status, body) = match outcome {
                Ok((status, body)) => (status, body),
                Err(e) => (e.status, Some(json!({"code": e.code, "message": e.message}))),
            };
            let mut resp = json!({"id": id, "status": status.as_u16()});
            if let Some(b) = body {
                resp["body"] = b;
            }
            responses.push(resp);
        }
        Ok(ok(json!({"responses": responses})))
    }
}
