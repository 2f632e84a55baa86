//! Chuan's core engine: the rules every dialect shares, with no HTTP in sight.
//!
//! A dialect (S3, UFile, COS, ...) parses its wire format, authenticates the caller to a
//! [`Principal`], and calls the [`Engine`]. The engine owns naming rules, authorization,
//! deduplication, multipart assembly, listing, garbage collection and the background digest
//! job. It is written against the [`chuan_store`] traits only.
//!
//! The write path ([`ingest`]) is two-phase so that a dialect can check digests that arrive
//! only after the body (S3 trailers, UpYun block hashes): [`Engine::stage`] streams the body
//! into an invisible, fsynced temporary blob while computing every digest in the same pass;
//! the dialect compares what the client claimed; then [`Engine::commit_put`] (or
//! [`Engine::commit_part`]) publishes it in one metadata transaction. Dropping a [`Staged`]
//! instead leaves nothing behind.

pub mod error;
pub mod hash;
pub mod ingest;
pub mod instant;
pub mod names;
pub mod scope;

mod engine;
mod list;
mod metering;
mod metrics;

pub use chuan_store as store;
pub use engine::{CompleteOptions, Engine, EngineConfig, GcReport, Principal, PutTarget};
pub use error::{CoreError, CoreResult};
pub use ingest::{StageOptions, Staged};
pub use instant::{ChallengeOutcome, Possession};
pub use list::{ListQuery, ListResult};
pub use metering::{day_of, Quota};
pub use metrics::Metrics;
pub use scope::{Op, Scope};
