//! Embeds the web console (`console/dist`, built by npm) into the binary: generates
//! `$OUT_DIR/console_assets.rs`, a table of (path, content type, bytes). When the console is not
//! built yet, or its sources are newer than the build, and npm is on the machine, builds it
//! first (`npm ci` and `npm run build` in `console/`); otherwise it warns (without any build
//! the binary serves a page that says how to build it). The test command builds it before
//! cargo runs (`tests/console/prepare.sh`), so this is the fallback for a plain `cargo build`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "map" => "application/json",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            out.push(p);
        }
    }
}

/// The newest modification time among `paths` (files, or folders searched whole).
fn newest(paths: &[PathBuf]) -> Option<std::time::SystemTime> {
    let mut all = Vec::new();
    for p in paths {
        if p.is_dir() {
            files(p, &mut all);
        } else {
            all.push(p.clone());
        }
    }
    all.iter().filter_map(|f| f.metadata().and_then(|m| m.modified()).ok()).max()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../console");
    let dist = root.join("dist");
    let sources: Vec<PathBuf> =
        ["src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json"]
            .iter()
            .map(|s| root.join(s))
            .collect();
    println!("cargo:rerun-if-changed={}", dist.display());
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    let built = dist.join("index.html").metadata().and_then(|m| m.modified()).ok();
    let stale = match (built, newest(&sources)) {
        (None, _) => true,
        (Some(b), Some(s)) => s > b,
        (Some(_), None) => false,
    };
    if stale && root.join("package.json").exists() {
        let npm = |args: &[&str]| Command::new("npm").args(args).current_dir(&root).status().is_ok_and(|s| s.success());
        if !(npm(&["ci", "--no-audit", "--no-fund"]) && npm(&["run", "build"])) {
            let what = if built.is_some() { "older than its sources (embedding the old build)" } else { "not built" };
            println!("cargo:warning=the web console is {what}: npm failed or is missing; run `npm ci && npm run build` in console/ and build again");
        }
    }
    let mut list = Vec::new();
    files(&dist, &mut list);
    list.sort();
    let mut code = String::from("/// The web console's files: (path under `/_chuan/console/`, content type, bytes).\npub static CONSOLE: &[(&str, &str, &[u8])] = &[\n");
    for f in &list {
        let rel = f.strip_prefix(&dist).expect("under dist").to_string_lossy().replace('\\', "/");
        let abs = f.canonicalize().expect("readable file");
        code.push_str(&format!(
            "    ({rel:?}, {:?}, include_bytes!({:?})),\n",
            content_type(f),
            abs.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("console_assets.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
