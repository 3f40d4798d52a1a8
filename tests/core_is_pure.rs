//! The API types and the engine stay pure: no client, runtime, network or files.
//! (linkerd gets this from its crate graph; one crate here, so a test says it.)

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "kube::Client",
    "kube::Api",
    "kube::api::Api",
    "kube::runtime",
    "tokio",
    "reqwest",
    "std::net",
    "std::fs",
    "std::process",
    "std::thread",
    "SystemTime::now",
    "Timestamp::now",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("source dir is readable")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn api_and_engine_reach_for_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root.join("api"), &mut files);
    rust_files(&root.join("engine"), &mut files);
    assert!(
        files.len() >= 5,
        "found only {} files under src/api and src/engine",
        files.len()
    );
    let mut hits = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source file is readable");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    hits.push(format!("{}:{}: {word}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "the pure core must not do I/O; move this to the controller or CLI:\n{}",
        hits.join("\n")
    );
}
