//! `?list` (PrefixFileList) and `?listobjects` (with delimiter and common prefixes).

use chuan_core::store::ObjectRecord;
use chuan_core::ListQuery;
use http::StatusCode;
use serde_json::{json, Value};

use crate::error::{UfileError, UfileResult};
use crate::{json, Ctx, Resp, UfileDialect};

const MAX_LIMIT: usize = 1000;

impl UfileDialect {
    async fn etag_or_empty(&self, rec: &ObjectRecord) -> String {
        // Listings use what is known; content whose UFile ETag is still being computed in the
        // background shows an empty hash rather than being read during a listing.
        match self.engine.content_of(rec).await {
            Ok(c) => c.ufile_etag.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub(crate) async fn prefix_file_list(&self, ctx: Ctx) -> UfileResult<Resp> {
        let q = &ctx.query;
        let limit = match q.get("limit") {
            Some(l) => {
                l.parse::<usize>().map_err(|_| UfileError::bad_request("limit must be a number"))?.clamp(1, MAX_LIMIT)
            }
            None => 20,
        };
        let query = ListQuery {
            prefix: q.get("prefix").unwrap_or("").to_owned(),
            delimiter: None,
            after: q.get("marker").filter(|m| !m.is_empty()).map(str::to_owned),
            max_keys: limit,
        };
        let page = self.engine.list_objects(&ctx.principal, &ctx.bucket, &query).await?;
        let mut set = Vec::with_capacity(page.objects.len());
        for o in &page.objects {
            set.push(json!({
                "BucketName": ctx.bucket,
                "FileName": o.key,
                "Hash": self.etag_or_empty(o).await,
                "MimeType": o.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
                "Size": o.size,
                "CreateTime": o.modified_ms / 1000,
                "ModifyTime": o.modified_ms / 1000,
                "StorageClass": "STANDARD",
            }));
        }
        let next = if page.truncated { page.next_after.unwrap_or_default() } else { String::new() };
        Ok(json(
            StatusCode::OK,
            &json!({"BucketName": ctx.bucket, "BucketId": format!("ufile-{}", ctx.bucket), "NextMarker": next, "DataSet": set}),
        ))
    }

    pub(crate) async fn list_objects(&self, ctx: Ctx) -> UfileResult<Resp> {
        let q = &ctx.query;
        let max_keys = match q.get("max-keys").filter(|m| !m.is_empty()) {
            Some(m) => {
                m.parse::<usize>().map_err(|_| UfileError::bad_request("max-keys must be a number"))?.min(MAX_LIMIT)
            }
            None => MAX_LIMIT,
        };
        let prefix = q.get("prefix").unwrap_or("").to_owned();
        let delimiter = q.get("delimiter").filter(|d| !d.is_empty()).map(str::to_owned);
        let query = ListQuery {
            prefix: prefix.clone(),
            delimiter: delimiter.clone(),
            after: q.get("marker").filter(|m| !m.is_empty()).map(str::to_owned),
            max_keys,
        };
        let page = self.engine.list_objects(&ctx.principal, &ctx.bucket, &query).await?;
        let mut contents: Vec<Value> = Vec::with_capacity(page.objects.len());
        for o in &page.objects {
            contents.push(json!({
                "Key": o.key,
                "MimeType": o.meta.content_type.clone().unwrap_or_else(|| "application/octet-stream".into()),
                "LastModified": o.modified_ms / 1000,
                "CreateTime": o.modified_ms / 1000,
                "Etag": format!("\"{}\"", self.etag_or_empty(o).await),
                "Size": o.size.to_string(),
                "StorageClass": "STANDARD",
                "UserMeta": o.meta.user,
            }));
        }
        let prefixes: Vec<Value> = page.common_prefixes.iter().map(|p| json!({"Prefix": p})).collect();
        Ok(json(
            StatusCode::OK,
            &json!({
                "Name": ctx.bucket, "Prefix": prefix, "MaxKeys": max_keys.to_string(),
                "Delimiter": delimiter.unwrap_or_default(), "IsTruncated": page.truncated,
                "NextMarker": if page.truncated { page.next_after.unwrap_or_default() } else { String::new() },
                "Contents": contents, "CommonPrefixes": prefixes,
            }),
        ))
    }
}
