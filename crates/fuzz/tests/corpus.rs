//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and crash regressions
//! (`fuzz/regressions/<target>/`) through the targets: a crash the fuzzer found once fails
//! `cargo test` forever after. The long runs themselves are `fuzz/README.md`'s.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in [root.join("corpus").join(target), root.join("regressions").join(target)] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            if e.path().is_file() {
                out.push((e.path(), std::fs::read(e.path()).expect("readable corpus file")));
            }
        }
    }
    out.sort();
    out
}

fn replay(target: &str, f: fn(&[u8]), at_least: usize) {
    let inputs = inputs(target);
    assert!(inputs.len() >= at_least, "{target}: {} corpus files, expected at least {at_least}", inputs.len());
    for (path, data) in inputs {
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{target}: {} panics", path.display());
    }
}

#[test]
fn query() {
    replay("query", chuan_fuzz::query, 10);
}

#[test]
fn form() {
    replay("form", chuan_fuzz::form, 10);
}

#[test]
fn http_fields() {
    replay("http_fields", chuan_fuzz::http_fields, 10);
}

#[test]
fn s3_xml() {
    replay("s3_xml", chuan_fuzz::s3_xml, 10);
}

#[test]
fn requests() {
    replay("requests", chuan_fuzz::requests, 10);
}

#[test]
fn auth_headers() {
    replay("auth_headers", chuan_fuzz::auth_headers, 10);
}

#[test]
fn s3_wire() {
    replay("s3_wire", chuan_fuzz::s3_wire, 10);
}
