//! `ocm-ce bench` on a Kafka broker that has never seen a topic, as a new user runs it: a
//! config file with nothing but `bootstrapServer`, the default topic discovery interval. The
//! test starts a Kafka of its own (`scripts/test-env.sh start DIR --kafka-only --no-kube`, the
//! script named by `OCM_CE_TEST_ENV_SCRIPT`) so that no topic exists, runs the bench, then
//! aborts a second run with SIGINT and checks that the run after it is not held up by what the
//! aborted one left behind (Kafka keeps a consumer group member that vanished without leaving
//! for its 45 s session timeout). Skipped when the variable is unset, unless `CI` is set. Every
//! wait is bounded.

#![cfg(feature = "kafka")]
// These tests drive separate processes from plain threads: blocking sleeps are what they need.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ocm-ce");

/// How long Kafka keeps the partitions of a member that vanished without leaving its group.
const SESSION_TIMEOUT: Duration = Duration::from_secs(45);

/// A single-node Kafka started for this test alone; stopped on drop.
struct FreshKafka {
    script: PathBuf,
    dir: tempfile::TempDir,
    bootstrap: String,
}

impl FreshKafka {
    fn start(script: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script)
            .arg("start")
            .arg(dir.path())
            .args(["--kafka-only", "--no-kube"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "starting a fresh Kafka failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env")).unwrap();
        let bootstrap = env
            .lines()
            .find_map(|l| l.strip_prefix("export OCM_CE_TEST_KAFKA="))
            .map(|v| v.trim_matches('\'').to_owned())
            .expect("OCM_CE_TEST_KAFKA in the env file");
        Self {
            script: script.to_owned(),
            dir,
            bootstrap,
        }
    }

    fn topics(&self) -> Vec<String> {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg("kafka-topics")
            .arg(self.dir.path())
            .arg("--list")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|t| !t.is_empty() && !t.starts_with("__"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for FreshKafka {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

fn bench(config: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["bench", "--transport", "kafka", "--config"])
        .arg(config)
        .args(["--clusters", "2", "--json", "--timeout", "120s"])
        .args(extra)
        .env("RUST_LOG", "warn");
    c
}

/// Runs a bench to its end (killed after `limit`), returning its output and how long it took.
fn run_bench(config: &Path, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = bench(config, &["--works", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

fn summary(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "bench output is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn kafka_bench_works_the_first_time_on_a_fresh_broker_and_right_after_an_aborted_run() {
    let Some(script) = std::env::var_os("OCM_CE_TEST_ENV_SCRIPT") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "OCM_CE_TEST_ENV_SCRIPT must be set in CI"
        );
        eprintln!("skipped: OCM_CE_TEST_ENV_SCRIPT not set (run scripts/test-env.sh)");
        return;
    };
    let kafka = FreshKafka::start(Path::new(&script));
    assert!(kafka.topics().is_empty(), "not fresh: {:?}", kafka.topics());
    let config = kafka.dir.path().join("kafka.yaml");
    std::fs::write(&config, format!("bootstrapServer: {}\n", kafka.bootstrap)).unwrap();

    // 1. The first run on the fresh broker completes (it used to wait for the topics forever).
    let (out, took) = run_bench(&config, Duration::from_secs(150));
    assert!(
        out.status.success(),
        "first run failed after {took:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(summary(&out)["works_created"], 100);
    eprintln!("first run on a fresh broker: {took:?}");
    let topics = kafka.topics();
    for t in [
        "sourcebroadcast.ocm-ce-bench",
        "agentbroadcast.cluster1",
        "sourceevents.ocm-ce-bench.cluster1",
        "agentevents.ocm-ce-bench.cluster2",
    ] {
        assert!(topics.iter().any(|x| x == t), "{t} missing from {topics:?}");
    }

    // 2. A run aborted with SIGINT while its clients are members of their groups stops on its
    //    own, closing them. (It creates works slowly: what it leaves unapplied is read by the
    //    next run's agents, and a large backlog would blur the timing below.)
    let mut aborted = bench(&config, &["--works", "5000", "--rate", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(8));
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &aborted.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    while aborted.try_wait().unwrap().is_none() {
        if signalled.elapsed() > Duration::from_secs(30) {
            let _ = aborted.kill();
            panic!("the aborted run did not stop within 30 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let aborted = aborted.wait_with_output().unwrap();
    assert!(!aborted.status.success());
    let err = String::from_utf8_lossy(&aborted.stderr);
    assert!(err.contains("interrupted"), "{err}");
    eprintln!("the aborted run stopped {:?} after SIGINT", signalled.elapsed());

    // 3. The next run starts at once: its consumers do not wait out the aborted run's members.
    //    Its time before the lifecycle began (the process's time minus the lifecycle's) is
    //    connecting and subscribing; a group member left behind would hold a subscription up
    //    for the session timeout.
    let (out, took) = run_bench(&config, Duration::from_secs(150));
    assert!(
        out.status.success(),
        "the run after the aborted one failed after {took:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lifecycle = Duration::from_secs_f64(summary(&out)["elapsed_s"].as_f64().unwrap());
    let before = took.saturating_sub(lifecycle);
    eprintln!("the run right after the aborted one: {took:?}, of which {before:?} before the lifecycle began");
    assert!(
        before < SESSION_TIMEOUT / 3,
        "{before:?} before the lifecycle began: held up by the aborted run's group members?"
    );
}
