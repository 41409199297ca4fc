//! Runs every example and checks that it finishes on its own, successfully, within a few
//! seconds. `cargo test` builds the examples before it runs the tests.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The examples directory of the target directory this test was built into.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap().parent().unwrap().to_owned();
    deps.parent().unwrap().join("examples").join(name)
}

fn run(name: &str, last_line: &str) {
    let path = example(name);
    assert!(
        path.exists(),
        "{} is not built (cargo test builds the examples)",
        path.display()
    );
    let started = Instant::now();
    let out = Command::new(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().last(), Some(last_line), "{name}:\n{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{name} took {:?}",
        started.elapsed()
    );
}

#[test]
fn embedded_broker_runs_to_the_end() {
    run("embedded_broker", "broker stopped");
}

#[test]
fn source_and_agent_run_to_the_end() {
    run("source_and_agent", "done");
}
