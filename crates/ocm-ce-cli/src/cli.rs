//! Command-line interface (clap).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Open Cluster Management's CloudEvents transport for ManifestWork, in Rust.
#[derive(Debug, Parser)]
#[command(name = "ocm-ce", version, about, long_about = None, after_help = "Example:\n  ocm-ce quickstart --clusters 3 --works 10")]
pub(crate) struct Cli {
    /// More logs (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a broker, a source and N agents in one process through a full work lifecycle.
    #[command(after_help = "Example:\n  ocm-ce quickstart --clusters 3 --works 10 --json")]
    Quickstart(QuickstartArgs),
    /// Run the ocm-ce gRPC broker.
    #[command(
        after_help = "Examples:\n  ocm-ce broker --listen 127.0.0.1:8090 --insecure\n  ocm-ce broker --listen 0.0.0.0:8090 --tls-cert server.pem --tls-key server-key.pem --client-ca ca.pem --authz policy.yaml"
    )]
    Broker(BrokerArgs),
    /// Run an agent that applies works to a Kubernetes cluster (or into a directory) and reports
    /// their status.
    #[command(
        after_help = "Examples:\n  ocm-ce agent --transport grpc --config grpc.yaml --cluster cluster1 --apply-dir ./applied\n  ocm-ce agent --transport grpc --config grpc.yaml --cluster cluster1 --kubeconfig managed.kubeconfig"
    )]
    Agent(AgentArgs),
    /// Serve the ManifestWorks of a Kubernetes API server (the hub) to agents, as a source: their
    /// specs go out, the statuses agents report are written into them, deletions finish through a
    /// finalizer.
    #[command(
        after_help = "Example:\n  ocm-ce hub --kubeconfig hub.kubeconfig --transport grpc --config grpc.yaml --source hub1"
    )]
    Hub(HubArgs),
    /// Act as a source: apply, get, list, delete and watch ManifestWorks.
    #[command(
        after_help = "Examples:\n  ocm-ce source --transport grpc --config grpc.yaml --source source1 apply -f work.yaml --wait\n  ocm-ce source --transport grpc --config grpc.yaml --source source1 list"
    )]
    Source(SourceArgs),
    /// Measure source → agent → status round trips.
    #[command(
        after_help = "Examples:\n  ocm-ce bench --transport grpc --clusters 5 --works 200 --json\n  ocm-ce bench --processes --clusters 1 --works 1000 --update-all --json\n  ocm-ce bench --transport mqtt --config mqtt.yaml --processes --apply dir"
    )]
    Bench(BenchArgs),
    /// Configuration files.
    Config {
        /// What to do with them.
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

impl Command {
    /// Long-running commands log warnings by default; one-shot commands only errors, so their
    /// output stays one line on failure.
    pub(crate) fn default_log_level(&self) -> &'static str {
        match self {
            Self::Source(_) | Self::Config { .. } => "error",
            _ => "warn",
        }
    }
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a transport config file (prints Go's error texts).
    #[command(after_help = "Example:\n  ocm-ce config check --transport mqtt mqtt.yaml")]
    Check {
        /// Which transport the file is for.
        #[arg(long, value_enum)]
        transport: TransportArg,
        /// The file.
        file: PathBuf,
    },
}

/// A transport name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TransportArg {
    /// gRPC (the ocm-ce broker or any Go-compatible one).
    Grpc,
    /// MQTT 5.
    Mqtt,
    /// Kafka (needs the `kafka` build feature).
    Kafka,
}

impl TransportArg {
    /// The kind for the client crate.
    pub(crate) fn kind(self) -> ocm_ce_client::TransportKind {
        match self {
            Self::Grpc => ocm_ce_client::TransportKind::Grpc,
            Self::Mqtt => ocm_ce_client::TransportKind::Mqtt,
            Self::Kafka => ocm_ce_client::TransportKind::Kafka,
        }
    }
}

/// `quickstart` options.
#[derive(Debug, Args)]
pub(crate) struct QuickstartArgs {
    /// Managed clusters (one agent each).
    #[arg(long, default_value_t = 3)]
    pub(crate) clusters: usize,
    /// Works per cluster.
    #[arg(long, default_value_t = 10)]
    pub(crate) works: usize,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
    /// Where agents write the applied manifests (default: a temporary directory).
    #[arg(long)]
    pub(crate) apply_dir: Option<PathBuf>,
    /// Give up after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

/// `broker` options.
#[derive(Debug, Args)]
pub(crate) struct BrokerArgs {
    /// Address to listen on.
    #[arg(long)]
    pub(crate) listen: SocketAddr,
    /// Server certificate (PEM); enables TLS 1.3.
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// Server key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// CA of client certificates (PEM); enables mTLS authentication.
    #[arg(long, requires = "tls_cert")]
    pub(crate) client_ca: Option<PathBuf>,
    /// Bearer tokens file (YAML).
    #[arg(long)]
    pub(crate) tokens: Option<PathBuf>,
    /// Authorization policy file (YAML).
    #[arg(long)]
    pub(crate) authz: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Send heartbeat events every SECS seconds (off by default).
    #[arg(long)]
    pub(crate) heartbeat: Option<u64>,
    /// Queue capacity per subscriber.
    #[arg(long, default_value_t = ocm_ce_broker::DEFAULT_QUEUE_CAPACITY)]
    pub(crate) queue: usize,
    /// Bytes queued per subscriber before publishers to it wait.
    #[arg(long, default_value_t = ocm_ce_broker::DEFAULT_QUEUE_BYTES)]
    pub(crate) queue_bytes: usize,
    /// Bytes queued over all subscribers before publishers wait.
    #[arg(long, default_value_t = ocm_ce_broker::DEFAULT_TOTAL_QUEUE_BYTES)]
    pub(crate) total_queue_bytes: usize,
    /// A subscriber whose queue stays full while it takes nothing this long is disconnected.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub(crate) stall_timeout: Duration,
    /// Run without authentication (plaintext) even on a non-loopback address.
    #[arg(long)]
    pub(crate) insecure: bool,
}

/// Transport selection shared by `agent`, `source` and `bench`.
#[derive(Debug, Args)]
pub(crate) struct TransportArgs {
    /// Transport.
    #[arg(long, value_enum)]
    pub(crate) transport: TransportArg,
    /// The Go SDK transport config file (YAML or JSON).
    #[arg(long)]
    pub(crate) config: PathBuf,
}

/// The publish rate limit of a client (Go's token bucket).
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct RateArgs {
    /// Events per second this client may publish (0 = unlimited). Go's default: 50.
    #[arg(long, default_value_t = ocm_ce_client::RateLimit::DEFAULT_QPS)]
    pub(crate) qps: f32,
    /// Events this client may publish at once before the rate applies. Go's default: 100.
    #[arg(long, default_value_t = ocm_ce_client::RateLimit::DEFAULT_BURST)]
    pub(crate) burst: u32,
}

impl RateArgs {
    /// The rate limit (`None` = unlimited).
    pub(crate) fn limit(self) -> Option<ocm_ce_client::RateLimit> {
        (self.qps > 0.0).then_some(ocm_ce_client::RateLimit {
            qps: self.qps,
            burst: self.burst.max(1),
        })
    }
}

/// The operations endpoints of a long-running client.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct OpsArgs {
    /// Serve Prometheus metrics on `http://ADDR/metrics` (Go's resync histograms and ocm-ce's
    /// counters).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
    /// Serve `http://ADDR/healthz` (liveness) and `http://ADDR/readyz` (ready once the
    /// subscription is confirmed and the start-up resync was requested; the agent's store is
    /// loaded before it connects).
    #[arg(long, value_name = "ADDR")]
    pub(crate) health_addr: Option<std::net::SocketAddr>,
}

/// The client-side limit of the requests to a Kubernetes API server (client-go's QPS/Burst).
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct KubeApiArgs {
    /// Requests per second to the Kubernetes API server (client-side limit).
    #[arg(long, default_value_t = 50.0)]
    pub(crate) kube_api_qps: f32,
    /// Requests at once to the Kubernetes API server (client-side limit).
    #[arg(long, default_value_t = 100)]
    pub(crate) kube_api_burst: u32,
}

impl KubeApiArgs {
    /// The limit.
    pub(crate) fn limit(self) -> ocm_ce_client::RateLimit {
        ocm_ce_client::RateLimit {
            qps: self.kube_api_qps,
            burst: self.kube_api_burst,
        }
    }
}

/// What a source process is: its transport, publish rate limit and id (`source`, `hub`).
#[derive(Debug, Args)]
pub(crate) struct SourceClientArgs {
    /// Transport and config.
    #[command(flatten)]
    pub(crate) transport: TransportArgs,
    /// Publish rate limit.
    #[command(flatten)]
    pub(crate) rate: RateArgs,
    /// Metrics and health endpoints.
    #[command(flatten)]
    pub(crate) ops: OpsArgs,
    /// Source id.
    #[arg(long = "source")]
    pub(crate) source_id: String,
    /// MQTT client id (default `<source>-client`).
    #[arg(long)]
    pub(crate) client_id: Option<String>,
}

/// `agent` options.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// Transport and config.
    #[command(flatten)]
    pub(crate) transport: TransportArgs,
    /// Publish rate limit.
    #[command(flatten)]
    pub(crate) rate: RateArgs,
    /// Metrics and health endpoints.
    #[command(flatten)]
    pub(crate) ops: OpsArgs,
    /// The managed cluster this agent serves.
    #[arg(long)]
    pub(crate) cluster: String,
    /// Agent id (default `<cluster>-work-agent`).
    #[arg(long)]
    pub(crate) agent_id: Option<String>,
    /// Where to write applied manifests (default: a directory under the user's state dir).
    #[arg(long)]
    pub(crate) apply_dir: Option<PathBuf>,
    /// Apply into a directory (`dir`, the default) or keep the manifests in memory (`memory`:
    /// the same statuses, nothing written and nothing kept over a restart; for benchmarks).
    #[arg(long, value_enum, conflicts_with = "kubeconfig")]
    pub(crate) apply: Option<ApplyMode>,
    /// Apply works to the Kubernetes cluster of this kubeconfig, as OCM's work agent does, instead
    /// of writing files. Run in a pod without `--apply-dir`, the agent applies to its own cluster.
    #[arg(long, conflicts_with = "apply_dir")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Hub hash of the AppliedManifestWork records (default: the SHA-256 of the broker address).
    #[arg(long)]
    pub(crate) hub_hash: Option<String>,
    /// Works applied to the cluster at the same time.
    #[arg(long, default_value_t = 4)]
    pub(crate) workers: usize,
    /// Client-side limit of the requests to the Kubernetes API server.
    #[command(flatten)]
    pub(crate) kube_api: KubeApiArgs,
}

/// `hub` options.
#[derive(Debug, Args)]
pub(crate) struct HubArgs {
    /// The source: transport, rate limit, id.
    #[command(flatten)]
    pub(crate) client: SourceClientArgs,
    /// The hub cluster's kubeconfig (default: the pod's own cluster, else $KUBECONFIG or
    /// ~/.kube/config).
    #[arg(long)]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// Serve only the ManifestWorks matching this label selector.
    #[arg(short = 'l', long = "selector")]
    pub(crate) selector: Option<String>,
    /// Every work is reconciled at least this often (failed requests are retried then).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) resync_interval: Duration,
    /// Run the garbage collector for owners of this kind, `[GROUP/]VERSION/KIND` (e.g.
    /// `v1/ConfigMap`, `apps/v1/Deployment`; repeatable): a ManifestWork whose owners are all
    /// deleted is deleted.
    #[arg(long = "gc-owner", value_name = "[GROUP/]VERSION/KIND")]
    pub(crate) gc_owners: Vec<String>,
    /// Works reconciled at the same time.
    #[arg(long, default_value_t = 8)]
    pub(crate) workers: usize,
    /// Client-side limit of the requests to the Kubernetes API server.
    #[command(flatten)]
    pub(crate) kube_api: KubeApiArgs,
}

/// `source` options.
#[derive(Debug, Args)]
pub(crate) struct SourceArgs {
    /// The source: transport, rate limit, id.
    #[command(flatten)]
    pub(crate) client: SourceClientArgs,
    /// Where the source keeps its works between runs (default: under the user's state dir).
    #[arg(long)]
    pub(crate) state_dir: Option<PathBuf>,
    /// How long to wait for the broker and for the status resync on start.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: SourceCommand,
}

/// Output format of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// `source` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SourceCommand {
    /// Create or update the works in FILE (multi-document YAML or JSON; `-` = stdin).
    Apply {
        /// The file.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Wait until the agent reports the work applied, and print its status.
        #[arg(long)]
        wait: bool,
        /// How long to wait.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Print one work.
    Get {
        /// Work name.
        name: String,
        /// Cluster (namespace).
        #[arg(short = 'n', long = "namespace")]
        namespace: String,
        /// Format.
        #[arg(short, long, value_enum, default_value = "yaml")]
        output: Output,
    },
    /// List works as a table.
    List {
        /// Cluster (namespace); all when absent.
        #[arg(short = 'n', long = "namespace")]
        namespace: Option<String>,
        /// Label selector.
        #[arg(short = 'l', long = "selector", default_value = "")]
        selector: String,
    },
    /// Delete a work.
    Delete {
        /// Work name.
        name: String,
        /// Cluster (namespace).
        #[arg(short = 'n', long = "namespace")]
        namespace: String,
        /// Wait until the agent acknowledged the deletion.
        #[arg(long)]
        wait: bool,
        /// How long to wait.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Stream changes of the works until interrupted.
    /// Keep this source's works equal to the ManifestWork files in a directory: files added or
    /// changed create or update works, works whose file is gone are deleted. Runs until
    /// SIGINT/SIGTERM; its state (specs, reported statuses) is kept in the state database.
    #[command(
        after_help = "Example:\n  ocm-ce source --transport grpc --config grpc.yaml --source source1 sync --dir ./works"
    )]
    Sync {
        /// The directory of ManifestWork files (.yaml, .yml, .json; several documents per file).
        #[arg(long)]
        dir: PathBuf,
        /// How often the directory is scanned.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
    },
    Watch {
        /// Cluster (namespace); all when absent.
        #[arg(short = 'n', long = "namespace")]
        namespace: Option<String>,
    },
}

/// Where an agent applies works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ApplyMode {
    /// Apply nowhere, remembering a digest of what was applied: the same finalizer, statuses
    /// and deletions as `dir`, nothing written (what `bench` measures by default: the protocol
    /// and the agent, not a file system or a model of a cluster's storage).
    Memory,
    /// Write the manifests as YAML files (and a record of each work) into a directory.
    Dir,
}

impl ApplyMode {
    /// The flag value.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Dir => "dir",
        }
    }
}

/// `bench` options.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Transport.
    #[arg(long, value_enum, default_value = "grpc")]
    pub(crate) transport: TransportArg,
    /// Transport config file; for grpc without one, an embedded broker is started (a broker
    /// process with `--processes`).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Clusters (one agent each).
    #[arg(long, default_value_t = 4)]
    pub(crate) clusters: usize,
    /// Works per cluster.
    #[arg(long, default_value_t = 250)]
    pub(crate) works: usize,
    /// Bytes of ConfigMap data per work.
    #[arg(long, default_value_t = 1024)]
    pub(crate) manifest_bytes: usize,
    /// Works created per second (0 = unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) rate: f64,
    /// Where the agents apply the works: in memory (measures the protocol) or into a directory.
    #[arg(long, value_enum, default_value = "memory")]
    pub(crate) apply: ApplyMode,
    /// The directory of `--apply dir` (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub(crate) apply_dir: Option<PathBuf>,
    /// Every N-th work is updated once after all are applied (0 = none).
    #[arg(long, default_value_t = 2)]
    pub(crate) update_every: usize,
    /// Every work is updated once (the Go baseline's workload; `--update-every 1`).
    #[arg(long, conflicts_with = "update_every")]
    pub(crate) update_all: bool,
    /// Run the broker (for grpc without --config) and each agent as a separate `ocm-ce`
    /// process, the source in this one, and report each process's CPU and peak RSS.
    #[arg(long)]
    pub(crate) processes: bool,
    /// Print one JSON object with every figure.
    #[arg(long)]
    pub(crate) json: bool,
    /// Give up after this long.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
}

/// Parses a number of seconds (`5`, `1.5`) or a Go duration (`30s`, `10m`, `1h30m`, `500ms`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    match s.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}")),
        Err(_) => {
            ocm_ce_core::go_duration::parse_go_duration(s).map_err(|e| format!("{e} (examples: 30s, 10m, 500ms)"))
        }
    }
}

/// Logs to stderr: `RUST_LOG` if set, else `quiet_default` / info / debug / trace by `-v` count.
pub(crate) fn init_logging(verbose: u8, quiet_default: &str) {
    let default = match verbose {
        0 => quiet_default,
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go_strings() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn the_cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
