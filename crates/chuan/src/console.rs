//! The web console at `/_chuan/console/`: the files npm built (`console/`, embedded by
//! `build.rs`), served without credentials (the page signs in with a key pair and calls the
//! APIs itself). Names under `assets/` carry a content hash and are cached for a year;
//! `index.html` is revalidated. Any other path is the page itself (its routes live in the
//! browser).

use http::{Response, StatusCode};

use crate::admin::Resp;

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// The console's base path.
pub const BASE: &str = "/_chuan/console/";

/// Answers `GET`/`HEAD` of `/_chuan/console` (a redirect to the base) and below it.
pub fn serve(path: &str, head: bool) -> Resp {
    let Some(rel) = path.strip_prefix(BASE) else {
        return Response::builder()
            .status(StatusCode::PERMANENT_REDIRECT)
            .header(http::header::LOCATION, BASE)
            .body(chuan_api_common::empty())
            .expect("valid response");
    };
    let file = CONSOLE.iter().find(|(p, _, _)| *p == rel).filter(|_| !rel.is_empty());
    let (name, ctype, bytes) = match file {
        Some(f) => *f,
        None if rel.starts_with("assets/") => {
            return crate::admin::respond(StatusCode::NOT_FOUND, "text/plain", "no such console file\n")
        }
        None => match CONSOLE.iter().find(|(p, _, _)| *p == "index.html") {
            Some(f) => *f,
            None => {
                return crate::admin::respond(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    "the web console was not built into this binary: run `npm ci && npm run build` in console/ \
                     and build chuan again\n",
                )
            }
        },
    };
    let cache = if name.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, ctype)
        .header(http::header::CONTENT_LENGTH, bytes.len())
        .header(http::header::CACHE_CONTROL, cache)
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "no-referrer")
        .body(if head { chuan_api_common::empty() } else { chuan_api_common::full(bytes) })
        .expect("valid response")
}
