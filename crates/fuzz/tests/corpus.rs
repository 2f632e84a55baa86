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

/// One replay test per target, named after it.
macro_rules! replays {
    ($($target:ident),* $(,)?) => {$(
        #[test]
        fn $target() {
            replay(stringify!($target), chuan_fuzz::$target, 10);
        }
    )*};
}

replays!(query, form, http_fields, s3_xml, requests, auth_headers, s3_wire);
