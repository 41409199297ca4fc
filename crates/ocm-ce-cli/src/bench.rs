//! `ocm-ce bench`: the work lifecycle of [`crate::lifecycle`] measured end to end, in one
//! process (broker, source and agents) or with `--processes` as separate `ocm-ce` processes (a
//! broker for gRPC without a config, one agent per cluster; the source runs here), reporting each
//! process's CPU time and peak RSS.
//!
//! The figures of a process are read from `/proc/<pid>/stat` (user + system CPU) and
//! `/proc/<pid>/status` (`VmHWM`, the peak resident set) just before and after the run, so the
//! CPU covers the run (the source's connection and the lifecycle), not the start-up or shutdown
//! of a process. Where `/proc` is missing the figures are 0.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use ocm_ce_client::{AnyTransport, TransportConfig, TransportKind};
use ocm_ce_work::client::AgentWorkClient;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::cli::{ApplyMode, BenchArgs};
use crate::commands::{
    EmbeddedBroker, FLUSH_ON_EXIT, Shutdown, TempDir, clusters, load_config, print_summary, run_plan, run_source,
};
use crate::lifecycle::{Plan, Summary};

/// How long a child process may take to start (listen, subscribe).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child process may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = FLUSH_ON_EXIT.saturating_add(Duration::from_secs(5));
/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU time and peak RSS of a process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Usage {
    cpu_s: f64,
    peak_rss_mb: f64,
}

impl Usage {
    /// Reads `/proc/<pid>/{stat,status}` (`pid` = `"self"` for this process).
    fn of(pid: &str) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        Self::parse(&stat, &status)
    }

    /// User + system time (fields 14 and 15 of `stat`, after the parenthesised command name)
    /// and `VmHWM` of `status`.
    fn parse(stat: &str, status: &str) -> Self {
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        let hwm_kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Self {
            cpu_s: ticks / TICKS_PER_SEC,
            peak_rss_mb: hwm_kb / 1024.0,
        }
    }
}

/// The figures of one process of the run.
#[derive(Debug, Clone, Serialize)]
struct ProcessFigures {
    /// `bench` (everything in one process), `source`, `broker` or `agent`.
    role: &'static str,
    /// The cluster of an agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<String>,
    /// Process id.
    pid: u32,
    /// CPU seconds (user + system) during the run.
    cpu_s: f64,
    /// CPU milliseconds per work (whole lifecycle).
    cpu_ms_per_work: f64,
    /// Peak resident set (VmHWM), MiB.
    peak_rss_mb: f64,
}

/// Everything `bench --json` prints.
#[derive(Debug, Serialize)]
struct Report {
    /// The lifecycle's figures.
    #[serde(flatten)]
    summary: Summary,
    /// Transport.
    transport: String,
    /// `in-process` or `processes`.
    mode: &'static str,
    /// `memory` or `dir`.
    apply: &'static str,
    /// Clusters (agents).
    clusters: usize,
    /// Works per cluster.
    works_per_cluster: usize,
    /// Works in all (N).
    works: usize,
    /// Bytes of ConfigMap data per work.
    manifest_bytes: usize,
    /// Every this-many-th work was updated.
    update_every: usize,
    /// Per process.
    processes: Vec<ProcessFigures>,
    /// CPU seconds of all processes.
    cpu_s: f64,
    /// CPU milliseconds per work of all processes.
    cpu_ms_per_work: f64,
}

/// Runs `ocm-ce bench`.
pub(crate) async fn run(args: BenchArgs) -> Result<ExitCode> {
    if args.apply == ApplyMode::Memory && args.apply_dir.is_some() {
        bail!("--apply-dir is for --apply dir, not --apply memory");
    }
    let plan = Plan {
        clusters: clusters(args.clusters.max(1)),
        works_per_cluster: args.works.max(1),
        manifest_bytes: args.manifest_bytes,
        rate: args.rate,
        update_every: if args.update_all { 1 } else { args.update_every },
        timeout: args.timeout,
    };
    // SIGINT/SIGTERM stop the run gracefully: its clients are closed before the process exits.
    let mut shutdown = Shutdown::install()?;
    let temp = TempDir::new()?;
    let apply_dir = (args.apply == ApplyMode::Dir).then(|| args.apply_dir.clone().unwrap_or_else(|| temp.0.clone()));
    let (summary, processes) = if args.processes {
        in_processes(&args, &plan, &temp.0, apply_dir.as_deref(), shutdown.recv()).await?
    } else {
        in_process(&args, &plan, apply_dir.as_deref(), shutdown.recv()).await?
    };
    let works = summary.works_created.max(1) as f64;
    let cpu_s: f64 = processes.iter().map(|p| p.cpu_s).sum();
    let report = Report {
        transport: args.transport.kind().to_string(),
        mode: if args.processes { "processes" } else { "in-process" },
        apply: args.apply.as_str(),
        clusters: plan.clusters.len(),
        works_per_cluster: plan.works_per_cluster,
        works: plan.clusters.len() * plan.works_per_cluster,
        manifest_bytes: plan.manifest_bytes,
        update_every: plan.update_every,
        cpu_s,
        cpu_ms_per_work: cpu_s * 1000.0 / works,
        processes,
        summary,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let mut extra = vec![
            ("transport", report.transport.clone()),
            ("mode", format!("{}, apply {}", report.mode, report.apply)),
        ];
        let rows: Vec<(String, String)> = report
            .processes
            .iter()
            .map(|p| {
                let name = p
                    .cluster
                    .as_ref()
                    .map_or_else(|| p.role.to_owned(), |c| format!("{} {c}", p.role));
                (
                    name,
                    format!(
                        "{:.2} ms CPU/work, peak RSS {:.1} MiB",
                        p.cpu_ms_per_work, p.peak_rss_mb
                    ),
                )
            })
            .collect();
        extra.extend(rows.iter().map(|(k, v)| (k.as_str(), v.clone())));
        extra.push(("CPU all processes", format!("{:.2} ms/work", report.cpu_ms_per_work)));
        print_summary(&report.summary, false, &extra)?;
    }
    Ok(if report.summary.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Broker (embedded for gRPC without a config), source and agents in this process.
async fn in_process(
    args: &BenchArgs,
    plan: &Plan,
    apply_dir: Option<&Path>,
    stop: impl Future<Output = ()>,
) -> Result<(Summary, Vec<ProcessFigures>)> {
    let before = Usage::of("self");
    let summary = match (&args.config, args.transport.kind()) {
        (None, TransportKind::Grpc) => {
            let broker = EmbeddedBroker::start().await?;
            let source = broker.source_transport("ocm-ce-bench")?;
            let make = |c: &str| broker.agent_transport(c);
            run_plan(plan, apply_dir, "ocm-ce-bench", source, make, !args.json, stop).await?
        }
        (None, kind) => bail!(no_config(kind)),
        (Some(path), kind) => {
            let config = load_config(kind, path)?;
            let source_id = bench_source_id(&config);
            let source =
                AnyTransport::source(&config, &source_id, &format!("{source_id}-bench")).map_err(anyhow::Error::msg)?;
            let make =
                |c: &str| AnyTransport::agent(&config, c, &format!("{c}-work-agent")).map_err(anyhow::Error::msg);
            run_plan(plan, apply_dir, &source_id, source, make, !args.json, stop).await?
        }
    };
    let after = Usage::of("self");
    let figures = figures("bench", None, std::process::id(), before, after, &summary);
    Ok((summary, vec![figures]))
}

fn no_config(kind: TransportKind) -> String {
    format!("--config is required for the {kind} transport (an agent and a source config are derived from it)")
}

/// The figures of a process from its usage before and after the run.
fn figures(
    role: &'static str,
    cluster: Option<String>,
    pid: u32,
    before: Usage,
    after: Usage,
    summary: &Summary,
) -> ProcessFigures {
    let cpu_s = (after.cpu_s - before.cpu_s).max(0.0);
    ProcessFigures {
        role,
        cluster,
        pid,
        cpu_s,
        cpu_ms_per_work: cpu_s * 1000.0 / summary.works_created.max(1) as f64,
        peak_rss_mb: after.peak_rss_mb,
    }
}

/// A broker process (gRPC without a config) and an agent process per cluster, the source here.
async fn in_processes(
    args: &BenchArgs,
    plan: &Plan,
    temp: &Path,
    apply_dir: Option<&Path>,
    stop: impl Future<Output = ()>,
) -> Result<(Summary, Vec<ProcessFigures>)> {
    let kind = args.transport.kind();
    let mut broker = None;
    let config_path = match (&args.config, kind) {
        (Some(path), _) => path.clone(),
        (None, TransportKind::Grpc) => {
            let mut child = ChildProcess::spawn("broker", None, &["broker", "--listen", "127.0.0.1:0"])?;
            let line = child.wait_for_line("listening on ").await?;
            let addr = line
                .split("listening on ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .context("no address in the broker's first line")?
                .to_owned();
            broker = Some(child);
            let path = temp.join("grpc.yaml");
            std::fs::write(&path, format!("url: {addr}\n")).with_context(|| format!("writing {}", path.display()))?;
            path
        }
        (None, kind) => bail!(no_config(kind)),
    };
    let config = load_config(kind, &config_path)?;
    // The agents get the same transport flag as this command.
    let transport = args
        .transport
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let mut agents = Vec::new();
    for cluster in &plan.clusters {
        let mut argv: Vec<String> = [
            "agent",
            "--transport",
            &transport,
            "--cluster",
            cluster,
            "--qps",
            "0",
            "--health-addr",
            "127.0.0.1:0",
            "--apply",
            args.apply.as_str(),
            "--config",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        argv.push(config_path.display().to_string());
        if let Some(dir) = apply_dir {
            argv.push("--apply-dir".to_owned());
            argv.push(dir.display().to_string());
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        agents.push(ChildProcess::spawn("agent", Some(cluster.clone()), &argv)?);
    }
    let ready = async {
        for agent in &mut agents {
            agent.wait_ready().await?;
        }
        anyhow::Ok(())
    };
    if let Err(e) = ready.await {
        let mut tails = String::new();
        for c in broker.iter_mut().chain(agents.iter_mut()) {
            tails.push_str(&c.tail());
        }
        return Err(e.context(format!("starting the benchmark processes{tails}")));
    }

    let source_id = bench_source_id(&config);
    let source =
        AnyTransport::source(&config, &source_id, &format!("{source_id}-bench")).map_err(anyhow::Error::msg)?;
    let children = || broker.iter().chain(agents.iter());
    let before: Vec<Usage> = children().map(ChildProcess::usage).collect();
    let self_before = Usage::of("self");
    let no_agents: &[AgentWorkClient<AnyTransport>] = &[];
    let result = run_source(plan, &source_id, source, no_agents, !args.json, stop).await;
    let self_after = Usage::of("self");
    let after: Vec<Usage> = children().map(ChildProcess::usage).collect();
    // The agents first (their last reports go through the broker), then the broker.
    for agent in &mut agents {
        agent.stop().await;
    }
    if let Some(b) = &mut broker {
        b.stop().await;
    }
    let summary = result?;
    let mut processes = vec![figures(
        "source",
        None,
        std::process::id(),
        self_before,
        self_after,
        &summary,
    )];
    for ((child, before), after) in broker.iter().chain(agents.iter()).zip(before).zip(after) {
        processes.push(figures(
            child.role,
            child.cluster.clone(),
            child.pid,
            before,
            after,
            &summary,
        ));
    }
    Ok((summary, processes))
}

/// An `ocm-ce` child process (this binary), its stderr read line by line.
#[derive(Debug)]
struct ChildProcess {
    role: &'static str,
    cluster: Option<String>,
    pid: u32,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl ChildProcess {
    /// Starts `ocm-ce ARGS` (killed if dropped while running).
    fn spawn(role: &'static str, cluster: Option<String>, argv: &[&str]) -> Result<Self> {
        let exe = std::env::current_exe().context("locating the ocm-ce binary")?;
        let mut child = Command::new(exe)
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting ocm-ce {}", argv.join(" ")))?;
        let pid = child.id().context("the child process has no id")?;
        let (tx, lines) = mpsc::unbounded_channel();
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut reader = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            role,
            cluster,
            pid,
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// The first stderr line containing `marker` (within [`START_TIMEOUT`]).
    async fn wait_for_line(&mut self, marker: &str) -> Result<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let role = self.role;
        loop {
            match tokio::time::timeout_at(deadline.into(), self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if line.contains(marker) {
                        return Ok(line);
                    }
                }
                Ok(None) => bail!("the {role} process exited{}", self.tail()),
                Err(_) => bail!("the {role} process printed no {marker:?} line{}", self.tail()),
            }
        }
    }

    /// Waits until the process's `/readyz` (of `--health-addr`) answers 200.
    async fn wait_ready(&mut self) -> Result<()> {
        let line = self.wait_for_line("/readyz on http://").await?;
        let addr: SocketAddr = line
            .rsplit("http://")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .with_context(|| format!("no address in {line:?}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        while !http_ok(addr, "/readyz").await {
            if Instant::now() > deadline {
                bail!(
                    "the {} process of {} was not ready within {}s",
                    self.role,
                    self.cluster.as_deref().unwrap_or("-"),
                    START_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        Usage::of(&self.pid.to_string())
    }

    /// Stops the process with SIGTERM (killed after [`STOP_TIMEOUT`]).
    async fn stop(&mut self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        let exited = sent && tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await.is_ok();
        if !exited {
            tracing::warn!(role = self.role, pid = self.pid, "did not stop on SIGTERM; killing it");
            let _ = self.child.kill().await;
        }
    }

    /// The stderr lines seen so far and those pending, for an error message.
    fn tail(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let start = self.seen.len().saturating_sub(20);
        if self.seen.is_empty() {
            return String::new();
        }
        format!(
            "\n--- {} {} stderr ---\n{}",
            self.role,
            self.cluster.as_deref().unwrap_or_default(),
            self.seen[start..].join("\n")
        )
    }
}

/// True when `GET path` on `addr` answers 200.
async fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        std::io::Result::Ok(head.ends_with(b" 200"))
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .is_ok_and(|r| r.unwrap_or(false))
}

/// The source id a benchmark runs as: for MQTT the one named in the config's topics (a source
/// may only subscribe to its own agent events topic), otherwise `ocm-ce-bench`.
fn bench_source_id(config: &TransportConfig) -> String {
    match config {
        TransportConfig::Mqtt(c) => ocm_ce_core::topics::source_of_events_topic(&c.topics_or_default().agent_events)
            .ok()
            .filter(|s| s != "+")
            .unwrap_or_else(|| "ocm-ce-bench".to_owned()),
        _ => "ocm-ce-bench".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_reads_cpu_ticks_and_the_peak_resident_set() {
        let stat = "1234 (ocm-ce (x)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 100 1000 10";
        let status = "Name:\tocm-ce\nVmPeak:\t 9000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 10000 kB\n";
        let u = Usage::parse(stat, status);
        assert!((u.cpu_s - 3.0).abs() < 1e-9, "{u:?}");
        assert!((u.peak_rss_mb - 20.0).abs() < 1e-9, "{u:?}");
        assert_eq!(Usage::parse("", ""), Usage::default());
    }
}
