//! The `ocm-ce` binary end to end: quickstart, and broker + agent + source as separate
//! processes over gRPC (our broker) and MQTT (a real Mosquitto from `scripts/test-env.sh`), the
//! agent applying into files or into the Kubernetes API server of `scripts/test-env.sh`.

// These tests drive separate processes from plain threads: blocking sleeps are what they need.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::disallowed_methods)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ocm-ce");

fn ocm(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("RUST_LOG", "warn").output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `ocm-ce broker` on a free loopback port and returns it with its address.
fn broker() -> (Proc, String) {
    let mut child = Command::new(BIN)
        .args(["broker", "--listen", "127.0.0.1:0", "--insecure"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap()
        .to_owned();
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (Proc(child), addr)
}

/// A broker address from `scripts/test-env.sh`; `None` (the test is skipped) only outside CI.
fn test_env(var: &str) -> Option<String> {
    let value = std::env::var(var).ok();
    if value.is_none() {
        assert!(std::env::var_os("CI").is_none(), "{var} must be set in CI");
        eprintln!("skipped: {var} not set (run scripts/test-env.sh)");
    }
    value
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

const WORK: &str = r#"
apiVersion: work.open-cluster-management.io/v1
kind: ManifestWork
metadata:
  name: work1
  namespace: cluster1
spec:
  workload:
    manifests:
      - apiVersion: v1
        kind: ConfigMap
        metadata:
          name: cm1
          namespace: default
        data:
          greeting: hello
      - apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: default
        spec:
          replicas: 2
"#;

fn work_dirs(apply: &Path, cluster: &str) -> Vec<PathBuf> {
    std::fs::read_dir(apply.join(cluster))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// apply --wait, get from a restarted source, list, the apply dir, delete --wait; `WORK` sent to
/// `cluster`.
fn lifecycle(transport: &str, source_config: &Path, agent_config: &Path, source_id: &str, cluster: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let apply_dir = tmp.path().join("applied");
    let state = tmp.path().join("state");
    let _agent = Proc(
        Command::new(BIN)
            .args(["agent", "--transport", transport, "--config"])
            .arg(agent_config)
            .args(["--cluster", cluster, "--apply-dir"])
            .arg(&apply_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let manifest = WORK.replace("namespace: cluster1", &format!("namespace: {cluster}"));
    let work = write(tmp.path(), "work.yaml", &manifest);
    let source = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["source", "--transport", transport, "--config"])
            .arg(source_config)
            .args(["--source", source_id, "--state-dir"])
            .arg(&state)
            .args(args);
        cmd.output().unwrap()
    };

    let out = source(&["apply", "-f", work.to_str().unwrap(), "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "apply failed: {}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("work {cluster}/work1 created")),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("type: Applied"), "{}", stdout(&out));

    // The agent wrote the manifests: one directory per work, one file per manifest.
    let dirs = work_dirs(&apply_dir, cluster);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let mut files: Vec<String> = std::fs::read_dir(&dirs[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    // The manifests, and the agent's record of the work it applied.
    assert_eq!(files, [".work.json", "00-configmap-cm1.yaml", "01-deployment-web.yaml"]);
    assert!(
        std::fs::read_to_string(dirs[0].join("00-configmap-cm1.yaml"))
            .unwrap()
            .contains("hello")
    );

    // A new source process (a restart) sees the work and its status.
    let out = source(&["get", "work1", "-n", cluster, "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let conditions = got["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Applied" && c["status"] == "True"),
        "{got}"
    );
    let feedback = &got["status"]["resourceStatus"]["manifests"][1]["statusFeedback"]["values"];
    assert_eq!(feedback[0]["fieldValue"]["integer"], 2, "{got}");

    let out = source(&["list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with(cluster) && l.contains("work1") && l.contains("True")),
        "{}",
        stdout(&out)
    );

    // An update is applied, and a restarted source sees the new status.
    let updated = manifest.replace("greeting: hello", "greeting: bonjour");
    let work2 = write(tmp.path(), "work2.yaml", &updated);
    let out = source(&["apply", "-f", work2.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    until("the agent to write the update", Duration::from_secs(30), || {
        std::fs::read_to_string(dirs[0].join("00-configmap-cm1.yaml")).is_ok_and(|s| s.contains("bonjour"))
    });
    until(
        "a restarted source to see the update applied",
        Duration::from_secs(30),
        || {
            let out = source(&["get", "work1", "-n", cluster, "-o", "json"]);
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Applied" && c["observedGeneration"] == 2)
            })
        },
    );

    let out = source(&["delete", "work1", "-n", cluster, "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        work_dirs(&apply_dir, cluster).is_empty(),
        "the applied files are removed"
    );
    let out = source(&["get", "work1", "-n", cluster]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
}

#[test]
fn quickstart_runs_the_whole_lifecycle_and_prints_every_key() {
    let out = ocm(&["quickstart", "--clusters", "2", "--works", "4", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["works_created"], 8);
    assert_eq!(v["works_deleted"], 8);
    assert_eq!(v["works_updated"], 4);
    assert_eq!(v["complete"], true);
    assert!(v["statuses_received"].as_u64().unwrap() >= 8 * 3, "{v}");
    let (p50, p99) = (v["p50_ms"].as_f64().unwrap(), v["p99_ms"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "{v}");
    assert!(v["works_per_sec"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn separate_processes_complete_a_lifecycle_over_grpc() {
    let (_broker, addr) = broker();
    let tmp = tempfile::tempdir().unwrap();
    let config = write(tmp.path(), "grpc.yaml", &format!("url: {addr}\n"));
    lifecycle("grpc", &config, &config, "source1", "cluster1");
}

#[test]
fn separate_processes_complete_a_lifecycle_over_mosquitto() {
    let Some(host) = test_env("OCM_CE_TEST_MQTT") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // A source id of its own, so parallel runs on one broker do not meet.
    let source_id = format!("cli{}", std::process::id());
    let source = write(
        tmp.path(),
        "source.yaml",
        &format!(
            "brokerHost: {host}\ntopics:\n  sourceEvents: sources/{source_id}/clusters/+/sourceevents\n  agentEvents: sources/{source_id}/clusters/+/agentevents\n  sourceBroadcast: sources/+/sourcebroadcast\n"
        ),
    );
    let agent = write(
        tmp.path(),
        "agent.yaml",
        &format!(
            "brokerHost: {host}\ntopics:\n  sourceEvents: sources/{source_id}/clusters/cluster1/sourceevents\n  agentEvents: sources/{source_id}/clusters/cluster1/agentevents\n  sourceBroadcast: sources/+/sourcebroadcast\n"
        ),
    );
    lifecycle("mqtt", &source, &agent, &source_id, "cluster1");
}

/// Every `ocm-ce source` command is a process of its own that joins the source's consumer
/// group: it must leave the group when it exits, or the next one waits out the session timeout
/// (set to 45 s here, longer than the commands' 30 s connect timeout) for its partitions.
#[cfg(feature = "kafka")]
#[test]
fn separate_processes_complete_a_lifecycle_over_kafka() {
    let Some(bootstrap) = test_env("OCM_CE_TEST_KAFKA") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let id = format!("cli{}", std::process::id());
    let config = |group: &str| {
        format!(
            "bootstrapServer: {bootstrap}\ngroupID: {group}\nsession.timeout.ms: 45000\nheartbeat.interval.ms: 1000\ntopic.metadata.refresh.interval.ms: 1000\n"
        )
    };
    let source = write(tmp.path(), "source.yaml", &config(&format!("{id}-source")));
    let agent = write(tmp.path(), "agent.yaml", &config(&format!("{id}-agent")));
    let started = Instant::now();
    // a cluster of its own: a new agent group reads every source's history for its cluster
    lifecycle("kafka", &source, &agent, &id, &format!("{id}-cluster"));
    eprintln!("kafka CLI lifecycle took {:?}", started.elapsed());
}

#[test]
fn bad_config_and_unreachable_broker_give_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(tmp.path(), "bad.yaml", "brokerHost: \"\"\n");
    let out = ocm(&["config", "check", "--transport", "mqtt", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("brokerHost is required"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let missing = ocm(&[
        "source",
        "--transport",
        "grpc",
        "--config",
        "/nonexistent/grpc.yaml",
        "--source",
        "s",
        "list",
    ]);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("does not exist"), "{}", stderr(&missing));
    assert_eq!(stderr(&missing).trim().lines().count(), 1);

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = write(tmp.path(), "dead.yaml", &format!("url: 127.0.0.1:{port}\n"));
    let state = tmp.path().join("state");
    let out = Command::new(BIN)
        .args([
            "source",
            "--transport",
            "grpc",
            "--config",
            dead.to_str().unwrap(),
            "--source",
            "s",
            "--connect-timeout",
            "2s",
            "--state-dir",
        ])
        .arg(&state)
        .arg("list")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("could not reach the broker"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let good = write(tmp.path(), "good.yaml", "url: 127.0.0.1:8090\n");
    let ok = ocm(&["config", "check", "--transport", "grpc", good.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    let usage = ocm(&["quickstart", "--clusters", "zero"]);
    assert!(!usage.status.success());
    assert!(!stderr(&usage).contains("panicked"));
}

#[test]
fn the_broker_refuses_a_public_address_without_authentication() {
    let out = ocm(&["broker", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refusing to serve"), "{}", stderr(&out));
}

/// `ocm-ce agent --kubeconfig`: broker, agent and source as processes, the agent applying to
/// the real API server of `scripts/test-env.sh`: the objects appear with our field manager and
/// owned by the work's AppliedManifestWork, the status reaches the source, and deleting the work
/// deletes them.
#[test]
fn an_agent_with_a_kubeconfig_applies_works_to_the_cluster() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::{Api, PostParams};

    let Some(kubeconfig) = test_env("OCM_CE_TEST_KUBECONFIG") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let kube = rt
        .block_on(ocm_ce_kube::client_from_kubeconfig(Some(Path::new(&kubeconfig))))
        .unwrap();
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let ns = format!("cli-{unique}");
    let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}})).unwrap();
    rt.block_on(Api::<Namespace>::all(kube.clone()).create(&PostParams::default(), &namespace))
        .unwrap();
    let (_broker, addr) = broker();
    let tmp = tempfile::tempdir().unwrap();
    let config = write(tmp.path(), "grpc.yaml", &format!("url: {addr}\n"));
    let cluster = format!("kube-{unique}");
    let _agent = Proc(
        Command::new(BIN)
            .args(["agent", "--transport", "grpc", "--config"])
            .arg(&config)
            .args([
                "--cluster",
                &cluster,
                "--kubeconfig",
                &kubeconfig,
                "--hub-hash",
                &format!("hub-{unique}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let work = write(
        tmp.path(),
        "work.yaml",
        &format!(
            r#"
apiVersion: work.open-cluster-management.io/v1
kind: ManifestWork
metadata:
  name: work1
  namespace: {cluster}
spec:
  workload:
    manifests:
      - apiVersion: v1
        kind: ConfigMap
        metadata:
          name: cm1
          namespace: {ns}
        data:
          greeting: hello
      - apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
          namespace: {ns}
        spec:
          replicas: 2
          selector:
            matchLabels:
              app: web
          template:
            metadata:
              labels:
                app: web
            spec:
              containers:
                - name: web
                  image: example.invalid/web:1
"#
        ),
    );
    let state = tmp.path().join("state");
    let source = |args: &[&str]| {
        Command::new(BIN)
            .args(["source", "--transport", "grpc", "--config"])
            .arg(&config)
            .args(["--source", "source1", "--state-dir"])
            .arg(&state)
            .args(args)
            .output()
            .unwrap()
    };

    let out = source(&["apply", "-f", work.to_str().unwrap(), "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "apply failed: {}", stderr(&out));
    assert!(stdout(&out).contains("type: Applied"), "{}", stdout(&out));
    let cms = Api::<ConfigMap>::namespaced(kube.clone(), &ns);
    let cm = rt.block_on(cms.get("cm1")).unwrap();
    assert_eq!(cm.data.unwrap()["greeting"], "hello");
    let managers: Vec<_> = cm
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect();
    assert!(managers.contains(&"ocm-ce-agent".to_owned()), "{managers:?}");
    let owners = cm.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "AppliedManifestWork");
    let deployments = Api::<Deployment>::namespaced(kube, &ns);
    assert_eq!(
        rt.block_on(deployments.get("web")).unwrap().spec.unwrap().replicas,
        Some(2)
    );
    let out = source(&["get", "work1", "-n", &cluster, "-o", "json"]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got["status"]["resourceStatus"]["manifests"][1]["resourceMeta"]["resource"], "deployments",
        "{got}"
    );

    let out = source(&["delete", "work1", "-n", &cluster, "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        rt.block_on(cms.get_opt("cm1")).unwrap().is_none(),
        "deleted with the work"
    );
    assert!(rt.block_on(deployments.get_opt("web")).unwrap().is_none());
}

#[test]
fn tokens_without_tls_are_refused_with_the_flags_that_fix_it() {
    let tmp = tempfile::tempdir().unwrap();
    let tokens = write(tmp.path(), "tokens.yaml", "tokens: []\n");
    let out = ocm(&[
        "broker",
        "--listen",
        "127.0.0.1:0",
        "--tokens",
        tokens.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("--tokens needs TLS: pass --tls-cert and --tls-key"),
        "{err}"
    );
}

/// Reads `stderr` lines of `child` until one announces the endpoints' address; the rest of the
/// output is drained in the background.
fn endpoints_addr(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the process ended before serving its endpoints")
            .unwrap();
        if let Some(rest) = line.strip_prefix("serving /metrics, /healthz and /readyz on http://") {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    addr
}

/// `GET path` over HTTP/1.0: (status code, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut tcp) = std::net::TcpStream::connect(addr) else {
        return (0, String::new());
    };
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text);
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// The value of the sample `name{labels}` in an OpenMetrics text, if present.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[test]
fn agent_and_source_serve_go_metrics_and_health_probes() {
    let (broker_proc, addr) = broker();
    let tmp = tempfile::tempdir().unwrap();
    let config = write(tmp.path(), "grpc.yaml", &format!("url: {addr}\n"));
    let ops = ["--metrics-addr", "127.0.0.1:0", "--health-addr", "127.0.0.1:0"];
    let mut agent = Proc(
        Command::new(BIN)
            .args(["agent", "--transport", "grpc", "--config"])
            .arg(&config)
            .args(["--cluster", "cluster1", "--apply-dir"])
            .arg(tmp.path().join("applied"))
            .args(ops)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let agent_ops = endpoints_addr(&mut agent.0);
    assert_eq!(http_get(&agent_ops, "/healthz").0, 200);
    until("the agent to be ready", Duration::from_secs(20), || {
        http_get(&agent_ops, "/readyz").0 == 200
    });
    // The source's start-up status resync reaches the agent, whose spec resync request (sent
    // when it first hears from a source) reaches the source: both observe Go's histograms.
    let mut source = Proc(
        Command::new(BIN)
            .args(["source", "--transport", "grpc", "--config"])
            .arg(&config)
            .args(["--source", "src1", "--state-dir"])
            .arg(tmp.path().join("state"))
            .args(ops)
            .args(["watch"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let source_ops = endpoints_addr(&mut source.0);
    until("the source to be ready", Duration::from_secs(20), || {
        http_get(&source_ops, "/readyz").0 == 200
    });
    let labels =
        r#"{source="src1",cluster="cluster1",type="io.open-cluster-management.works.v1alpha1.manifestbundles"}"#;
    let status_resyncs = format!("resources_status_resync_duration_seconds_count{labels}");
    let spec_resyncs = format!("resources_spec_resync_duration_seconds_count{labels}");
    until("the resync histograms", Duration::from_secs(20), || {
        sample(&http_get(&agent_ops, "/metrics").1, &status_resyncs).is_some_and(|n| n >= 1.0)
            && sample(&http_get(&source_ops, "/metrics").1, &spec_resyncs).is_some_and(|n| n >= 1.0)
    });
    for (ops, names) in [
        (
            &agent_ops,
            ["resources_status_resync_duration_seconds", "ocm_ce_work_specs_applied"],
        ),
        (
            &source_ops,
            ["resources_spec_resync_duration_seconds", "ocm_ce_work_statuses_applied"],
        ),
    ] {
        let (code, text) = http_get(ops, "/metrics");
        assert_eq!(code, 200);
        for name in names.iter().chain(&["cloudevents_reconnects"]) {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} missing:\n{text}");
        }
        // Go's help texts, word for word.
        let help = if names[0].contains("status") { "status" } else { "spec" };
        assert!(
            text.lines().any(|l| l
                == format!(
                    "# HELP {} The duration of the resource {help} resync in seconds.",
                    names[0]
                )),
            "Go's help text:\n{text}"
        );
        assert!(
            text.contains("le=\"0.1\"") && text.contains("le=\"30.0\""),
            "Go's buckets:\n{text}"
        );
    }
    // Without its broker, neither is ready; both stay alive.
    drop(broker_proc);
    until(
        "the agent and the source to be unready",
        Duration::from_secs(30),
        || http_get(&agent_ops, "/readyz").0 == 503 && http_get(&source_ops, "/readyz").0 == 503,
    );
    assert_eq!(http_get(&agent_ops, "/healthz").0, 200);
    assert_eq!(http_get(&source_ops, "/healthz").0, 200);
    assert_eq!(http_get(&agent_ops, "/other").0, 404);
}
