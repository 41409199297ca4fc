//! Loading the Go-produced golden vectors in tests: `testdata/golden/` of the repository (a copy
//! of the vectors made by running the Go SDK, never edited), plus, when
//! `$OCM_CE_GOLDEN_EXTRA` names a directory, the cases of its files of the same name (e.g. newer
//! vectors from the Go harness) added to each file's.
//!
//! A missing file is a test failure: this panics with the path it tried.

use std::path::PathBuf;

/// The repository's golden directory (`testdata/golden/`).
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

/// Reads and parses `name` (e.g. `events.json`) from the repository's golden directory.
///
/// # Panics
/// When the file is missing or not JSON — golden vectors are mandatory.
pub fn load(name: &str) -> serde_json::Value {
    read(&dir().join(name))
}

fn read(path: &std::path::Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("golden file {} must exist: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("golden file {} is not JSON: {e}", path.display()))
}

/// The `cases` array of golden file `name`, followed by the cases of the file of the same name
/// in `$OCM_CE_GOLDEN_EXTRA` when that is set and has one.
///
/// # Panics
/// As [`load`], or when the file has no `cases` array.
pub fn cases(name: &str) -> Vec<serde_json::Value> {
    let mut all = match load(name).get("cases") {
        Some(serde_json::Value::Array(c)) if !c.is_empty() => c.clone(),
        _ => panic!("golden file {name} has no cases"),
    };
    if let Some(extra) = std::env::var_os("OCM_CE_GOLDEN_EXTRA") {
        let path = PathBuf::from(extra).join(name);
        if path.exists()
            && let Some(serde_json::Value::Array(more)) = read(&path).get("cases")
        {
            all.extend(more.iter().cloned());
        }
    }
    all
}
