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

/// `ocm-ce source --transport <transport> --config <config> --source <source_id> --state-dir <state>`,
/// for more arguments.
fn source_cmd(transport: &str, config: &Path, source_id: &str, state: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["source", "--transport", transport, "--config"])
        .arg(config)
        .args(["--source", source_id, "--state-dir"])
        .arg(state);
    cmd
}

/// `ocm-ce agent --transport <transport> --config <config> --cluster <cluster>`, for more
/// arguments.
fn agent_cmd(transport: &str, config: &Path, cluster: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["agent", "--transport", transport, "--config"])
        .arg(config)
        .args(["--cluster", cluster]);
    cmd
}

fn work_dirs(apply: &Path, cluster: &str) -> Vec<PathBuf> {
    std::fs::read_dir(apply.join(cluster))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// apply --wait, get from a restarted source, list, the apply dir, delete --wait; `WORK` sent to
/// `cluster`. The source's and the agent's config files have the given contents.
fn lifecycle(transport: &str, source_config: &str, agent_config: &str, source_id: &str, cluster: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let source_config = &write(tmp.path(), "source.yaml", source_config);
    let agent_config = &write(tmp.path(), "agent.yaml", agent_config);
    let apply_dir = tmp.path().join("applied");
    let state = tmp.path().join("state");
    let _agent = Proc(
        agent_cmd(transport, agent_config, cluster)
            .arg("--apply-dir")
            .arg(&apply_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let manifest = WORK.replace("namespace: cluster1", &format!("namespace: {cluster}"));
    let work = write(tmp.path(), "work.yaml", &manifest);
    let source = |args: &[&str]| {
        source_cmd(transport, source_config, source_id, &state)
            .args(args)
            .output()
            .unwrap()
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
    let config = format!("url: {addr}\n");
    lifecycle("grpc", &config, &config, "source1", "cluster1");
}

#[test]
fn separate_processes_complete_a_lifecycle_over_mosquitto() {
    let Some(host) = test_env("OCM_CE_TEST_MQTT") else {
        return;
    };
    // A source id of its own, so parallel runs on one broker do not meet.
    let source_id = format!("cli{}", std::process::id());
    // The source's topics name every cluster (`+`), the agent's its own.
    let config = |clusters: &str| {
        format!(
            "brokerHost: {host}\ntopics:\n  sourceEvents: sources/{source_id}/clusters/{clusters}/sourceevents\n  agentEvents: sources/{source_id}/clusters/{clusters}/agentevents\n  sourceBroadcast: sources/+/sourcebroadcast\n"
        )
    };
    lifecycle("mqtt", &config("+"), &config("cluster1"), &source_id, "cluster1");
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
    let id = format!("cli{}", std::process::id());
    let config = |group: &str| {
        format!(
            "bootstrapServer: {bootstrap}\ngroupID: {group}\nsession.timeout.ms: 45000\nheartbeat.interval.ms: 1000\ntopic.metadata.refresh.interval.ms: 1000\n"
        )
    };
    let started = Instant::now();
    // a cluster of its own: a new agent group reads every source's history for its cluster
    lifecycle(
        "kafka",
        &config(&format!("{id}-source")),
        &config(&format!("{id}-agent")),
        &id,
        &format!("{id}-cluster"),
    );
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
    let out = source_cmd("grpc", &dead, "s", &state)
        .args(["--connect-timeout", "2s", "list"])
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

/// The API server of `scripts/test-env.sh` for a test: its admin kubeconfig, a client, a runtime
/// to drive the client, and a suffix no other test run uses (tests share the API server).
struct KubeTest {
    kubeconfig: String,
    rt: tokio::runtime::Runtime,
    kube: kube::Client,
    unique: String,
}

impl KubeTest {
    /// `None` (the test is skipped) only outside CI.
    fn start() -> Option<Self> {
        let kubeconfig = test_env("OCM_CE_TEST_KUBECONFIG")?;
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
        Some(Self {
            kubeconfig,
            rt,
            kube,
            unique,
        })
    }

    fn create_namespace(&self, name: &str) {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Api, PostParams};
        let namespace: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        self.rt
            .block_on(Api::<Namespace>::all(self.kube.clone()).create(&PostParams::default(), &namespace))
            .unwrap();
    }

    /// `ocm-ce agent --kubeconfig` for `cluster` (its records under the hub hash `hub-<unique>`).
    fn agent(&self, config: &Path, cluster: &str) -> Proc {
        Proc(
            agent_cmd("grpc", config, cluster)
                .args([
                    "--kubeconfig",
                    &self.kubeconfig,
                    "--hub-hash",
                    &format!("hub-{}", self.unique),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

/// The field managers of an object.
fn managers(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Vec<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.manager.clone())
        .collect()
}

/// `ocm-ce agent --kubeconfig`: broker, agent and source as processes, the agent applying to
/// the real API server of `scripts/test-env.sh`: the objects appear with our field manager and
/// owned by the work's AppliedManifestWork, the status reaches the source, and deleting the work
/// deletes them.
#[test]
fn an_agent_with_a_kubeconfig_applies_works_to_the_cluster() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::Api;

    let Some(kt) = KubeTest::start() else {
        return;
    };
    let (rt, unique) = (&kt.rt, &kt.unique);
    let ns = format!("cli-{unique}");
    kt.create_namespace(&ns);
    let (_broker, addr) = broker();
    let tmp = tempfile::tempdir().unwrap();
    let config = write(tmp.path(), "grpc.yaml", &format!("url: {addr}\n"));
    let cluster = format!("kube-{unique}");
    let _agent = kt.agent(&config, &cluster);
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
        source_cmd("grpc", &config, "source1", &state)
            .args(args)
            .output()
            .unwrap()
    };

    let out = source(&["apply", "-f", work.to_str().unwrap(), "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "apply failed: {}", stderr(&out));
    assert!(stdout(&out).contains("type: Applied"), "{}", stdout(&out));
    let cms = Api::<ConfigMap>::namespaced(kt.kube.clone(), &ns);
    let cm = rt.block_on(cms.get("cm1")).unwrap();
    let managers = managers(&cm.metadata);
    assert!(managers.contains(&"ocm-ce-agent".to_owned()), "{managers:?}");
    assert_eq!(cm.data.unwrap()["greeting"], "hello");
    let owners = cm.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "AppliedManifestWork");
    let deployments = Api::<Deployment>::namespaced(kt.kube.clone(), &ns);
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
        agent_cmd("grpc", &config, "cluster1")
            .arg("--apply-dir")
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
        source_cmd("grpc", &config, "src1", &tmp.path().join("state"))
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

/// Prints what its function returns (e.g. the logs of a process) when the test fails.
struct DumpOnPanic<F: Fn() -> String>(F);

impl<F: Fn() -> String> Drop for DumpOnPanic<F> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", (self.0)());
        }
    }
}

/// Stops `proc` with SIGTERM and returns its exit code (`None` when it had to be killed).
fn terminate(proc: &mut Proc, timeout: Duration) -> Option<i32> {
    let _ = Command::new("kill").args(["-TERM", &proc.0.id().to_string()]).status();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = proc.0.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The whole path on the real API server of `scripts/test-env.sh`, which plays both the hub and
/// the managed cluster: a ManifestWork created in the hub API (namespace = cluster) is served
/// by `ocm-ce hub` through the broker to `ocm-ce agent --kubeconfig`, which applies its
/// ConfigMap; the agent's status lands in the hub object; an update (after a hub restart)
/// reaches the ConfigMap; deleting the ManifestWork deletes the ConfigMap and then the object.
#[test]
fn a_hub_serves_the_manifest_works_of_its_api_server_to_a_kube_agent() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    use ocm_ce_work::ManifestWork;

    let Some(kt) = KubeTest::start() else {
        return;
    };
    let (rt, unique, kubeconfig) = (&kt.rt, &kt.unique, &kt.kubeconfig);
    let (ns, cluster) = (format!("hubcm-{unique}"), format!("hubc-{unique}"));
    kt.create_namespace(&ns);
    kt.create_namespace(&cluster);
    let (_broker, addr) = broker();
    let tmp = tempfile::tempdir().unwrap();
    let config = write(tmp.path(), "grpc.yaml", &format!("url: {addr}\n"));
    let source_id = format!("hub-{unique}");
    let log_of = |run: u32| std::fs::read_to_string(tmp.path().join(format!("hub-{run}.log"))).unwrap_or_default();
    let hub = |run: u32| {
        let proc = Proc(
            Command::new(BIN)
                .args(["hub", "--transport", "grpc", "--config"])
                .arg(&config)
                .args([
                    "--source",
                    &source_id,
                    "--kubeconfig",
                    kubeconfig,
                    "--resync-interval",
                    "1s",
                    "--gc-owner",
                    "v1/ConfigMap",
                    // Only this test's works (tests share the API server).
                    "--selector",
                    &format!("test={unique}"),
                ])
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(tmp.path().join(format!("hub-{run}.log"))).unwrap())
                .spawn()
                .unwrap(),
        );
        until("the hub subscribed", Duration::from_secs(30), || {
            log_of(run).contains("subscription confirmed")
        });
        proc
    };
    let mut hub_proc = hub(1);
    let _dump = DumpOnPanic(|| format!("hub 1:\n{}\nhub 2:\n{}", log_of(1), log_of(2)));
    let _agent = kt.agent(&config, &cluster);
    let work = |greeting: &str| -> ManifestWork {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "work.open-cluster-management.io/v1",
            "kind": "ManifestWork",
            "metadata": {"name": "work1", "namespace": cluster, "labels": {"test": unique}},
            "spec": {"workload": {"manifests": [{
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cm1", "namespace": ns},
                "data": {"greeting": greeting},
            }]}},
        }))
        .unwrap()
    };
    let works = Api::<ManifestWork>::namespaced(kt.kube.clone(), &cluster);
    let cms = Api::<ConfigMap>::namespaced(kt.kube.clone(), &ns);
    let wait = Duration::from_secs(60);
    let greeting = |cm: &Option<ConfigMap>| {
        cm.as_ref()
            .and_then(|c| c.data.as_ref())
            .and_then(|d| d.get("greeting").cloned())
    };
    // Applied=True observing `generation`, on the hub object.
    let applied_at = |generation: i64| {
        rt.block_on(works.get_opt("work1")).unwrap().is_some_and(|w| {
            w.status
                .conditions
                .iter()
                .any(|c| c.type_ == "Applied" && c.status == "True" && c.observed_generation == Some(generation))
        })
    };

    let started = Instant::now();
    let created = rt
        .block_on(works.create(&PostParams::default(), &work("hello")))
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    until("the ConfigMap applied by the agent", wait, || {
        greeting(&rt.block_on(cms.get_opt("cm1")).unwrap()).as_deref() == Some("hello")
    });
    let managers = managers(&rt.block_on(cms.get("cm1")).unwrap().metadata);
    assert!(managers.contains(&"ocm-ce-agent".to_owned()), "{managers:?}");
    until("Applied=True observing generation 1 on the hub object", wait, || {
        applied_at(1)
    });
    let served = rt.block_on(works.get("work1")).unwrap();
    assert!(
        served.finalizers().contains(&ocm_ce_kube::HUB_FINALIZER.to_owned()),
        "{:?}",
        served.finalizers()
    );
    assert_eq!(served.status.resource_status.manifests.len(), 1, "{:?}", served.status);
    assert_eq!(served.status.resource_status.manifests[0].resource_meta.name, "cm1");
    eprintln!("create -> Applied on the hub object: {:?}", started.elapsed());

    // Updates, served by a running hub and by a restarted one (which resumes from the API).
    let update = |greeting_now: &str, generation: i64| {
        let patch = serde_json::json!({"spec": {"workload": {"manifests": [{
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm1", "namespace": ns},
            "data": {"greeting": greeting_now},
        }]}}});
        let updated = rt
            .block_on(works.patch("work1", &PatchParams::default(), &Patch::Merge(patch)))
            .unwrap();
        assert_eq!(updated.metadata.generation, Some(generation));
        until("the update reaching the ConfigMap", wait, || {
            greeting(&rt.block_on(cms.get_opt("cm1")).unwrap()).as_deref() == Some(greeting_now)
        });
        until(
            "Applied=True observing the new generation on the hub object",
            wait,
            || applied_at(generation),
        );
    };
    update("bonjour", 2);
    assert!(log_of(1).contains("updated"), "{}", log_of(1));
    assert_eq!(
        terminate(&mut hub_proc, wait),
        Some(0),
        "SIGTERM ends the hub cleanly: {}",
        log_of(1)
    );
    hub_proc = hub(2);
    assert!(
        log_of(1).contains("(0 there)") && log_of(2).contains("(1 there)"),
        "the hub serves only the works its selector matches"
    );
    update("hallo", 3);
    assert!(log_of(2).contains("updated"), "{}", log_of(2));

    // The garbage collector: a work owned by a ConfigMap of the hub goes when its owner goes
    // (this API server has no kube-controller-manager, so only the hub's collector does that).
    let owners = Api::<ConfigMap>::namespaced(cms.clone().into_client(), &cluster);
    let owner: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "owner"}})).unwrap();
    let owner = rt.block_on(owners.create(&PostParams::default(), &owner)).unwrap();
    let mut owned = work("owned");
    owned.metadata.name = Some("work2".into());
    owned.spec.workload.manifests = vec![
        ocm_ce_work::Manifest::from_raw(
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "cm2", "namespace": ns}, "data": {"greeting": "owned"}})
            .to_string(),
        )
        .unwrap(),
    ];
    owned.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.unwrap(),
        ..Default::default()
    }]);
    rt.block_on(works.create(&PostParams::default(), &owned)).unwrap();
    until("the owned work's ConfigMap", wait, || {
        greeting(&rt.block_on(cms.get_opt("cm2")).unwrap()).as_deref() == Some("owned")
    });
    rt.block_on(owners.delete("owner", &DeleteParams::default())).unwrap();
    until("the owned work collected with its owner", wait, || {
        rt.block_on(works.get_opt("work2")).unwrap().is_none()
    });
    assert!(
        rt.block_on(cms.get_opt("cm2")).unwrap().is_none(),
        "its ConfigMap went before it"
    );
    assert!(
        rt.block_on(works.get_opt("work1")).unwrap().is_some(),
        "the other work stays"
    );

    rt.block_on(works.delete("work1", &DeleteParams::default())).unwrap();
    until("the ConfigMap deleted with the work", wait, || {
        rt.block_on(cms.get_opt("cm1")).unwrap().is_none()
    });
    until("the ManifestWork gone from the hub (finalizer removed)", wait, || {
        rt.block_on(works.get_opt("work1")).unwrap().is_none()
    });
    assert_eq!(terminate(&mut hub_proc, wait), Some(0), "{}", log_of(2));
    assert!(log_of(2).contains("removing the finalizer"), "{}", log_of(2));
    eprintln!("whole lifecycle: {:?}", started.elapsed());
}
