//! Loading the Go-produced golden vectors (`shared/golden` beside the repository) in tests.
//!
//! The files are read at test time and never copied into the repository. A missing file is a
//! test failure: this panics with the path it tried.

use std::path::PathBuf;

/// The golden directory: `$OCM_CE_GOLDEN_DIR`, else `../shared/golden` next to the repository.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OCM_CE_GOLDEN_DIR") {
        return PathBuf::from(d);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden")
}

/// Reads and parses `name` (e.g. `events.json`).
///
/// # Panics
/// When the file is missing or not JSON — golden vectors are mandatory.
pub fn load(name: &str) -> serde_json::Value {
    let path = dir().join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("golden file {} must exist: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("golden file {} is not JSON: {e}", path.display()))
}

/// The `cases` array of golden file `name`.
///
/// # Panics
/// As [`load`], or when the file has no `cases` array.
pub fn cases(name: &str) -> Vec<serde_json::Value> {
    match load(name).get("cases") {
        Some(serde_json::Value::Array(c)) if !c.is_empty() => c.clone(),
        _ => panic!("golden file {name} has no cases"),
    }
}
