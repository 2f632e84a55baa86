//! The Chuan server: the only crate that wires dialects to the engine. It opens the stores,
//! builds the engine, starts the background jobs and the HTTP listener ([`server`]), and
//! routes each request to the dialect that speaks it ([`dispatch`]). The `chuan` binary
//! (`main.rs`) is its command line; the fuzz targets (`crates/fuzz`) drive [`dispatch::route`]
//! with the same [`dispatch::State`] the server builds.

pub mod admin;
pub mod callbacks;
pub mod console;
pub mod dispatch;
pub mod host;
pub mod interim;
pub mod limits;
pub mod native;
pub mod server;
pub mod setup;
