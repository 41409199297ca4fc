//! A real Kubernetes API server for the tests (`OCM_CE_TEST_KUBECONFIG`, written by
//! `scripts/test-env.sh`; tests skip when it is unset), and a source, an agent and an applier
//! connected through the in-memory broker.

#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use ocm_ce_client::testing::{FakeBroker, FakeTransport};
use ocm_ce_client::{BackoffConfig, ClientOptions};
use ocm_ce_kube::{ApplierConfig, ApplierMetrics, KubeApplier, client_from_kubeconfig, hub_hash};
use ocm_ce_work::api::RESOURCE_VERSION_ANNOTATION;
use ocm_ce_work::client::{AgentCodecs, AgentWorkClient, SourceWorkClient, WorkClientOptions};
use ocm_ce_work::{
    DeleteOption, DeletePropagationPolicy, FeedbackRule, FeedbackType, JsonPath, Manifest, ManifestWork, OrphaningRule,
    PatchType, SelectivelyOrphan,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type Source = SourceWorkClient<FakeTransport>;
pub type Agent = AgentWorkClient<FakeTransport>;

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(30);

/// The admin kubeconfig of the test API server, or `None` (and a note why the test skips).
pub fn kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("OCM_CE_TEST_KUBECONFIG") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => {
            eprintln!("skipped: OCM_CE_TEST_KUBECONFIG is unset (scripts/test-env.sh start DIR writes it)");
            None
        }
    }
}

/// A client of the test API server, or `None` when there is none.
pub async fn kube() -> Option<kube::Client> {
    let path = kubeconfig()?;
    Some(client_from_kubeconfig(Some(&path)).await.unwrap())
}

/// A client of the test API server as the identity without permissions of
/// `OCM_CE_TEST_KUBECONFIG_LIMITED`, and its user name.
pub async fn limited_kube() -> (kube::Client, String) {
    let path = std::env::var_os("OCM_CE_TEST_KUBECONFIG_LIMITED").expect("test-env writes it with the admin one");
    let user = std::env::var("OCM_CE_TEST_KUBE_LIMITED_USER").unwrap();
    (
        client_from_kubeconfig(Some(PathBuf::from(path).as_path()))
            .await
            .unwrap(),
        user,
    )
}

/// A name nobody else uses (tests share one API server).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Creates a namespace.
pub async fn create_namespace(kube: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(kube.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// Retries `check` every 50 ms until it is true, failing the test after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, WAIT, check).await;
}

/// [`eventually`] with a bound of its own.
pub async fn eventually_within<F, Fut>(what: &str, wait: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + wait;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} ({wait:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A manifest from JSON.
pub fn manifest(value: Value) -> Manifest {
    Manifest::from_raw(value.to_string()).unwrap()
}

/// A ConfigMap manifest.
pub fn configmap(ns: &str, name: &str, data: Value) -> Manifest {
    manifest(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}),
    )
}

/// A delete option that orphans ConfigMap `namespace/name` only (`SelectivelyOrphan`).
pub fn orphaning_configmap(namespace: &str, name: &str) -> DeleteOption {
    DeleteOption {
        propagation_policy: DeletePropagationPolicy::SelectivelyOrphan,
        selectively_orphan: Some(SelectivelyOrphan {
            orphaning_rules: vec![OrphaningRule {
                group: String::new(),
                resource: "configmaps".into(),
                name: name.into(),
                namespace: namespace.into(),
            }],
        }),
    }
}

/// The `WellKnownStatus` feedback rule.
pub fn well_known_status_rule() -> FeedbackRule {
    FeedbackRule {
        type_: FeedbackType::WellKnownStatus,
        json_paths: vec![],
    }
}

/// A `JSONPaths` feedback rule reporting the value at `path` as `name`.
pub fn json_path_rule(name: &str, path: &str) -> FeedbackRule {
    FeedbackRule {
        type_: FeedbackType::JsonPaths,
        json_paths: vec![JsonPath {
            name: name.into(),
            version: String::new(),
            path: path.into(),
        }],
    }
}

/// Client options of the tests: no rate limit, quick reconnects.
pub fn client_options() -> WorkClientOptions {
    WorkClientOptions::default().client(
        ClientOptions::default()
            .rate_limit(None)
            .backoff(BackoffConfig::constant(Duration::from_millis(50))),
    )
}

/// The applier configuration of the tests: quick status syncs and retries.
pub fn applier_config(hub: &str) -> ApplierConfig {
    ApplierConfig::new(hub, "agent1")
        .status_sync_interval(Duration::from_millis(500))
        .retry(Duration::from_millis(50), Duration::from_millis(500))
        .crd_established_timeout(Duration::from_secs(20))
}

/// A running agent with its applier.
pub struct RunningAgent {
    pub agent: Agent,
    pub metrics: ApplierMetrics,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningAgent {
    /// Stops the applier (it finishes what it is doing) and drops the agent.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(WAIT, self.task).await.unwrap().unwrap();
        self.agent.close(std::time::Duration::from_secs(5)).await;
    }
}

/// A source, an agent of cluster `cluster` with a [`KubeApplier`] on the test API server, and a
/// namespace of the test's own.
pub struct Env {
    pub kube: kube::Client,
    pub broker: FakeBroker,
    pub source: Source,
    pub cluster: String,
    pub ns: String,
    pub hub: String,
    versions: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Env {
    /// `None` when there is no test API server.
    pub async fn new() -> Option<Self> {
        let kube = kube().await?;
        let ns = unique("t");
        create_namespace(&kube, &ns).await;
        let broker = FakeBroker::new();
        let source = SourceWorkClient::start(broker.source("source1"), "source1", Vec::new(), client_options());
        tokio::time::timeout(WAIT, source.wait_until_connected()).await.unwrap();
        Some(Self {
            kube,
            broker,
            source,
            cluster: unique("cluster"),
            hub: hub_hash(&unique("hub")),
            ns,
            versions: Default::default(),
        })
    }

    /// Starts an agent (its store seeded with the works it recorded, as after a restart) and
    /// its applier.
    pub async fn start_agent(&self, config: ApplierConfig) -> RunningAgent {
        self.start_agent_as(self.kube.clone(), config).await
    }

    /// [`start_agent`](Self::start_agent) with the applier writing through `kube` (another
    /// identity).
    pub async fn start_agent_as(&self, kube: kube::Client, config: ApplierConfig) -> RunningAgent {
        let applier = KubeApplier::new(kube, config);
        let recorded = applier.recorded_works(&self.cluster).await.unwrap();
        let agent = AgentWorkClient::start_with_works(
            self.broker.agent(&self.cluster, "agent1"),
            &self.cluster,
            "agent1",
            AgentCodecs::bundles(),
            client_options(),
            recorded,
        );
        tokio::time::timeout(WAIT, agent.wait_until_connected()).await.unwrap();
        let metrics = applier.metrics().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let runner = agent.clone();
        let task = tokio::spawn(async move {
            applier
                .run(&runner, async move {
                    let _ = stopped.await;
                })
                .await;
        });
        RunningAgent {
            agent,
            metrics,
            stop,
            task,
        }
    }

    /// Restarts the source from the works it holds that `keep` accepts (what a source that
    /// lost the others, e.g. removed from its database, loads).
    pub async fn restart_source(&mut self, keep: impl Fn(&ManifestWork) -> bool) {
        let works: Vec<ManifestWork> = self
            .source
            .list(&self.cluster, &Default::default())
            .iter()
            .filter(|w| keep(w))
            .map(|w| (**w).clone())
            .collect();
        self.source.close(std::time::Duration::from_secs(5)).await;
        self.source = SourceWorkClient::start(self.broker.source("source1"), "source1", works, client_options());
        tokio::time::timeout(WAIT, self.source.wait_until_connected())
            .await
            .unwrap();
    }

    /// Creates work `name` with `manifests`, changed by `configure`; returns its UID.
    pub async fn create_work(
        &self,
        name: &str,
        manifests: Vec<Manifest>,
        configure: impl FnOnce(&mut ManifestWork),
    ) -> String {
        let mut w = ManifestWork::new(&self.cluster, name, manifests);
        w.metadata.annotations = Some([(RESOURCE_VERSION_ANNOTATION.to_owned(), "1".to_owned())].into());
        configure(&mut w);
        self.versions.lock().unwrap().insert(name.to_owned(), 1);
        self.source.create(&self.cluster, w).await.unwrap().uid_str().to_owned()
    }

    /// Replaces the spec of work `name` (with a new version).
    pub async fn update_work(&self, name: &str, change: impl FnOnce(&mut ManifestWork)) {
        let mut w = (*self.source.get(&self.cluster, name).unwrap()).clone();
        change(&mut w);
        let version = {
            let mut versions = self.versions.lock().unwrap();
            let v = versions.entry(name.to_owned()).or_insert(1);
            *v += 1;
            *v
        };
        let patch = json!([
            {"op": "replace", "path": "/spec", "value": w.spec},
            {"op": "replace", "path": "/metadata/annotations/cloudevents.open-cluster-management.io~1resourceversion", "value": version.to_string()},
        ]);
        self.source
            .patch(&self.cluster, name, PatchType::Json, patch.to_string().as_bytes())
            .await
            .unwrap();
    }

    /// The source's copy of work `name`.
    pub fn work(&self, name: &str) -> Option<std::sync::Arc<ManifestWork>> {
        self.source.get(&self.cluster, name).ok()
    }

    /// Waits until the source's copy of `name` satisfies `check`.
    pub async fn wait_work(&self, name: &str, what: &str, check: impl Fn(&ManifestWork) -> bool) -> ManifestWork {
        let mut found = None;
        eventually(what, || {
            let w = self.work(name);
            let ok = w.as_deref().is_some_and(&check);
            if ok {
                found = w;
            }
            async move { ok }
        })
        .await;
        (*found.unwrap()).clone()
    }

    /// Waits until the source no longer has work `name` (the agent reported it deleted).
    pub async fn wait_work_gone(&self, name: &str) {
        self.wait_work_gone_within(name, WAIT).await;
    }

    /// [`wait_work_gone`](Self::wait_work_gone) with a bound of its own.
    pub async fn wait_work_gone_within(&self, name: &str, wait: Duration) {
        eventually_within(&format!("work {name} to be deleted"), wait, || {
            let gone = self.work(name).is_none();
            async move { gone }
        })
        .await;
    }
}
