//! The dependency rules of ARCHITECTURE.md, checked mechanically: dialects translate, the core
//! decides. A dialect crate may not depend on `chuan-store` (so it cannot name the MetaStore,
//! nor reach it through the engine: the core re-exports records only), nor on another
//! dialect; no dialect source names the store, and none makes up a principal (principals come
//! from credentials, bearer tokens and grants, resolved by the core) or a record the engine
//! trusts (objects, contents, sessions and parts come from the engine).

use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crates/").to_owned()
}

fn dialects() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(crates_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("api-"))
        .collect();
    v.sort();
    assert!(v.len() >= 7, "expected api-common and six dialect crates, found {v:?}");
    v
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn dialect_crates_depend_on_core_and_api_common_only() {
    for d in dialects() {
        let manifest = std::fs::read_to_string(d.join("Cargo.toml")).unwrap();
        let deps = manifest.split("[dependencies]").nth(1).unwrap_or("").split("\n[").next().unwrap_or("");
        for line in deps.lines() {
            let name = line.split(['=', '.']).next().unwrap_or("").trim();
            assert!(
                !name.starts_with("chuan") || name == "chuan-core" || name == "chuan-api-common",
                "{} depends on {name}: a dialect depends on chuan-core and chuan-api-common only",
                d.display()
            );
        }
    }
}

#[test]
fn no_dialect_reaches_the_store_or_makes_up_a_principal() {
    // Records the engine trusts come from the engine: a dialect never builds one.
    let forbidden = [
        "MetaStore",
        "chuan_store",
        ".meta()",
        "Principal::of_tenant",
        "Principal::operator",
        ".with_scope(",
        "ObjectRecord {",
        "ContentRecord {",
        "UploadRecord {",
        "PartRecord {",
        "FolderRecord {",
        "TrashItem {",
        // ACLs are resolved by the core (`Engine::requested_acl`), bucket settings stored by it.
        "Acl {",
        "BucketConfig {",
        ".content_id",
    ];
    let mut found = Vec::new();
    for d in dialects() {
        let mut files = Vec::new();
        rust_files(&d.join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                for word in forbidden {
                    if line.contains(word) {
                        found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(found.is_empty(), "dialects must go through the engine's API:\n{}", found.join("\n"));
}

#[test]
fn every_dialect_decodes_through_its_one_wire_rule() {
    // One decoding per protocol: names in paths, queries, forms and headers are decoded by the
    // dialect's `WIRE` (chuan_api_common::Wire), never ad hoc, so no endpoint reads a name
    // differently from its neighbours (a `+`, a `%XX` decoded twice).
    let forbidden = ["percent_decode(", "query_param(", "Query::parse(", "parse_form(", "query::decode("];
    let mut found = Vec::new();
    for d in dialects().into_iter().filter(|d| !d.ends_with("api-common")) {
        let mut files = Vec::new();
        rust_files(&d.join("src"), &mut files);
        let mut wires = 0;
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            wires += text.matches("const WIRE: chuan_api_common::Wire").count();
            for (n, line) in text.lines().enumerate() {
                for word in forbidden {
                    if line.contains(word) {
                        found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                    }
                }
            }
        }
        // Aliyun Drive decodes nothing: names travel in JSON, its URLs carry hex tokens.
        let want = if d.ends_with("api-adrive") { 0 } else { 1 };
        assert_eq!(wires, want, "{}: one `const WIRE: chuan_api_common::Wire` per decoding dialect", d.display());
    }
    assert!(found.is_empty(), "decode through the dialect's WIRE:\n{}", found.join("\n"));
}

#[test]
fn the_core_does_not_hand_out_the_store() {
    let lib = std::fs::read_to_string(crates_dir().join("core/src/lib.rs")).unwrap();
    let store = lib.split("pub mod store {").nth(1).expect("core re-exports records in `store`");
    let store = store.split('}').next().unwrap();
    for word in ["MetaStore", "Store,", "Store}", "BlobStore", "SqlMetaStore"] {
        assert!(!store.contains(word), "chuan_core::store re-exports {word}: records only");
    }
    let mut files = Vec::new();
    rust_files(&crates_dir().join("core/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("pub fn meta("), "{} hands out the MetaStore", f.display());
    }
}

/// `unsafe` only where ARCHITECTURE.md (invariant 20) lists it, each block with its reason.
#[test]
fn unsafe_code_only_where_listed() {
    let allowed =
        ["chuan/src/main.rs", "chuan/src/limits.rs", "chuan/src/setup.rs", "store/src/blob.rs", "core/src/hash.rs"]
            .map(Path::new);
    let mut files = Vec::new();
    rust_files(&crates_dir(), &mut files);
    for f in files {
        let rel = f.strip_prefix(crates_dir()).unwrap();
        if !rel.components().any(|c| c.as_os_str() == "src") {
            continue; // tests and benches are not shipped code (and this file names the word)
        }
        let src = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = src.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !(code.contains("unsafe {") || code.contains("unsafe fn") || code.contains("unsafe impl")) {
                continue;
            }
            assert!(
                allowed.contains(&rel),
                "{}:{}: unsafe outside the files ARCHITECTURE.md lists",
                rel.display(),
                i + 1
            );
            let reason = lines[..i].iter().rev().take(3).any(|l| l.trim_start().starts_with("// SAFETY:"));
            assert!(reason, "{}:{}: an unsafe block needs a `// SAFETY:` comment just above it", rel.display(), i + 1);
        }
    }
}
