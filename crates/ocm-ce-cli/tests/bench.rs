//! `ocm-ce bench` end to end on the embedded gRPC broker: in one process with the in-memory
//! applier (the default) and into a directory, and with `--processes` (a broker process and an
//! agent process per cluster), checking that the JSON carries every figure.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ocm-ce");

fn bench(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .args(["--timeout", "60s"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn report(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {stdout}"))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

/// The lifecycle figures every report has, consistent with `works` works of which `updated`
/// were updated.
fn check_lifecycle(r: &Value, works: u64, updated: u64) {
    assert_eq!(r["complete"], true, "{r}");
    assert_eq!(r["works"].as_u64(), Some(works), "{r}");
    assert_eq!(r["works_created"].as_u64(), Some(works), "{r}");
    assert_eq!(r["works_deleted"].as_u64(), Some(works), "{r}");
    assert_eq!(r["works_updated"].as_u64(), Some(updated), "{r}");
    // Applied, the update's Applied (when updated) and Deleted at least, per work.
    assert!(r["statuses_received"].as_u64().unwrap() >= 2 * works + updated, "{r}");
    assert_eq!(r["transport"], "grpc", "{r}");
    assert!(num(r, "works_per_sec") > 0.0, "{r}");
    assert!(num(r, "elapsed_s") > 0.0, "{r}");
    let (p50, p99, max) = (num(r, "p50_ms"), num(r, "p99_ms"), num(r, "max_ms"));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{r}");
    let phases = ["apply_s", "update_s", "delete_s"].map(|k| num(r, k));
    assert!(phases[0] > 0.0 && phases[2] > 0.0, "{r}");
    assert!(phases.iter().sum::<f64>() <= num(r, "elapsed_s") + 1e-6, "{r}");
}

/// Each process entry has its role, pid, CPU and peak RSS; returns the roles (with clusters).
fn check_processes(r: &Value) -> Vec<String> {
    let processes = r["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("no processes in {r}"));
    let mut roles = Vec::new();
    for p in processes {
        assert!(p["pid"].as_u64().unwrap() > 0, "{p}");
        assert!(num(p, "cpu_s") >= 0.0, "{p}");
        assert!(num(p, "cpu_ms_per_work") >= 0.0, "{p}");
        assert!(
            num(p, "peak_rss_mb") > 1.0,
            "a process's peak RSS is at least a MiB: {p}"
        );
        let role = p["role"].as_str().unwrap().to_owned();
        roles.push(match p["cluster"].as_str() {
            Some(c) => format!("{role} {c}"),
            None => role,
        });
    }
    let total: f64 = processes.iter().map(|p| num(p, "cpu_s")).sum();
    assert!((num(r, "cpu_s") - total).abs() < 1e-6, "{r}");
    roles
}

#[test]
fn bench_in_one_process_applies_in_memory_and_reports_every_figure() {
    let r = report(&bench(&["--works", "50", "--json"]));
    // The defaults: 4 clusters, every second work updated, in memory, in one process.
    check_lifecycle(&r, 200, 100);
    assert_eq!(r["apply"], "memory", "{r}");
    assert_eq!(r["mode"], "in-process", "{r}");
    assert_eq!(r["clusters"].as_u64(), Some(4), "{r}");
    assert_eq!(r["works_per_cluster"].as_u64(), Some(50), "{r}");
    assert_eq!(check_processes(&r), ["bench"]);
}

#[test]
fn bench_into_a_directory_leaves_it_empty_and_memory_refuses_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let apply_dir = dir.path().to_str().unwrap();
    let r = report(&bench(&[
        "--works",
        "10",
        "--clusters",
        "1",
        "--update-all",
        "--apply",
        "dir",
        "--apply-dir",
        apply_dir,
        "--json",
    ]));
    check_lifecycle(&r, 10, 10);
    assert_eq!(r["apply"], "dir", "{r}");
    // Every work was deleted: no work directory is left.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("cluster1"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");

    let out = bench(&["--works", "1", "--apply-dir", apply_dir]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--apply-dir is for --apply dir"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bench_with_processes_reports_each_process() {
    let r = report(&bench(&[
        "--processes",
        "--works",
        "20",
        "--clusters",
        "2",
        "--update-all",
        "--json",
    ]));
    check_lifecycle(&r, 40, 40);
    assert_eq!(r["mode"], "processes", "{r}");
    assert_eq!(r["update_every"].as_u64(), Some(1), "{r}");
    let mut roles = check_processes(&r);
    roles.sort();
    assert_eq!(roles, ["agent cluster1", "agent cluster2", "broker", "source"]);
    let pids: std::collections::HashSet<u64> = r["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 4, "one process each: {r}");
    // The agents worked: each spent CPU on its 20 works.
    for p in r["processes"].as_array().unwrap() {
        if p["role"] == "agent" {
            assert!(num(p, "cpu_s") > 0.0, "{p}");
        }
    }
}
