//! Shared helpers of the MQTT integration tests: the test broker environment, an own Mosquitto
//! process on a free port, standard topics and small waiting helpers.

#![allow(clippy::unwrap_used)]
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ocm_ce_client::transport::mqtt::MqttConfig;
use ocm_ce_core::Topics;

/// Reads a variable of the test environment (`scripts/test-env.sh`). Missing: a failure under
/// `CI`, otherwise `None` after printing why the test is skipped.
pub fn env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{name} is not set; run `scripts/test-env.sh start DIR` and source DIR/env"
            );
            eprintln!("skipped: {name} is not set (run `scripts/test-env.sh start DIR` and source DIR/env)");
            None
        }
    }
}

/// Returns from the test when the variable is missing (outside CI).
#[macro_export]
macro_rules! require_env {
    ($name:expr) => {
        match $crate::mqtt_support::env($name) {
            Some(v) => v,
            None => return,
        }
    };
}

/// The integration tests' topics: `sources/<source>/clusters/+/…`, `sources/+/sourcebroadcast`
/// (so a source's broadcast goes to `sources/<source>/sourcebroadcast`) and
/// `clusters/+/agentbroadcast`.
pub fn topics(source: &str) -> Topics {
    Topics {
        source_events: format!("sources/{source}/clusters/+/sourceevents"),
        agent_events: format!("sources/{source}/clusters/+/agentevents"),
        source_broadcast: "sources/+/sourcebroadcast".into(),
        agent_broadcast: "clusters/+/agentbroadcast".into(),
    }
}

/// A unique lower-case suffix for ids and topics, so tests sharing a broker do not meet.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A plain config for the broker at `host` with `topics(source)`.
pub fn config(host: &str, source: &str) -> MqttConfig {
    MqttConfig::new(host, topics(source))
}

/// A free loopback port (the listener is closed again before returning).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits (async, bounded) until `cond` holds; panics with `what` on timeout.
pub async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A Mosquitto process of our own on a free loopback port, killed on drop.
pub struct OwnBroker {
    bin: String,
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl OwnBroker {
    /// Starts `OCM_CE_MOSQUITTO_BIN` with `extra` config lines (after the listener line).
    pub async fn start<S: AsRef<str>>(bin: &str, extra: &[S]) -> Self {
        let mut b = Self {
            bin: bin.to_owned(),
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| s.as_ref().to_owned()).collect(),
            child: None,
        };
        b.launch().await;
        b
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    async fn launch(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        let mut f = std::fs::File::create(&conf).unwrap();
        writeln!(f, "user root").unwrap();
        writeln!(f, "persistence false").unwrap();
        writeln!(f, "log_dest file {}", self.log_path().display()).unwrap();
        writeln!(f, "log_type all").unwrap();
        writeln!(f, "connection_messages true").unwrap();
        writeln!(f, "listener {} 127.0.0.1", self.port).unwrap();
        for line in &self.extra {
            writeln!(f, "{line}").unwrap();
        }
        drop(f);
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start:\n{}", self.log());
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mosquitto exited with {status}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the broker (SIGKILL: no DISCONNECT, no goodbye).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
