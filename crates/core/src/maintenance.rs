//! Background work and checks: garbage collection (blobs, temporaries, expired grants and
//! sessions), whole-content digests for assembled content, crash recovery, statistics,
//! `fsck`, and the queue of outgoing callbacks.

use chuan_store::*;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::{CoreError, CoreResult};

/// How long a claimed callback is left to its claimer's attempt (which times out after 10 s).
pub const CALLBACK_LEASE: Duration = Duration::from_secs(60);
/// How long a node's digest job holds the pending contents it claimed: another node takes
/// them over only after this (the claimer died, or is still hashing very large contents).
pub const DIGEST_LEASE: Duration = Duration::from_secs(300);

/// Result of a GC pass.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct GcReport {
    pub blobs_freed: u64,
    pub bytes_freed: u64,
    pub temps_removed: u64,
    pub grants_purged: u64,
    pub uploads_expired: u64,
    pub trash_purged: u64,
    /// Bearer tokens (upload tokens, Aliyun Drive access tokens) expired for an hour.
    pub credentials_purged: u64,
}

impl Engine {
    /// Frees blobs unreferenced for longer than `grace`, temporary files that no upload in
    /// this process is writing and that are older than `grace`, single-use grants and bearer
    /// tokens expired for an hour, and upload sessions past their expiry.
    pub async fn gc(&self, grace: Duration) -> CoreResult<GcReport> {
        let mut report = GcReport::default();
        // Sessions first: their parts become unreferenced blobs, freed after the grace period.
        for id in self.meta.expired_uploads(now_ms(), 1000).await? {
            match self.meta.abort_upload(&id).await {
                Ok(()) | Err(StoreError::NotFound) => report.uploads_expired += 1,
                Err(e) => return Err(e.into()),
            }
        }
        // Trash past its retention next: its contents may free blobs in this same pass.
        report.trash_purged = self.purge_expired_trash().await?;
        let cutoff = now_ms() - grace.as_millis() as i64;
        loop {
            let ids = self.meta.unreferenced_blobs(cutoff, 512).await?;
            if ids.is_empty() {
                break;
            }
            let mut progressed = false;
            for id in ids {
                let _guard = self.locks.lock(&id).await;
                if let Some(gone) = self.meta.forget_blob(&id, cutoff).await? {
                    if !gone.inline {
                        // Marked for deletion: writers on every node wait until the row goes.
                        self.delete_marked_blob(&id).await?;
                    }
                    report.blobs_freed += 1;
                    report.bytes_freed += gone.size;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        // Temporaries of live uploads are younger than any sane grace; with grace 0 (tests,
        // admin) only files untouched for a few seconds go, so an upload in progress, which
        // writes continuously, keeps its file.
        let age = grace.max(Duration::from_secs(2));
        report.temps_removed = self.blobs.sweep_temps(age)? as u64;
        // Grants are useless once expired; kept an hour longer so a late answer still gets
        // "expired" rather than "unknown".
        report.grants_purged = self.meta.purge_grants(now_ms() - 3_600_000).await?;
        // Bearer tokens are issued often (an upload token per page, an access token per
        // refresh) and are worth nothing once expired.
        let bearers: Vec<_> = chuan_store::CredentialKind::ALL.into_iter().filter(|k| k.is_bearer()).collect();
        report.credentials_purged = self.meta.purge_expired_credentials(&bearers, now_ms() - 3_600_000).await?;
        self.meta.purge_tokens(now_ms() - self.config.fairness.idle_bucket_ms()).await?;
        self.metrics.blobs_freed.inc_by(report.blobs_freed);
        self.metrics.temps_swept.inc_by(report.temps_removed);
        Ok(report)
    }

    /// Removes blobs in the BlobStore that no metadata row names (left by a version that
    /// wrote bytes before their row, or by a deletion whose row went first by hand). Safe
    /// beside writers and GC on any node: each candidate is reserved as a new row and then
    /// released and marked ([`MaintenanceStore::reserve_blob`], `release_blob`) before its
    /// bytes go, exactly as a writer whose commit failed, so one that a writer reserved
    /// meanwhile (a row appeared, or another writer holds a claim on it) is left alone.
    ///
    /// [`MaintenanceStore::reserve_blob`]: chuan_store::MaintenanceStore::reserve_blob
    pub async fn remove_orphan_blobs(&self) -> CoreResult<usize> {
        let stored = self.blobs.list().await?;
        let (known, _) = self.meta.check().await?;
        let known: std::collections::HashSet<String> = known.into_iter().map(|b| b.id).collect();
        let mut removed = 0;
        for id in stored.into_iter().filter(|id| !known.contains(id)) {
            let Some(size) = self.blobs.size(&id).await? else { continue };
            let claim = uuid::Uuid::new_v4().simple().to_string();
            match self.meta.reserve_blob(&id, size, &claim).await {
                Ok(true) => {}
                // A row appeared (a writer's), or GC is deleting it: not ours to remove.
                Ok(false) => {
                    self.meta.end_claim(&id, &claim).await?;
                    continue;
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
            if self.meta.release_blob(&id, &claim).await?.is_some() {
                self.delete_marked_blob(&id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes every temporary file: only at startup, when no upload can be in flight.
    pub fn sweep_all_temps(&self) -> CoreResult<usize> {
        let n = self.blobs.sweep_temps(Duration::ZERO)?;
        self.metrics.temps_swept.inc_by(n as u64);
        Ok(n)
    }

    /// Computes what pending contents lack (whole-content digests of content assembled from
    /// parts, a deferred SHA-1, the UFile ETag), oldest first, then enters them in the hash
    /// index (which is what makes such content findable for instant upload). A content that
    /// cannot be read (its last object deleted meanwhile, say) is logged and skipped, so it
    /// does not hold up the ones behind it; the first error is returned when none was settled.
    pub async fn compute_pending_digests(&self, limit: usize) -> CoreResult<usize> {
        let now = now_ms();
        let pending = self.meta.claim_pending_digests(now, now + DIGEST_LEASE.as_millis() as i64, limit).await?;
        self.metrics.digest_backlog.set(pending.len() as i64);
        let (mut done, mut first_error) = (0, None);
        for content in pending {
            let settled = match self.hash_missing(&content).await {
                Ok((d, u)) => self.meta.set_content_digests(content.id, d, u).await.map_err(CoreError::from),
                Err(e) => Err(e),
            };
            match settled {
                Ok(()) => {
                    self.metrics.digests_computed.inc();
                    done += 1;
                }
                Err(e) => {
                    tracing::warn!(content = content.id, error = %e, "cannot compute a pending content's digests");
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error.filter(|_| done == 0) {
            return Err(e);
        }
        let left = self.meta.stats().await?.pending_digests;
        self.metrics.digest_backlog.set(left as i64);
        Ok(done)
    }

    pub async fn stats(&self) -> CoreResult<StoreStats> {
        Ok(self.meta.stats().await?)
    }

    /// Consistency check: reference counts agree with the rows holding them, every blob the
    /// metadata names exists with its size, and no stored blob is unknown to the metadata.
    pub async fn fsck(&self) -> CoreResult<FsckReport> {
        // Listed before the metadata is read, as in `remove_orphan_blobs`.
        let mut on_disk: std::collections::HashSet<String> = self.blobs.list().await?.into_iter().collect();
        let (known, mut problems) = self.meta.check().await?;
        for StoredBlob { id, size, referenced } in &known {
            match self.blobs.size(id).await? {
                None if *referenced => problems.push(format!("blob {id} is in the metadata but missing on disk")),
                None => {}
                Some(s) if s != *size => {
                    problems.push(format!("blob {id} is {s} bytes on disk, {size} in the metadata"))
                }
                _ => {}
            }
            on_disk.remove(id);
        }
        for id in on_disk {
            problems.push(format!("blob {id} is on disk but unknown to the metadata (orphan)"));
        }
        Ok(FsckReport { blobs_checked: known.len() as u64, problems })
    }

    // ----- outgoing callbacks (delivered by the binary's worker)

    /// Queues a form-encoded POST of `body` to `url` with extra `headers` (a signature and the
    /// `Date` it signs, made now: retries resend them as they are), kept until delivered or
    /// given up. `InvalidArgument` when `url` is not one [`check_callback_url`] accepts.
    pub async fn enqueue_callback(&self, url: String, headers: Vec<(String, String)>, body: String) -> CoreResult<()> {
        check_callback_url(&url)?;
        Ok(self.meta.enqueue_callback(url, headers, body).await?)
    }

    /// Callbacks due now (at most `limit`), claimed for one delivery attempt each.
    /// They are this node's to attempt: no node (this one included) sees them as due again
    /// for [`CALLBACK_LEASE`], after which they are anyone's (the attempt died with its node).
    pub async fn due_callbacks(&self, limit: usize) -> CoreResult<Vec<Callback>> {
        let now = now_ms();
        Ok(self.meta.claim_callbacks(now, now + CALLBACK_LEASE.as_millis() as i64, limit).await?)
    }

    /// Records an attempt: delivered or given up (`None`), or to be retried at `retry_at`.
    pub async fn finish_callback(&self, id: i64, retry_at: Option<i64>) -> CoreResult<()> {
        Ok(self.meta.finish_callback(id, retry_at).await?)
    }
}

/// Longest callback URL accepted, in bytes.
pub const MAX_CALLBACK_URL: usize = 2048;

/// Whether `url` can receive a callback (or be a redirect target): an absolute `http://` or
/// `https://` URL with a host and a valid port, at most [`MAX_CALLBACK_URL`] bytes of visible
/// ASCII (so it is a valid `Location` and request target as it is). Checked when a
/// client names the URL (so a bad one is refused at once, not given up on a day later).
/// `https://` receivers are verified against the server's trust roots when delivered to.
pub fn check_callback_url(url: &str) -> CoreResult<()> {
    let bad = |why: &str| Err(crate::CoreError::InvalidArgument(format!("callback URL {why}")));
    if url.len() > MAX_CALLBACK_URL {
        return bad(&format!("longer than {MAX_CALLBACK_URL} bytes"));
    }
    if url.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return bad("contains whitespace, control or non-ASCII characters (percent-encode them)");
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return bad("must start with http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return bad("has no host");
    }
    let port = if host.starts_with('[') {
        host.rsplit_once("]:").map(|(_, p)| p)
    } else {
        host.rsplit_once(':').map(|(_, p)| p)
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return bad("has an invalid port");
    }
    Ok(())
}

#[cfg(test)]
mod callback_url_tests {
    use super::check_callback_url;

    #[test]
    fn http_and_https_urls_with_a_host_only() {
        for ok in ["http://127.0.0.1:8080/cb", "https://example.com/notify?x=1", "HTTPS://h", "http://h:1"] {
            assert!(check_callback_url(ok).is_ok(), "{ok}");
        }
        let long = format!("https://h/{}", "a".repeat(2048));
        for bad in [
            "ftp://h/",
            "https:///x",
            "http://:80/",
            "//h/x",
            "https://h/a b",
            "",
            "javascript:x",
            "http://h:99999/",
            "http://中.cn/",
            &long,
        ] {
            assert!(check_callback_url(bad).is_err(), "{bad}");
        }
    }
}
