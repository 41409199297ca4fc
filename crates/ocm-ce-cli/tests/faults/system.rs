//! One system under test: a broker (our gRPC broker, a Mosquitto of its own, or the shared
//! Kafka of `scripts/test-env.sh`), a long-running source (`ocm-ce source … sync` over a
//! directory of ManifestWork files), and one `ocm-ce agent` per cluster with a file applier —
//! every part a real process on loopback, each of which can be killed and restarted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::proxy::Proxy;

/// The `ocm-ce` binary: `OCM_CE_BIN` (the release build CI makes first) or this package's.
pub fn bin() -> PathBuf {
    std::env::var_os("OCM_CE_BIN")
        .map(PathBuf::from)
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ocm-ce")))
}

/// A child process, killed on drop; its stderr goes to a log file.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        Self { child, log }
    }

    /// Waits until its log has a line containing `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !std::fs::read_to_string(&self.log).unwrap_or_default().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in {} within {within:?}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit; returns its exit code (`None` if killed by a signal).
    pub fn terminate(mut self, within: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "process did not stop within {within:?} after SIGTERM; log {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn wait_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr} after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Which broker, and the settings its clients need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Grpc,
    Mqtt,
    Kafka,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Mqtt => "mqtt",
            Self::Kafka => "kafka",
        }
    }
}

/// Options of a system.
#[derive(Debug, Clone)]
pub struct Options {
    pub clusters: Vec<String>,
    /// Clients reach the broker through a [`Proxy`].
    pub proxy: bool,
    /// Extra arguments of `ocm-ce broker` (gRPC).
    pub broker_args: Vec<String>,
}

impl Options {
    pub fn clusters(n: usize) -> Self {
        Self {
            clusters: (1..=n).map(|i| format!("cluster{i}")).collect(),
            proxy: false,
            broker_args: Vec::new(),
        }
    }
}

enum Broker {
    Grpc {
        port: u16,
        args: Vec<String>,
        proc: Option<Proc>,
    },
    Mqtt {
        port: u16,
        conf: PathBuf,
        proc: Option<Proc>,
    },
    Kafka {
        bootstrap: String,
    },
}

/// One desired work: what the source's file says.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub manifests: Vec<Value>,
}

pub struct System {
    pub kind: Kind,
    pub root: tempfile::TempDir,
    pub source_id: String,
    pub clusters: Vec<String>,
    /// The clusters the invariant is checked for (all, unless a scenario leaves one out).
    pub checked: Vec<String>,
    broker: Broker,
    pub proxy: Option<Proxy>,
    source: Option<Proc>,
    agents: BTreeMap<String, Proc>,
    /// What the works directory holds, by (namespace, name).
    pub desired: BTreeMap<(String, String), Want>,
    /// Which file each desired work is in.
    files: BTreeMap<(String, String), String>,
}

fn scratch() -> tempfile::TempDir {
    // Files (works, records, the source's database) stay off the disk: the suite measures the
    // protocol, not the file system.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("ocm-ce-faults")
            .tempdir_in(shm)
            .unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn test_env_script(command: &str, args: &[&str]) {
    let script = std::env::var("OCM_CE_TEST_ENV_SCRIPT").expect("OCM_CE_TEST_ENV_SCRIPT");
    let state = std::env::var("OCM_CE_TEST_STATE_DIR").expect("OCM_CE_TEST_STATE_DIR");
    let out = Command::new("bash")
        .arg(script)
        .arg(command)
        .arg(state)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "test-env.sh {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl System {
    /// Starts the broker, the agents and the source (no works yet).
    pub fn start(kind: Kind, options: Options) -> Self {
        let root = scratch();
        let source_id = format!("src{}x{}", std::process::id(), rand_suffix());
        for d in ["works", "state", "apply", "logs"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        let broker = match kind {
            Kind::Grpc => Broker::Grpc {
                port: free_port(),
                args: options.broker_args.clone(),
                proc: None,
            },
            Kind::Mqtt => {
                let port = free_port();
                let conf = root.path().join("mosquitto.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "user root\npersistence false\nallow_anonymous true\nmax_queued_messages 100000\nset_tcp_nodelay true\nlistener {port} 127.0.0.1\nlog_dest stderr\n"
                    ),
                )
                .unwrap();
                Broker::Mqtt { port, conf, proc: None }
            }
            Kind::Kafka => Broker::Kafka {
                bootstrap: std::env::var("OCM_CE_TEST_KAFKA").expect("OCM_CE_TEST_KAFKA"),
            },
        };
        // A Kafka agent reads every source's topics of its cluster, also those earlier runs left
        // on the shared broker: the clusters get names of their own.
        let clusters = if kind == Kind::Kafka {
            options.clusters.iter().map(|c| format!("{c}-{source_id}")).collect()
        } else {
            options.clusters.clone()
        };
        let mut sys = Self {
            kind,
            root,
            source_id,
            checked: clusters.clone(),
            clusters,
            broker,
            proxy: None,
            source: None,
            agents: BTreeMap::new(),
            desired: BTreeMap::new(),
            files: BTreeMap::new(),
        };
        sys.start_broker();
        if options.proxy {
            sys.proxy = Some(Proxy::start(sys.broker_addr()));
        }
        if kind == Kind::Kafka {
            sys.create_kafka_topics();
        }
        sys.write_configs();
        for c in sys.clusters.clone() {
            sys.start_agent(&c);
        }
        sys.start_source();
        sys
    }

    fn create_kafka_topics(&self) {
        let mut topics = vec![format!("sourcebroadcast.{}", self.source_id)];
        for c in &self.clusters {
            topics.push(format!("sourceevents.{}.{c}", self.source_id));
            topics.push(format!("agentevents.{}.{c}", self.source_id));
            topics.push(format!("agentbroadcast.{c}"));
        }
        std::thread::scope(|s| {
            for t in &topics {
                s.spawn(move || {
                    test_env_script(
                        "kafka-topics",
                        &["--create", "--if-not-exists", "--topic", t, "--partitions", "1"],
                    );
                });
            }
        });
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn broker_addr(&self) -> SocketAddr {
        match &self.broker {
            Broker::Grpc { port, .. } | Broker::Mqtt { port, .. } => format!("127.0.0.1:{port}").parse().unwrap(),
            Broker::Kafka { bootstrap } => bootstrap.parse().unwrap(),
        }
    }

    /// Where the clients connect: the proxy, or the broker.
    fn client_addr(&self) -> SocketAddr {
        self.proxy.as_ref().map_or_else(|| self.broker_addr(), |p| p.addr)
    }

    fn write_configs(&self) {
        let addr = self.client_addr();
        let src = &self.source_id;
        match self.kind {
            Kind::Grpc => {
                // Heartbeats from the broker (`--heartbeat 1`) detect a silent path in 3 s.
                let text = format!("url: {addr}\nserverHealthinessTimeout: 3s\n");
                std::fs::write(self.path("source.yaml"), &text).unwrap();
                for c in &self.clusters {
                    std::fs::write(self.path(&format!("agent-{c}.yaml")), &text).unwrap();
                }
            }
            Kind::Mqtt => {
                let head = format!("brokerHost: {addr}\nkeepAlive: 5\ndialTimeout: 3s\n");
                std::fs::write(
                    self.path("source.yaml"),
                    format!(
                        "{head}topics:\n  sourceEvents: sources/{src}/clusters/+/sourceevents\n  agentEvents: sources/{src}/clusters/+/agentevents\n  sourceBroadcast: sources/{src}/sourcebroadcast\n"
                    ),
                )
                .unwrap();
                for c in &self.clusters {
                    std::fs::write(
                        self.path(&format!("agent-{c}.yaml")),
                        format!(
                            "{head}topics:\n  sourceEvents: sources/{src}/clusters/{c}/sourceevents\n  agentEvents: sources/{src}/clusters/{c}/agentevents\n  sourceBroadcast: sources/{src}/sourcebroadcast\n"
                        ),
                    )
                    .unwrap();
                }
            }
            Kind::Kafka => {
                let config = |group: &str| {
                    format!(
                        "bootstrapServer: {addr}\ngroupID: {group}\nsession.timeout.ms: 6000\nheartbeat.interval.ms: 500\ntopic.metadata.refresh.interval.ms: 1000\nreconnect.backoff.max.ms: 1000\n"
                    )
                };
                std::fs::write(self.path("source.yaml"), config(&format!("{src}-source"))).unwrap();
                for c in &self.clusters {
                    std::fs::write(
                        self.path(&format!("agent-{c}.yaml")),
                        config(&format!("{src}-{c}-agent")),
                    )
                    .unwrap();
                }
            }
        }
    }

    pub fn start_broker(&mut self) {
        let logs = self.path("logs");
        match &mut self.broker {
            Broker::Grpc { port, args, proc } => {
                let mut cmd = Command::new(bin());
                cmd.args([
                    "broker",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--insecure",
                    "--heartbeat",
                    "1",
                ])
                .args(args.iter())
                .env("RUST_LOG", "info");
                *proc = Some(Proc::spawn(&mut cmd, logs.join("broker.log")));
                wait_port(*port, Duration::from_secs(10));
            }
            Broker::Mqtt { port, conf, proc } => {
                let mosquitto = std::env::var("OCM_CE_MOSQUITTO_BIN").unwrap_or_else(|_| "mosquitto".into());
                let mut cmd = Command::new(mosquitto);
                cmd.arg("-c").arg(&*conf);
                *proc = Some(Proc::spawn(&mut cmd, logs.join("mosquitto.log")));
                wait_port(*port, Duration::from_secs(10));
            }
            Broker::Kafka { .. } => test_env_script("kafka-start", &[]),
        }
    }

    /// Kills the broker with SIGKILL (Kafka: the shared test broker, killed and later started
    /// on the same port and data).
    pub fn kill_broker(&mut self) {
        match &mut self.broker {
            Broker::Grpc { proc, .. } | Broker::Mqtt { proc, .. } => {
                if let Some(p) = proc.take() {
                    p.kill();
                }
            }
            Broker::Kafka { .. } => test_env_script("kafka-stop", &["--kill"]),
        }
    }

    fn client_args(&self, config: &str) -> Vec<String> {
        vec![
            "--transport".into(),
            self.kind.name().into(),
            "--config".into(),
            self.path(config).display().to_string(),
            "--qps".into(),
            "0".into(),
        ]
    }

    pub fn start_agent(&mut self, cluster: &str) {
        let mut cmd = Command::new(bin());
        cmd.arg("agent")
            .args(self.client_args(&format!("agent-{cluster}.yaml")))
            .args(["--cluster", cluster, "--apply-dir"])
            .arg(self.path("apply"))
            .env("RUST_LOG", log_filter("info"));
        let proc = Proc::spawn(&mut cmd, self.path(&format!("logs/agent-{cluster}.log")));
        self.agents.insert(cluster.to_owned(), proc);
    }

    pub fn kill_agent(&mut self, cluster: &str) {
        if let Some(p) = self.agents.remove(cluster) {
            p.kill();
        }
    }

    /// Stops an agent with SIGTERM once it is up (subscribed); returns its exit code.
    pub fn stop_agent(&mut self, cluster: &str) -> Option<i32> {
        let proc = self.agents.remove(cluster)?;
        proc.wait_log("subscription confirmed", Duration::from_secs(20));
        proc.terminate(Duration::from_secs(15))
    }

    pub fn start_source(&mut self) {
        let mut cmd = Command::new(bin());
        cmd.arg("source")
            .args(self.client_args("source.yaml"))
            .args(["--source", &self.source_id, "--state-dir"])
            .arg(self.path("state"))
            .args(["sync", "--interval", "200ms", "--dir"])
            .arg(self.path("works"))
            .env("RUST_LOG", log_filter("info,ocm_ce_work=debug"));
        self.source = Some(Proc::spawn(&mut cmd, self.path("logs/source.log")));
    }

    pub fn kill_source(&mut self) {
        if let Some(p) = self.source.take() {
            p.kill();
        }
    }

    /// Stops the source with SIGTERM once it is up (subscribed); returns its exit code.
    pub fn stop_source(&mut self) -> Option<i32> {
        let proc = self.source.take()?;
        proc.wait_log("subscription confirmed", Duration::from_secs(20));
        proc.terminate(Duration::from_secs(15))
    }

    /// The source's state database.
    pub fn db_path(&self) -> PathBuf {
        self.path(&format!("state/{}.db", self.source_id))
    }

    /// Writes `works` (namespace, name, payload) into `file` (replacing it), atomically.
    pub fn put_file(&mut self, file: &str, works: &[(String, String, String)]) {
        let mut text = String::new();
        for (ns, name, payload) in works {
            let manifest = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default"},
                "data": {"payload": payload},
            });
            let work = json!({
                "apiVersion": "work.open-cluster-management.io/v1",
                "kind": "ManifestWork",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"workload": {"manifests": [manifest.clone()]}},
            });
            text.push_str("---\n");
            text.push_str(&work.to_string());
            text.push('\n');
            let key = (ns.clone(), name.clone());
            self.desired.insert(
                key.clone(),
                Want {
                    manifests: vec![manifest],
                },
            );
            self.files.insert(key, file.to_owned());
        }
        // Works that were in this file before and are not any more.
        let now: std::collections::HashSet<(String, String)> =
            works.iter().map(|(ns, n, _)| (ns.clone(), n.clone())).collect();
        let gone: Vec<_> = self
            .files
            .iter()
            .filter(|(k, f)| f.as_str() == file && !now.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.files.remove(&k);
            self.desired.remove(&k);
        }
        let dir = self.path("works");
        let tmp = dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, dir.join(file)).unwrap();
    }

    /// Removes `file`: its works are to be deleted.
    pub fn remove_file(&mut self, file: &str) {
        let gone: Vec<_> = self
            .files
            .iter()
            .filter(|(_, f)| f.as_str() == file)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.files.remove(&k);
            self.desired.remove(&k);
        }
        std::fs::remove_file(self.path("works").join(file)).unwrap();
    }

    /// `n` works per cluster named `{prefix}-{i}` with a payload of `bytes` bytes tagged `tag`.
    pub fn works(&self, prefix: &str, n: usize, bytes: usize, tag: &str) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for c in &self.clusters {
            for i in 0..n {
                let mut payload = format!("{tag}-{i}-");
                while payload.len() < bytes {
                    payload.push('x');
                }
                out.push((c.clone(), format!("{prefix}-{i}"), payload));
            }
        }
        out
    }

    /// Waits until the invariant holds (see `check`), at most `within`; returns how long it took.
    pub fn converge(&self, what: &str, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let checking = Instant::now();
            let last = match super::check::check(self) {
                Ok(()) => {
                    let took = started.elapsed();
                    eprintln!(
                        "[{}] {what}: converged in {:.2}s ({} works)",
                        self.kind.name(),
                        took.as_secs_f64(),
                        self.desired.len()
                    );
                    return took;
                }
                Err(e) => e,
            };
            if started.elapsed() > within {
                panic!(
                    "[{}] {what}: no convergence within {within:?}: {last}{}",
                    self.kind.name(),
                    self.log_tails()
                );
            }
            if std::env::var_os("OCM_CE_FAULTS_TIMING").is_some() {
                eprintln!("check took {:?}", checking.elapsed());
            }
            // The check reads every record: keep it to a third of one core at most, so it does
            // not slow down the processes it waits for.
            std::thread::sleep(Duration::from_millis(200).max(checking.elapsed() * 2));
        }
    }

    /// Lines of a process log that contain `needle`.
    pub fn log_lines(&self, log: &str, needle: &str) -> Vec<String> {
        let Ok(f) = std::fs::File::open(self.path(&format!("logs/{log}"))) else {
            return Vec::new();
        };
        BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains(needle))
            .collect()
    }

    /// The last lines of every log, for a failure message.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        let Ok(dir) = std::fs::read_dir(self.path("logs")) else {
            return out;
        };
        for entry in dir.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "\n--- {} (last 15 lines)\n",
                entry.file_name().to_string_lossy()
            ));
            for l in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for System {
    fn drop(&mut self) {
        // OCM_CE_FAULTS_KEEP=1 keeps the files (logs, records, database) of a failed scenario,
        // OCM_CE_FAULTS_KEEP=always those of every scenario.
        let keep = std::env::var("OCM_CE_FAULTS_KEEP").unwrap_or_default();
        if (std::thread::panicking() && !keep.is_empty()) || keep == "always" {
            let root = std::mem::replace(&mut self.root, tempfile::tempdir().unwrap());
            eprintln!("kept the scenario's files in {}", root.keep().display());
        }
        // The processes stop first (their drops kill them); a killed Kafka is started again so
        // the next test finds it.
        self.source.take();
        self.agents.clear();
        if let Broker::Kafka { .. } = self.broker
            && TcpStream::connect_timeout(&self.broker_addr(), Duration::from_millis(500)).is_err()
        {
            test_env_script("kafka-start", &[]);
        }
    }
}

/// The log filter of the processes: `default`, or `OCM_CE_FAULTS_LOG` when set.
fn log_filter(default: &str) -> String {
    std::env::var("OCM_CE_FAULTS_LOG").unwrap_or_else(|_| default.to_owned())
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    (h.finish() % 100_000) as u32
}
