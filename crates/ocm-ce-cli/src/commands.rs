//! The commands.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use ocm_ce_broker::Broker;
use ocm_ce_client::transport::grpc::{GrpcConfig, GrpcTransport};
use ocm_ce_client::{AnyTransport, ClientOptions, Role, Transport, TransportConfig};
use ocm_ce_work::api::{RESOURCE_VERSION_ANNOTATION, SEQUENCE_ID_ANNOTATION, condition_type};
use ocm_ce_work::client::{AgentCodecs, AgentWorkClient, SourceWorkClient, WorkClientOptions};
use ocm_ce_work::conditions::find_status_condition;
use ocm_ce_work::selector::ListParams;
use ocm_ce_work::store::WatchEvent;
use ocm_ce_work::{ManifestWork, PatchType};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::applier::Applier;
use crate::cli::{
    AgentArgs, ApplyMode, BrokerArgs, Cli, Command, ConfigCommand, Output, QuickstartArgs, SourceArgs,
    SourceClientArgs, SourceCommand,
};
use crate::kube_agent;
use crate::lifecycle::{self, Plan, Summary};
use crate::state::StateDb;

/// Runs one command.
pub(crate) async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Quickstart(args) => quickstart(args).await,
        Command::Broker(args) => broker(args).await,
        Command::Agent(args) => agent(args).await,
        Command::Hub(args) => crate::hub::run(args).await,
        Command::Source(args) => source(args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Config {
            command: ConfigCommand::Check { transport, file },
        } => {
            TransportConfig::load(transport.kind(), &file).map_err(anyhow::Error::msg)?;
            println!("{}: valid {} config", file.display(), transport.kind());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The user's state directory for ocm-ce (`$XDG_STATE_HOME/ocm-ce` or `~/.local/state/ocm-ce`).
fn state_home() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(d).join("ocm-ce");
    }
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".ocm-ce"),
        |h| PathBuf::from(h).join(".local/state/ocm-ce"),
    )
}

pub(crate) fn load_config(kind: ocm_ce_client::TransportKind, path: &Path) -> Result<TransportConfig> {
    if !path.exists() {
        bail!(
            "config file {} does not exist (pass a Go SDK {kind} config with --config)",
            path.display()
        );
    }
    TransportConfig::load(kind, path).map_err(|e| anyhow::anyhow!("invalid {kind} config: {e}"))
}

/// The process's stop signals: SIGINT (Ctrl-C) and SIGTERM (what Kubernetes and service
/// managers send). Long-running commands install it first thing — from then on a stop signal
/// no longer kills the process but asks it to shut down gracefully — and wait on it.
pub(crate) struct Shutdown {
    #[cfg(unix)]
    signals: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl Shutdown {
    /// Installs the handlers now.
    pub(crate) fn install() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
            let terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
            Ok(Self {
                signals: (interrupt, terminate),
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves at the next stop signal.
    pub(crate) async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.signals.0.recv() => {}
            _ = self.signals.1.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How long a stopping process waits for its unsent reports (statuses, deletion
/// acknowledgements, specs) to be acknowledged by the transport.
pub(crate) const FLUSH_ON_EXIT: Duration = Duration::from_secs(5);

/// Client options for the command-line processes: Go's defaults, but reconnect attempts
/// every 1, 2, 4, 8 and then 10 s (Go: 5, 25, then 60 s), so a restarted broker is found
/// again within seconds.
pub(crate) fn client_options(rate: crate::cli::RateArgs) -> WorkClientOptions {
    let mut client = ClientOptions::default().rate_limit(rate.limit());
    client.backoff.initial = Duration::from_secs(1);
    client.backoff.factor = 2.0;
    client.backoff.jitter = 0.2;
    client.backoff.cap = Duration::from_secs(10);
    WorkClientOptions::default().client(client)
}

fn in_process_options() -> WorkClientOptions {
    WorkClientOptions::default().client(ClientOptions::default().rate_limit(None))
}

pub(crate) async fn wait_connected<F>(
    what: &str,
    timeout: Duration,
    connected: F,
    last_error: impl Fn() -> Option<String>,
) -> Result<()>
where
    F: std::future::Future<Output = ()>,
{
    if tokio::time::timeout(timeout, connected).await.is_err() {
        let why = last_error().map(|e| format!(": {e}")).unwrap_or_default();
        bail!(
            "could not reach the broker for {what} within {}s{why} (is it running? check the config file)",
            timeout.as_secs()
        );
    }
    Ok(())
}

// ---- broker ----------------------------------------------------------------------------------

async fn broker(args: BrokerArgs) -> Result<ExitCode> {
    let mut shutdown = Shutdown::install()?;
    let authenticated = args.client_ca.is_some() || args.tokens.is_some();
    if !args.listen.ip().is_loopback() && !authenticated && !args.insecure {
        bail!(
            "refusing to serve {} without authentication: pass --client-ca and/or --tokens (with --tls-cert/--tls-key), or --insecure",
            args.listen
        );
    }
    if args.tokens.is_some() && args.tls_cert.is_none() {
        bail!("--tokens needs TLS: pass --tls-cert and --tls-key too (bearer tokens must not travel in plaintext)");
    }
    let mut builder = Broker::builder()
        .queue_capacity(args.queue)
        .queue_bytes(args.queue_bytes)
        .total_queue_bytes(args.total_queue_bytes)
        .stall_timeout(args.stall_timeout)
        .heartbeat_interval(args.heartbeat.map(Duration::from_secs));
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        builder = builder.tls(cert, key, args.client_ca.as_deref());
    }
    if let Some(tokens) = &args.tokens {
        builder = builder.tokens_file(tokens);
    }
    if let Some(authz) = &args.authz {
        builder = builder.authorization_file(authz);
    }
    if let Some(addr) = args.metrics_listen {
        builder = builder.metrics_addr(addr);
    }
    builder = builder.insecure(!authenticated);
    let broker = builder.build()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "ocm-ce broker listening on {addr}{}",
        if args.tls_cert.is_some() {
            " (TLS 1.3)"
        } else {
            " (plaintext)"
        }
    );
    if let Some(m) = broker.metrics_local_addr() {
        eprintln!("metrics on http://{m}/metrics");
    }
    broker
        .serve_with_shutdown(listener, async move {
            shutdown.recv().await;
            eprintln!("shutting down");
        })
        .await
        .context("the broker failed")?;
    Ok(ExitCode::SUCCESS)
}

// ---- agent -----------------------------------------------------------------------------------

async fn agent(args: AgentArgs) -> Result<ExitCode> {
    let mut shutdown = Shutdown::install()?;
    let config = load_config(args.transport.transport.kind(), &args.transport.config)?;
    let agent_id = args
        .agent_id
        .clone()
        .unwrap_or_else(|| format!("{}-work-agent", args.cluster));
    if let Some(cluster) = kube_agent::cluster_of(&args) {
        return kube_agent::run(
            &args,
            &config,
            &agent_id,
            cluster,
            client_options(args.rate),
            &mut shutdown,
        )
        .await;
    }
    let transport = AnyTransport::agent(&config, &args.cluster, &agent_id).map_err(anyhow::Error::msg)?;
    let (mut applier, target) = if args.apply == Some(ApplyMode::Memory) {
        if args.apply_dir.is_some() {
            bail!("--apply-dir is for --apply dir, not --apply memory");
        }
        (Applier::in_memory(), "memory".to_owned())
    } else {
        let dir = args.apply_dir.clone().unwrap_or_else(|| state_home().join("apply"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the apply directory {}", dir.display()))?;
        (Applier::new(&dir), dir.display().to_string())
    };
    // What this agent applied before it stopped: its store starts from it, so the first spec
    // resync completes the deletions made while it was down.
    let applied = applier.recorded(&args.cluster)?;
    let client = AgentWorkClient::start_with_works(
        transport,
        &args.cluster,
        &agent_id,
        AgentCodecs::bundles(),
        client_options(args.rate),
        applied,
    );
    eprintln!("agent {agent_id} for cluster {} applying into {target}", args.cluster);
    let registry = crate::ops::registry(client.metrics(), client.generic().metrics());
    let connected = client.clone();
    let ops = crate::ops::Ops::start(&args.ops, registry, move || connected.is_connected()).await;
    // Closed on every way out (Kafka: the next agent process of this id must not wait for this
    // one's group session to time out).
    let result = match ops {
        Ok(ops) => {
            let result = applier.run(&client, shutdown.recv()).await;
            drop(ops);
            result
        }
        Err(e) => Err(e),
    };
    client.close(FLUSH_ON_EXIT).await;
    result?;
    eprintln!("agent stopped");
    Ok(ExitCode::SUCCESS)
}

/// The transport of the source `args` names (its config file loaded).
pub(crate) fn source_transport(args: &SourceClientArgs) -> Result<AnyTransport> {
    let config = load_config(args.transport.transport.kind(), &args.transport.config)?;
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| format!("{}-client", args.source_id));
    AnyTransport::source(&config, &args.source_id, &client_id).map_err(anyhow::Error::msg)
}

/// Starts the source client `args` names over `transport`, holding `works`, and its metrics and
/// health endpoints; the client is returned also when the endpoints fail (so it can be closed).
pub(crate) async fn start_source<Tr: Transport>(
    args: &SourceClientArgs,
    transport: Tr,
    works: Vec<ManifestWork>,
) -> (SourceWorkClient<Tr>, Result<crate::ops::Ops>) {
    let client = SourceWorkClient::start(transport, &args.source_id, works, client_options(args.rate));
    let registry = crate::ops::registry(client.metrics(), client.generic().metrics());
    let connected = client.clone();
    let ops = crate::ops::Ops::start(&args.ops, registry, move || connected.is_connected()).await;
    (client, ops)
}

// ---- source ----------------------------------------------------------------------------------

async fn source(args: SourceArgs) -> Result<ExitCode> {
    // The long-running commands stop gracefully on SIGINT/SIGTERM; the one-shot ones keep the
    // default (a signal ends them at once), so Ctrl-C never hangs.
    let mut shutdown = match args.command {
        SourceCommand::Sync { .. } | SourceCommand::Watch { .. } => Some(Shutdown::install()?),
        _ => None,
    };
    let transport = source_transport(&args.client)?;
    let state_dir = args.state_dir.clone().unwrap_or_else(|| state_home().join("sources"));
    let mut db = StateDb::open(&state_dir, &args.client.source_id)?;
    let works = db.load()?;
    // A deletion the agent acknowledges while the start-up resync settles removes the work
    // before `delete` looks it up: that is a finished deletion, not an unknown work.
    let known_at_start = |namespace: &str, name: &str| {
        works
            .iter()
            .any(|w| w.metadata.namespace.as_deref() == Some(namespace) && w.metadata.name.as_deref() == Some(name))
    };
    let deleted_while_settling = match &args.command {
        SourceCommand::Delete { name, namespace, .. } => known_at_start(namespace, name),
        _ => false,
    };
    let (client, ops) = start_source(&args.client, transport, works).await;
    let mut watch = client.watch();
    // Whatever the command's outcome, also when the source never got connected, the client is
    // closed cleanly (Kafka: the next source process of this id must not wait for this one's
    // group session to time out).
    let outcome: Result<ExitCode> = async {
        let ops = ops?;
        wait_connected(
            &format!("source {}", args.client.source_id),
            args.connect_timeout,
            client.wait_until_connected(),
            || client.last_error(),
        )
        .await?;
        // Statuses that changed while no source ran arrive as answers to the resync request.
        settle(&mut watch, &mut db).await?;
        let code = Ok(match args.command {
            SourceCommand::Apply { file, wait, timeout } => {
                apply(&client, &mut db, &mut watch, &file, wait, timeout).await?
            }
            SourceCommand::Get {
                name,
                namespace,
                output,
            } => {
                let work = client
                    .get(&namespace, &name)
                    .map_err(|_| anyhow::anyhow!("work {namespace}/{name} not found"))?;
                print_work(&work, output)?;
                ExitCode::SUCCESS
            }
            SourceCommand::List { namespace, selector } => {
                let params = ListParams::parse(&selector, "")?;
                print_table(&client.list(namespace.as_deref().unwrap_or(""), &params));
                ExitCode::SUCCESS
            }
            SourceCommand::Delete {
                name,
                namespace,
                wait,
                timeout,
            } => {
                if client.get(&namespace, &name).is_err() {
                    if !deleted_while_settling {
                        bail!("work {namespace}/{name} not found");
                    }
                    println!("work {namespace}/{name} deleted");
                    ExitCode::SUCCESS
                } else {
                    let key = (namespace.as_str(), name.as_str());
                    delete(&client, &mut db, &mut watch, key, wait.then_some(timeout)).await?
                }
            }
            SourceCommand::Sync { dir, interval } => {
                let Some(shutdown) = shutdown.as_mut() else {
                    bail!("no signal handler");
                };
                crate::sync::run(&client, &mut db, &mut watch, &dir, interval, shutdown).await?;
                ExitCode::SUCCESS
            }
            SourceCommand::Watch { namespace } => {
                let Some(shutdown) = shutdown.as_mut() else {
                    bail!("no signal handler");
                };
                let ns = namespace.unwrap_or_default();
                loop {
                    tokio::select! {
                        ev = watch.next() => match ev {
                            Some(ev) => { db.apply(&ev)?; print_event(&ev, &ns); }
                            None => break,
                        },
                        () = shutdown.recv() => break,
                    }
                }
                ExitCode::SUCCESS
            }
        });
        drop(ops);
        code
    }
    .await;
    // Specs of this command not yet acknowledged get a moment to go out; the store of this
    // process is persisted either way, and a later command sends what is left.
    client.flush(FLUSH_ON_EXIT).await;
    let persisted = persist_pending(&mut watch, &mut db);
    client.close(Duration::ZERO).await;
    let code = outcome?;
    persisted?;
    Ok(code)
}

async fn settle(watch: &mut ocm_ce_work::store::WatchStream, db: &mut StateDb) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let quiet = (Instant::now() + Duration::from_millis(400)).min(deadline);
        match tokio::time::timeout_at(quiet.into(), watch.next()).await {
            Ok(Some(ev)) => db.apply(&ev)?,
            _ => return Ok(()),
        }
    }
}

/// Writes the store changes that already happened to the database, in one transaction.
pub(crate) fn persist_pending(watch: &mut ocm_ce_work::store::WatchStream, db: &mut StateDb) -> Result<()> {
    let mut events = Vec::new();
    while let Some(Some(ev)) = futures::FutureExt::now_or_never(watch.next()) {
        events.push(ev);
    }
    if events.is_empty() {
        return Ok(());
    }
    db.apply_all(&events)
}

async fn next_until(watch: &mut ocm_ce_work::store::WatchStream, deadline: Instant) -> Result<WatchEvent> {
    match tokio::time::timeout_at(deadline.into(), watch.next()).await {
        Ok(Some(ev)) => Ok(ev),
        Ok(None) => bail!("the store closed"),
        Err(_) => bail!("timed out"),
    }
}

pub(crate) fn read_works(file: &Path) -> Result<Vec<ManifestWork>> {
    let text = if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading works from stdin")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    ocm_ce_work::file::works_from_yaml(&text)
        .with_context(|| format!("{} is not a file of ManifestWorks", file.display()))
}

fn version_of(work: &ManifestWork) -> u64 {
    work.annotation(RESOURCE_VERSION_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// True when the agent reported `version` of the work applied: `Applied=True` with an observed
/// generation of at least `version`; agents that report no generation (the Go work agent on
/// v0.15.0 works) count once a status newer than `seen_sequence` arrived.
fn applied(work: &ManifestWork, version: u64, seen_sequence: Option<&str>) -> bool {
    let Some(c) = find_status_condition(&work.status.conditions, condition_type::APPLIED) else {
        return false;
    };
    if c.status != "True" {
        return false;
    }
    match c.observed_generation.filter(|g| *g > 0) {
        Some(g) => g >= i64::try_from(version).unwrap_or(i64::MAX),
        None => work.annotation(SEQUENCE_ID_ANNOTATION) != seen_sequence,
    }
}

/// Deletes `namespace/name`; with `wait`, until the agent acknowledged it (within the timeout).
async fn delete<Tr: Transport>(
    client: &SourceWorkClient<Tr>,
    db: &mut StateDb,
    watch: &mut ocm_ce_work::store::WatchStream,
    (namespace, name): (&str, &str),
    wait: Option<Duration>,
) -> Result<ExitCode> {
    client
        .delete(namespace, name)
        .await
        .context("failed to publish the deletion")?;
    persist_pending(watch, db)?;
    if let Some(timeout) = wait {
        let deadline = Instant::now() + timeout;
        while client.get(namespace, name).is_ok() {
            let ev = next_until(watch, deadline).await.with_context(|| {
                format!(
                    "the agent did not acknowledge the deletion of {namespace}/{name} within {}s",
                    timeout.as_secs()
                )
            })?;
            db.apply(&ev)?;
        }
    }
    println!("work {namespace}/{name} deleted");
    Ok(ExitCode::SUCCESS)
}

/// What [`upsert`] did to one work, with the version it has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upserted {
    Created(u64),
    Updated(u64),
    Unchanged(u64),
}

impl Upserted {
    pub(crate) fn version(self) -> u64 {
        match self {
            Self::Created(v) | Self::Updated(v) | Self::Unchanged(v) => v,
        }
    }
}

/// Annotations a source keeps for itself; they do not make a work differ from its file.
fn user_annotations(work: &ManifestWork) -> std::collections::BTreeMap<String, String> {
    work.metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != RESOURCE_VERSION_ANNOTATION && k.as_str() != SEQUENCE_ID_ANNOTATION)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// True when `desired` (from a file) asks for something `existing` does not have.
fn differs(desired: &ManifestWork, existing: &ManifestWork) -> bool {
    let explicit = desired.annotation(RESOURCE_VERSION_ANNOTATION);
    (explicit.is_some() && explicit != existing.annotation(RESOURCE_VERSION_ANNOTATION))
        || desired.spec.workload.manifests != existing.spec.workload.manifests
        || desired.spec.delete_option != existing.spec.delete_option
        || desired.spec.manifest_configs != existing.spec.manifest_configs
        || desired.metadata.labels.clone().unwrap_or_default() != existing.metadata.labels.clone().unwrap_or_default()
        || user_annotations(desired) != user_annotations(existing)
}

/// Creates `work` (version 1 unless its file says), or updates the source's copy to it (the
/// version bumped unless its file says), or leaves it when nothing changed.
pub(crate) async fn upsert<Tr: Transport>(client: &SourceWorkClient<Tr>, mut work: ManifestWork) -> Result<Upserted> {
    let (ns, name) = (work.namespace_str().to_owned(), work.name().to_owned());
    let explicit = work.annotation(RESOURCE_VERSION_ANNOTATION).is_some();
    if let Ok(existing) = client.get(&ns, &name) {
        if !differs(&work, &existing) {
            return Ok(Upserted::Unchanged(version_of(&existing)));
        }
        let version = if explicit {
            version_of(&work)
        } else {
            version_of(&existing) + 1
        };
        let mut annotations = work.metadata.annotations.clone().unwrap_or_default();
        annotations.insert(RESOURCE_VERSION_ANNOTATION.to_owned(), version.to_string());
        // Annotations the file dropped are removed (null in a merge patch).
        let mut patched_annotations = serde_json::Map::new();
        for k in user_annotations(&existing).into_keys() {
            patched_annotations.insert(k, serde_json::Value::Null);
        }
        for (k, v) in annotations {
            patched_annotations.insert(k, v.into());
        }
        let patch = serde_json::json!({
            "metadata": {"labels": work.metadata.labels, "annotations": patched_annotations},
            "spec": {
                "workload": {"manifests": work.spec.workload.manifests},
                "deleteOption": work.spec.delete_option,
                "manifestConfigs": if work.spec.manifest_configs.is_empty() { serde_json::Value::Null } else { serde_json::to_value(&work.spec.manifest_configs)? },
            },
        });
        client
            .patch(&ns, &name, PatchType::Merge, patch.to_string().as_bytes())
            .await
            .with_context(|| format!("updating {ns}/{name}"))?;
        Ok(Upserted::Updated(version))
    } else {
        if !explicit {
            work.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(RESOURCE_VERSION_ANNOTATION.to_owned(), "1".to_owned());
        }
        let version = version_of(&work);
        client
            .create(&ns, work)
            .await
            .with_context(|| format!("creating {ns}/{name}"))?;
        Ok(Upserted::Created(version))
    }
}

async fn apply<Tr: Transport>(
    client: &SourceWorkClient<Tr>,
    db: &mut StateDb,
    watch: &mut ocm_ce_work::store::WatchStream,
    file: &Path,
    wait: bool,
    timeout: Duration,
) -> Result<ExitCode> {
    let mut targets = Vec::new();
    for work in read_works(file)? {
        let (ns, name) = (work.namespace_str().to_owned(), work.name().to_owned());
        let seen = client
            .get(&ns, &name)
            .ok()
            .and_then(|w| w.annotation(SEQUENCE_ID_ANNOTATION).map(str::to_owned));
        let done = upsert(client, work).await?;
        let what = match done {
            Upserted::Created(_) => "created",
            Upserted::Updated(_) => "updated",
            Upserted::Unchanged(_) => "unchanged",
        };
        println!("work {ns}/{name} {what} (version {})", done.version());
        targets.push((ns, name, done.version(), seen));
        persist_pending(watch, db)?;
    }
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + timeout;
    for (ns, name, version, seen) in targets {
        loop {
            let work = client.get(&ns, &name)?;
            if applied(&work, version, seen.as_deref()) {
                println!("---");
                print_work(&work, Output::Yaml)?;
                break;
            }
            let ev = next_until(watch, deadline).await.with_context(|| {
                format!(
                    "the agent did not report {ns}/{name} applied within {}s",
                    timeout.as_secs()
                )
            })?;
            db.apply(&ev)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_work(work: &ManifestWork, output: Output) -> Result<()> {
    let value = serde_json::to_value(work)?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(&value)?),
    }
    Ok(())
}

fn condition_cell(work: &ManifestWork, ty: &str) -> String {
    find_status_condition(&work.status.conditions, ty).map_or_else(|| "-".to_owned(), |c| c.status.clone())
}

fn print_table(works: &[Arc<ManifestWork>]) {
    println!(
        "{:<20} {:<32} {:>7} {:>8} {:>9} {:>9}",
        "NAMESPACE", "NAME", "VERSION", "APPLIED", "AVAILABLE", "DELETING"
    );
    for w in works {
        println!(
            "{:<20} {:<32} {:>7} {:>8} {:>9} {:>9}",
            w.namespace_str(),
            w.name(),
            w.source_resource_version(),
            condition_cell(w, condition_type::APPLIED),
            condition_cell(w, condition_type::AVAILABLE),
            if w.is_deleting() { "yes" } else { "no" },
        );
    }
}

fn print_event(ev: &WatchEvent, namespace: &str) {
    let line = |kind: &str, w: &ManifestWork| {
        if namespace.is_empty() || w.namespace_str() == namespace {
            println!(
                "{kind:<9} {}/{} version={} applied={} available={}",
                w.namespace_str(),
                w.name(),
                w.source_resource_version(),
                condition_cell(w, condition_type::APPLIED),
                condition_cell(w, condition_type::AVAILABLE)
            );
        }
    };
    match ev {
        WatchEvent::Added(w) => line("ADDED", w),
        WatchEvent::Modified(w) => line("MODIFIED", w),
        WatchEvent::Deleted(w) => line("DELETED", w),
        WatchEvent::Relisted(all) => all.iter().for_each(|w| line("SYNCED", w)),
    }
}

// ---- quickstart and bench ---------------------------------------------------------------------

/// A broker on a free loopback port, stopped when dropped.
pub(crate) struct EmbeddedBroker {
    addr: std::net::SocketAddr,
    handle: ocm_ce_broker::BrokerHandle,
    task: tokio::task::JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Starts it.
    pub(crate) async fn start() -> Result<Self> {
        let broker = Broker::builder()
            .insecure(true)
            .build()
            .context("building the embedded broker")?;
        let handle = broker.handle();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port for the broker")?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = broker.serve(listener).await {
                tracing::error!(error = %e, "the embedded broker failed");
            }
        });
        Ok(Self { addr, handle, task })
    }

    /// A gRPC config of it.
    pub(crate) fn config(&self) -> GrpcConfig {
        GrpcConfig::new(self.addr.to_string())
    }

    /// The transport of source `source_id` to it.
    pub(crate) fn source_transport(&self, source_id: &str) -> Result<GrpcTransport> {
        GrpcTransport::new(self.config(), Role::source(source_id)).map_err(anyhow::Error::msg)
    }

    /// The transport of the agent of `cluster` (`<cluster>-work-agent`) to it.
    pub(crate) fn agent_transport(&self, cluster: &str) -> Result<GrpcTransport> {
        GrpcTransport::new(self.config(), Role::agent(cluster, format!("{cluster}-work-agent")))
            .map_err(anyhow::Error::msg)
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.task.abort();
    }
}

/// Starts one agent per cluster (transports from `make`, built before any client starts), each
/// applying into `dir/<cluster>/`, or into memory when `dir` is `None`.
fn start_agents<Tr: Transport + Clone>(
    clusters: &[String],
    dir: Option<&Path>,
    make: impl Fn(&str) -> Result<Tr>,
    options: &WorkClientOptions,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<AgentWorkClient<Tr>>> {
    let transports = clusters
        .iter()
        .map(|cluster| Ok((cluster, make(cluster)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut agents = Vec::new();
    for (cluster, transport) in transports {
        let agent = AgentWorkClient::start(
            transport,
            cluster,
            format!("{cluster}-work-agent"),
            AgentCodecs::bundles(),
            options.clone(),
        );
        let mut applier = dir.map_or_else(Applier::in_memory, Applier::new);
        let a = agent.clone();
        tasks.spawn(async move {
            if let Err(e) = applier.run(&a, std::future::pending()).await {
                tracing::error!(error = %format!("{e:#}"), "an agent stopped");
            }
        });
        agents.push(agent);
    }
    Ok(agents)
}

fn progress_bar(enabled: bool) -> Option<ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:>10} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// How long `quickstart` and `bench` wait until every client is subscribed.
const PLAN_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `plan` with one source and an agent per cluster, all in this process, the agents
/// applying into `dir` (in memory when `None`). Whatever the outcome (done, failed, not
/// connected in time, or `stop` resolving first) every client is closed gracefully before this
/// returns, so that the next run is not held up by what this one leaves behind (Kafka: a
/// consumer group member that would keep its partitions until its session times out).
pub(crate) async fn run_plan<Tr: Transport + Clone>(
    plan: &Plan,
    dir: Option<&Path>,
    source_id: &str,
    source_transport: Tr,
    agent_transport: impl Fn(&str) -> Result<Tr>,
    show_progress: bool,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Summary> {
    let options = in_process_options();
    let mut tasks = JoinSet::new();
    let agents = start_agents(&plan.clusters, dir, agent_transport, &options, &mut tasks)?;
    let result = run_source(plan, source_id, source_transport, &agents, show_progress, stop).await;
    tasks.shutdown().await;
    futures::future::join_all(agents.iter().map(|a| a.close(FLUSH_ON_EXIT))).await;
    result
}

/// Runs `plan` from a source in this process once it and `agents` (those of this process; none
/// when the agents are other processes, already subscribed) are connected, and closes the
/// source gracefully whatever the outcome.
pub(crate) async fn run_source<Tr: Transport + Clone>(
    plan: &Plan,
    source_id: &str,
    source_transport: Tr,
    agents: &[AgentWorkClient<Tr>],
    show_progress: bool,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Summary> {
    let source = SourceWorkClient::start(source_transport, source_id, Vec::new(), in_process_options());
    let bar = progress_bar(show_progress);
    let run = async {
        let connect = async {
            source.wait_until_connected().await;
            for a in agents {
                a.wait_until_connected().await;
            }
        };
        let not_connected = || {
            let mut waiting: Vec<String> = Vec::new();
            if !source.is_connected() {
                waiting.push(format!("source {source_id}"));
            }
            waiting.extend(
                agents
                    .iter()
                    .filter(|a| !a.is_connected())
                    .map(|a| format!("agent of {}", a.cluster_name())),
            );
            let last = std::iter::once(source.last_error())
                .chain(agents.iter().map(AgentWorkClient::last_error))
                .flatten()
                .next();
            Some(format!(
                "not subscribed: {}{}",
                waiting.join(", "),
                last.map(|e| format!("; last error: {e}")).unwrap_or_default()
            ))
        };
        wait_connected("the benchmark clients", PLAN_CONNECT_TIMEOUT, connect, not_connected).await?;
        let report = |phase: &str, done: usize, total: usize| {
            if let Some(b) = &bar {
                b.set_message(phase.to_owned());
                b.set_length(total as u64);
                b.set_position(done as u64);
            }
        };
        lifecycle::run(&source, plan, &report).await
    };
    let result = tokio::select! {
        result = run => result,
        () = stop => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    source.close(FLUSH_ON_EXIT).await;
    result
}

/// The cluster names `cluster1`..`clusterN`.
pub(crate) fn clusters(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("cluster{i}")).collect()
}

/// Prints `s` as a table (or one JSON object), with `extra` rows.
pub(crate) fn print_summary(s: &Summary, json: bool, extra: &[(&str, String)]) -> Result<()> {
    if json {
        let mut v = serde_json::to_value(s)?;
        for (k, val) in extra {
            v[*k] = val
                .parse::<f64>()
                .map_or_else(|_| serde_json::Value::String(val.clone()), serde_json::Value::from);
        }
        println!("{v}");
        return Ok(());
    }
    let mut rows: Vec<(&str, String)> = vec![
        ("works created", s.works_created.to_string()),
        ("works updated", s.works_updated.to_string()),
        ("works deleted", s.works_deleted.to_string()),
        ("statuses received", s.statuses_received.to_string()),
        ("create → Applied p50", format!("{:.1} ms", s.p50_ms)),
        ("create → Applied p99", format!("{:.1} ms", s.p99_ms)),
        ("create → Applied max", format!("{:.1} ms", s.max_ms)),
        (
            "throughput",
            format!("{:.1} works/s (whole lifecycles)", s.works_per_sec),
        ),
        ("elapsed", format!("{:.2} s", s.elapsed_s)),
        (
            "phases",
            format!(
                "apply {:.2} s, update {:.2} s, delete {:.2} s",
                s.apply_s, s.update_s, s.delete_s
            ),
        ),
    ];
    rows.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    println!("{:-<56}", "");
    for (k, v) in &rows {
        println!("{k:<24} {v}");
    }
    println!("{:-<56}", "");
    Ok(())
}

async fn quickstart(args: QuickstartArgs) -> Result<ExitCode> {
    if args.clusters == 0 || args.works == 0 {
        bail!("--clusters and --works must be at least 1");
    }
    let broker = EmbeddedBroker::start().await?;
    let temp;
    let dir = match &args.apply_dir {
        Some(d) => d.clone(),
        None => {
            temp = TempDir::new()?;
            temp.0.clone()
        }
    };
    if !args.json {
        eprintln!(
            "ocm-ce quickstart: gRPC broker on {}, 1 source, {} agents, {} works each (applied into {})",
            broker.addr,
            args.clusters,
            args.works,
            dir.display()
        );
    }
    let source = broker.source_transport("ocm-ce-quickstart")?;
    let plan = Plan {
        clusters: clusters(args.clusters),
        works_per_cluster: args.works,
        manifest_bytes: 256,
        rate: 0.0,
        update_every: 2,
        timeout: args.timeout,
    };
    let make_agent = |cluster: &str| broker.agent_transport(cluster);
    let mut shutdown = Shutdown::install()?;
    let summary = run_plan(
        &plan,
        Some(&dir),
        "ocm-ce-quickstart",
        source,
        make_agent,
        !args.json,
        shutdown.recv(),
    )
    .await?;
    print_summary(&summary, args.json, &[])?;
    Ok(if summary.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A temporary directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// Creates it.
    pub(crate) fn new() -> Result<Self> {
        let base = std::env::temp_dir().join(format!("ocm-ce-quickstart-{}", std::process::id()));
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        Ok(Self(base))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
