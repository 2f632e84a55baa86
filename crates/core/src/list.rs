//! Listing with prefix, delimiter and a resume point, over the store's ordered key scan.

use chuan_store::{ListStart, MetaStore, ObjectRecord};

use crate::error::CoreResult;
use crate::names::prefix_successor;

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Resume after this key or common prefix (exclusive).
    pub after: Option<String>,
    pub max_keys: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ListResult {
    pub objects: Vec<ObjectRecord>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned: where the next page resumes.
    pub next_after: Option<String>,
    /// The tenant owning the bucket (the owner of objects without an ACL of their own).
    pub bucket_owner: String,
}

enum Cursor {
    After(String),
    From(String),
}

/// Keys are rolled up into common prefixes on the fly; when one is emitted the scan jumps to
/// the first string past every key under it instead of reading them.
pub async fn list(meta: &dyn MetaStore, bucket: &str, q: &ListQuery) -> CoreResult<ListResult> {
    let mut out = ListResult::default();
    if q.max_keys == 0 {
        return Ok(out);
    }
    let delim = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let roll_up = |key: &str| -> Option<String> {
        let d = delim?;
        key[q.prefix.len()..].find(d).map(|pos| key[..q.prefix.len() + pos + d.len()].to_owned())
    };
    // Resuming after a common prefix means resuming after everything under it.
    let mut cursor = match &q.after {
        None => None,
        Some(a) if a.starts_with(&q.prefix) && roll_up(a).as_deref() == Some(a.as_str()) => match prefix_successor(a) {
            Some(s) => Some(Cursor::From(s)),
            None => return Ok(out),
        },
        Some(a) => Some(Cursor::After(a.clone())),
    };
    loop {
        let start = match &cursor {
            None => ListStart::Beginning,
            Some(Cursor::After(a)) => ListStart::After(a),
            Some(Cursor::From(a)) => ListStart::From(a),
        };
        let batch = (q.max_keys - out.objects.len() - out.common_prefixes.len() + 1).clamp(2, 1000);
        let page = meta.list_objects(bucket, &q.prefix, start, batch).await?;
        if page.is_empty() {
            return Ok(out);
        }
        let mut next = None;
        for obj in page {
            let item = roll_up(&obj.key);
            if out.objects.len() + out.common_prefixes.len() == q.max_keys {
                out.truncated = true;
                return Ok(out);
            }
            match item {
                Some(cp) => {
                    out.next_after = Some(cp.clone());
                    next = Some(match prefix_successor(&cp) {
                        Some(s) => Cursor::From(s),
                        None => return Ok(out),
                    });
                    out.common_prefixes.push(cp);
                    break;
                }
                None => {
                    out.next_after = Some(obj.key.clone());
                    next = Some(Cursor::After(obj.key.clone()));
                    out.objects.push(obj);
                }
            }
        }
        cursor = next;
    }
}
