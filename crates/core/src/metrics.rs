//! Counters the engine keeps, rendered as Prometheus text by the binary (for the root key pair
//! or the metrics token only).
//!
//! No counter moves differently for content another tenant holds than for unknown content:
//! there is no per-write deduplication counter (the savings are in `chuan stats` and
//! `/_chuan/admin/stats`), and proof-of-possession reads are not served bytes.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Default)]
pub struct Metrics {
    pub bytes_ingested: Counter,
    pub objects_committed: Counter,
    pub parts_committed: Counter,
    pub uploads_rejected: Counter,
    pub bytes_served: Counter,
    pub blobs_freed: Counter,
    pub temps_swept: Counter,
    pub digests_computed: Counter,
    /// Contents assembled from parts still waiting for their whole-file digests.
    pub digest_backlog: Gauge,
    pub http_requests: Counter,
    /// Instant uploads granted (any protocol).
    pub instant_hits: Counter,
    /// Instant-upload lookups that took longer than the lookup floor (whose timing could tell
    /// a hit from a miss: raise the floor when this moves).
    pub lookup_floor_overruns: Counter,
    /// Requests and connections refused by a limit, by `limit` (see [`Metrics::refused`]).
    pub limit_refusals: Family<Vec<(String, String)>, Counter>,
    /// Counters registered by dialects for their own operations.
    dialect: parking_lot::Mutex<Vec<(String, String, Counter)>>,
}

impl Metrics {
    /// A counter of a dialect's own (rendered as `chuan_<name>_total`).
    pub fn register_counter(&self, name: &str, help: &str) -> Counter {
        let c = Counter::default();
        self.dialect.lock().push((name.to_owned(), help.to_owned(), c.clone()));
        c
    }

    /// Counts one refusal by a limit: `header_timeout` (a head not received in time — idle
    /// keep-alive connections reaching that time count too), `head_too_large`,
    /// `send_timeout` (a response the client stopped taking, or a socket that timed out while
    /// writing), `connection_cap`, `body_stalled`, `request_rate`, `tenant_uploads`,
    /// `probe_rate`, `form_limits` (Chuan's form reader, every protocol's forms). Aggregates
    /// over every tenant, for the operator only.
    pub fn refused(&self, limit: &str) {
        self.limit_refusals.get_or_create(&vec![("limit".to_owned(), limit.to_owned())]).inc();
    }

    pub fn render(&self) -> String {
        let mut reg = Registry::with_prefix("chuan");
        reg.register("ingested_bytes", "Bytes received into the store", self.bytes_ingested.clone());
        reg.register("objects_committed", "Objects written", self.objects_committed.clone());
        reg.register("parts_committed", "Multipart parts written", self.parts_committed.clone());
        reg.register(
            "uploads_rejected",
            "Uploads refused after staging (digest mismatch, precondition)",
            self.uploads_rejected.clone(),
        );
        reg.register("served_bytes", "Bytes sent to clients", self.bytes_served.clone());
        reg.register("blobs_freed", "Unreferenced blobs removed by GC", self.blobs_freed.clone());
        reg.register("temps_swept", "Stale temporary files removed", self.temps_swept.clone());
        reg.register("digests_computed", "Whole-content digests computed in background", self.digests_computed.clone());
        reg.register("digest_backlog", "Contents waiting for whole-content digests", self.digest_backlog.clone());
        reg.register("http_requests", "HTTP requests received", self.http_requests.clone());
        reg.register("instant_hits", "Instant uploads granted (no bytes received)", self.instant_hits.clone());
        reg.register(
            "lookup_floor_overruns",
            "Instant-upload lookups slower than the lookup floor",
            self.lookup_floor_overruns.clone(),
        );
        reg.register("limit_refusals", "Requests and connections refused by a limit", self.limit_refusals.clone());
        for (name, help, c) in self.dialect.lock().iter() {
            reg.register(name.clone(), help.clone(), c.clone());
        }
        let mut out = String::new();
        let _ = encode(&mut out, &reg);
        out
    }
}
