//! Fault injection: real brokers (the ocm-ce gRPC broker, Mosquitto, Kafka), a long-running
//! source (`ocm-ce source … sync`) and `ocm-ce agent`s as separate processes on loopback, and
//! faults — brokers, agents and sources killed (SIGKILL) and restarted, connections that go
//! silent or are cut, a stalled subscriber, 10 000 works through one cluster, 400 KB works,
//! status resyncs of 3000 works, forged and colliding statuses. After each fault the suite
//! waits for the invariant of `check.rs` (both sides' own state agree, nothing lost) to hold
//! within 30 s.
//!
//! Scenarios run one at a time (they measure convergence times on a small machine). MQTT
//! scenarios need `OCM_CE_MOSQUITTO_BIN`, Kafka ones `OCM_CE_TEST_KAFKA` (both from
//! `scripts/test-env.sh`, which CI runs); without them they are skipped with a note.

// These tests drive separate processes from plain threads: blocking sleeps are what they need.
#![allow(
    clippy::unwrap_used,
    clippy::print_stderr,
    clippy::disallowed_methods,
    unreachable_pub
)]

mod check;
mod proxy;
mod system;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use system::{Kind, Options, System};

/// The bound of every convergence after a fault.
const CONVERGE: Duration = Duration::from_secs(30);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn available(kind: Kind) -> bool {
    let need = match kind {
        Kind::Grpc => return true,
        Kind::Mqtt => "OCM_CE_MOSQUITTO_BIN",
        Kind::Kafka => "OCM_CE_TEST_KAFKA",
    };
    let ok = std::env::var_os(need).is_some()
        && (kind != Kind::Kafka || cfg!(feature = "kafka") || std::env::var_os("OCM_CE_BIN").is_some());
    if !ok {
        eprintln!(
            "skipping the {} scenario: {need} is not set (run scripts/test-env.sh)",
            kind.name()
        );
    }
    ok
}

/// One test per transport of a scenario: `scenario: test_name => Kind, …` makes each
/// `#[test] fn test_name()` run `scenario(Kind::…)`.
macro_rules! per_transport {
    ($scenario:ident: $($name:ident => $kind:ident,)+) => {
        $(
            #[test]
            fn $name() {
                $scenario(Kind::$kind);
            }
        )+
    };
}

/// Whether the scenario of `kind` can run here (see [`available`]); then the one-at-a-time lock.
fn scenario(kind: Kind) -> Option<std::sync::MutexGuard<'static, ()>> {
    available(kind).then(serial)
}

fn pause(d: Duration) {
    std::thread::sleep(d);
}

/// A multi-threaded runtime with `workers` threads, for the raw clients of a scenario.
fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// A raw subscription of an agent `stalled` of cluster1 at the gRPC broker at `url`, which
/// nobody reads: (its connection, the subscription).
async fn stalled_subscriber(
    url: String,
) -> (
    ocm_ce_client::transport::grpc::GrpcConnection,
    ocm_ce_client::Subscription,
) {
    use ocm_ce_client::transport::grpc::{GrpcConfig, GrpcTransport};
    use ocm_ce_client::{Connection, Role, Transport};
    let transport = GrpcTransport::new(GrpcConfig::new(url), Role::agent("cluster1", "stalled")).unwrap();
    let conn = transport.connect().await.unwrap();
    let sub = conn.subscribe().await.unwrap();
    (conn, sub)
}

/// `ocm-ce broker --listen 127.0.0.1:<a free port> --insecure <extra>`, its stdout and stderr in
/// `dir/broker.log`, once it listens: (the process, its port, the log).
fn logged_broker(dir: &std::path::Path, extra: &[&str]) -> (std::process::Child, u16, std::path::PathBuf) {
    let port = system::free_port();
    let log = dir.join("broker.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = std::process::Command::new(system::bin())
        .args(["broker", "--listen", &format!("127.0.0.1:{port}"), "--insecure"])
        .args(extra)
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    system::wait_port(port, Duration::from_secs(10));
    (child, port, log)
}

/// Kills the broker `at` into a phase and starts it again `down` later.
fn restart_broker(sys: &mut System, down: Duration) {
    sys.kill_broker();
    pause(down);
    sys.start_broker();
}

/// Puts `works` into `works.yaml`, kills the broker 300 ms later while they are being sent,
/// starts it again a second later, and waits for convergence.
fn put_while_the_broker_restarts(sys: &mut System, works: &[(String, String, String)], phase: &str) {
    sys.put_file("works.yaml", works);
    pause(Duration::from_millis(300));
    restart_broker(sys, Duration::from_secs(1));
    sys.converge(&format!("broker restarted during the {phase} phase"), CONVERGE);
}

fn broker_restarts(kind: Kind) {
    let Some(_one) = scenario(kind) else { return };
    let mut sys = System::start(kind, Options::clusters(2));
    let n = 100;
    let started = Instant::now();
    // create: the broker dies while the works are being sent
    let works = sys.works("w", n, 1024, "v1");
    put_while_the_broker_restarts(&mut sys, &works, "create");
    // update
    let works = sys.works("w", n, 1024, "v2");
    put_while_the_broker_restarts(&mut sys, &works, "update");
    // delete half
    let keep: Vec<_> = works
        .into_iter()
        .filter(|(_, name, _)| {
            name.ends_with('0')
                || name.ends_with('2')
                || name.ends_with('4')
                || name.ends_with('6')
                || name.ends_with('8')
        })
        .collect();
    put_while_the_broker_restarts(&mut sys, &keep, "delete");
    eprintln!(
        "[{}] broker restarts: {:.1}s in all",
        kind.name(),
        started.elapsed().as_secs_f64()
    );
}

per_transport! {
    broker_restarts:
    the_grpc_broker_killed_in_each_phase_loses_nothing => Grpc,
    mosquitto_killed_in_each_phase_loses_nothing => Mqtt,
    kafka_killed_in_each_phase_loses_nothing => Kafka,
}

#[test]
fn an_agent_killed_and_restarted_completes_what_changed_while_it_was_down() {
    let _one = serial();
    let mut sys = System::start(Kind::Grpc, Options::clusters(2));
    let works = sys.works("w", 100, 1024, "v1");
    sys.put_file("works.yaml", &works);
    sys.converge("initial works", CONVERGE);
    // killed in the middle of applying updates
    let works = sys.works("w", 100, 1024, "v2");
    sys.put_file("works.yaml", &works);
    pause(Duration::from_millis(200));
    sys.kill_agent("cluster1");
    // while it is down: more updates, and deletions (which it completes from its records)
    let mut works = sys.works("w", 100, 1024, "v3");
    works.retain(|(c, name, _)| !(c == "cluster1" && name.ends_with('7')));
    sys.put_file("works.yaml", &works);
    pause(Duration::from_secs(2));
    sys.start_agent("cluster1");
    sys.converge("agent killed and restarted", CONVERGE);
    // a graceful stop exits 0 (SIGTERM is handled like Ctrl-C)
    assert_eq!(sys.stop_agent("cluster2"), Some(0), "SIGTERM ends the agent cleanly");
    sys.start_agent("cluster2");
    sys.converge("agent stopped with SIGTERM and started", CONVERGE);
}

#[test]
fn a_source_killed_and_restarted_converges() {
    let _one = serial();
    let mut sys = System::start(Kind::Grpc, Options::clusters(2));
    let works = sys.works("w", 150, 1024, "v1");
    sys.put_file("works.yaml", &works);
    pause(Duration::from_millis(300));
    sys.kill_source();
    // while it is down the directory changes
    let mut works = sys.works("w", 150, 1024, "v2");
    works.retain(|(_, name, _)| !name.ends_with('3'));
    sys.put_file("works.yaml", &works);
    pause(Duration::from_secs(1));
    sys.start_source();
    sys.converge("source killed and restarted", CONVERGE);
    assert_eq!(sys.stop_source(), Some(0), "SIGTERM ends the source cleanly");
}

fn silent_connection(kind: Kind) {
    let Some(_one) = scenario(kind) else { return };
    let mut options = Options::clusters(2);
    options.proxy = true;
    let mut sys = System::start(kind, options);
    let works = sys.works("w", 50, 1024, "v1");
    sys.put_file("works.yaml", &works);
    sys.converge("before the network fault", CONVERGE);
    // the path goes silent while updates are sent: nothing closes, nothing arrives
    let proxy = sys.proxy.as_ref().unwrap();
    proxy.set_silent(true);
    let works = sys.works("w", 50, 1024, "v2");
    sys.put_file("works.yaml", &works);
    pause(Duration::from_secs(10));
    // then every connection is cut, and the path works again
    let proxy = sys.proxy.as_ref().unwrap();
    proxy.cut();
    proxy.set_silent(false);
    sys.converge("a silent, then cut connection", CONVERGE);
    let detected = sys.log_lines("agent-cluster1.log", "disconnected").len()
        + sys.log_lines("agent-cluster1.log", "reconnect").len();
    assert!(detected > 0, "the agent noticed the dead connection");
}

per_transport! {
    silent_connection:
    a_grpc_connection_that_goes_silent_is_detected_and_repaired => Grpc,
    an_mqtt_connection_that_goes_silent_is_detected_and_repaired => Mqtt,
}

/// How long cluster2's 300 works take to converge while cluster1 gets 300 works of 64 KB:
/// with cluster1's agent reading, or with cluster1's only subscriber reading nothing.
/// A raw subscription kept open, and its runtime (the subscription is dropped first).
type Held = (Box<dyn std::any::Any>, tokio::runtime::Runtime);

fn cluster2_beside_cluster1(stalled: bool) -> (System, Duration, Option<Held>) {
    let mut options = Options::clusters(2);
    options.broker_args = vec!["--stall-timeout".into(), "3s".into(), "--queue".into(), "50".into()];
    let mut sys = System::start(Kind::Grpc, options);
    let mut held = None;
    if stalled {
        sys.kill_agent("cluster1");
        let runtime = runtime(1);
        let url = std::fs::read_to_string(sys.path("source.yaml")).unwrap();
        let url = url.lines().next().unwrap().trim_start_matches("url: ").to_owned();
        let subscription = runtime.block_on(stalled_subscriber(url));
        held = Some((Box::new(subscription) as Box<dyn std::any::Any>, runtime));
    }
    sys.checked = vec!["cluster2".into()];
    let big: Vec<_> = sys
        .works("big", 300, 64 * 1024, "v1")
        .into_iter()
        .filter(|(c, _, _)| c == "cluster1")
        .collect();
    let small: Vec<_> = sys
        .works("small", 300, 1024, "v1")
        .into_iter()
        .filter(|(c, _, _)| c == "cluster2")
        .collect();
    sys.put_file("big.yaml", &big);
    sys.put_file("small.yaml", &small);
    let what = if stalled {
        "cluster2 beside a stalled cluster1"
    } else {
        "cluster2 beside a working cluster1"
    };
    let took = sys.converge(what, CONVERGE);
    (sys, took, held)
}

/// One cluster's only subscriber stops reading: the broker holds back the publishes for that
/// cluster only, and the other cluster's works go through as fast as beside a working one.
/// Once the stuck subscriber is disconnected and a real agent comes, everything converges.
#[test]
fn a_stalled_subscriber_holds_back_only_its_own_cluster_and_loses_nothing() {
    let _one = serial();
    let (baseline, working, _) = cluster2_beside_cluster1(false);
    drop(baseline);
    let (mut sys, beside, held) = cluster2_beside_cluster1(true);
    eprintln!(
        "[grpc] 300 works on cluster2: {:.2}s beside a working cluster1, {:.2}s beside a stalled one (ratio {:.2})",
        working.as_secs_f64(),
        beside.as_secs_f64(),
        beside.as_secs_f64() / working.as_secs_f64()
    );
    assert!(
        beside < working * 2 + Duration::from_secs(2),
        "a stalled cluster must not slow the others down: {working:?} vs {beside:?}"
    );
    // A real agent for cluster1: the stuck subscriber is disconnected, nothing is lost.
    sys.checked = sys.clusters.clone();
    sys.start_agent("cluster1");
    sys.converge("after the stuck subscriber was disconnected", CONVERGE);
    let kicked = sys.log_lines("broker.log", "disconnecting a stuck subscriber");
    assert_eq!(
        kicked.len(),
        1,
        "the stuck subscriber, and only it, was disconnected: {kicked:?}"
    );
    drop(held);
}

#[test]
fn ten_thousand_works_through_one_cluster() {
    let _one = serial();
    let mut sys = System::start(Kind::Grpc, Options::clusters(1));
    let started = Instant::now();
    for f in 0..10 {
        let works: Vec<_> = sys.works(&format!("f{f}"), 1000, 256, "v1").into_iter().collect();
        sys.put_file(&format!("works-{f}.yaml"), &works);
    }
    let took = sys.converge("10 000 works in one cluster", Duration::from_secs(120));
    eprintln!(
        "[grpc] 10 000 works created, applied and reported in {:.1}s ({:.0} works/s)",
        took.as_secs_f64(),
        10_000.0 / started.elapsed().as_secs_f64()
    );
    for f in 0..10 {
        sys.remove_file(&format!("works-{f}.yaml"));
    }
    sys.converge("10 000 works deleted", Duration::from_secs(120));
}

fn large_works(kind: Kind) {
    let Some(_one) = scenario(kind) else { return };
    let mut sys = System::start(kind, Options::clusters(1));
    let works = sys.works("big", 3, 400 * 1024, "v1");
    sys.put_file("works.yaml", &works);
    sys.converge("400 KB works", CONVERGE);
    let works = sys.works("big", 3, 400 * 1024, "v2");
    sys.put_file("works.yaml", &works);
    sys.converge("400 KB works updated", CONVERGE);
}

per_transport! {
    large_works:
    works_of_400_kb_travel_over_grpc => Grpc,
    works_of_400_kb_travel_over_mqtt => Mqtt,
    works_of_400_kb_travel_over_kafka => Kafka,
}

/// A source restored from an old backup of its database (specs, but none of the statuses):
/// its status resync of 3000 works brings every status back.
fn status_resync(kind: Kind) {
    let Some(_one) = scenario(kind) else { return };
    let mut sys = System::start(kind, Options::clusters(1));
    // The backup is taken while the agent is away: every work, no status.
    let cluster = sys.clusters[0].clone();
    assert_eq!(sys.stop_agent(&cluster), Some(0), "SIGTERM ends the agent cleanly");
    let works = sys.works("w", 3000, 64, "v1");
    sys.put_file("works.yaml", &works);
    let backup = sys.path("backup.db");
    let deadline = Instant::now() + CONVERGE;
    while !copy_when(&sys, 3000, &backup) {
        assert!(Instant::now() < deadline, "the source never held the 3000 works");
        pause(Duration::from_millis(100));
    }
    sys.start_agent(&cluster);
    sys.converge("3000 works", Duration::from_secs(60));
    assert_eq!(sys.stop_source(), Some(0));
    std::fs::copy(&backup, sys.db_path()).unwrap();
    let _ = std::fs::remove_file(sys.db_path().with_extension("db-wal"));
    let _ = std::fs::remove_file(sys.db_path().with_extension("db-shm"));
    sys.start_source();
    sys.converge("a status resync of 3000 works", CONVERGE);
}

/// Copies the source database to `to` when it holds `n` works.
fn copy_when(sys: &System, n: usize, to: &std::path::Path) -> bool {
    let Ok(conn) = rusqlite::Connection::open(sys.db_path()) else {
        return false;
    };
    let count: i64 = conn
        .query_row("SELECT count(*) FROM works", [], |r| r.get(0))
        .unwrap_or(0);
    if usize::try_from(count).unwrap_or(0) < n {
        return false;
    }
    conn.execute("VACUUM INTO ?1", [to.display().to_string()]).is_ok()
}

per_transport! {
    status_resync:
    a_status_resync_of_3000_works_over_grpc => Grpc,
    a_status_resync_of_3000_works_over_mqtt => Mqtt,
    a_status_resync_of_3000_works_over_kafka => Kafka,
}

/// An agent of cluster `rogue` publishes a `Deleted` status carrying the id of cluster
/// `payroll`'s work; and two works whose ids collide are both in the directory.
fn forged_and_colliding(kind: Kind) {
    use ocm_ce_client::{Connection, PublishTarget, Transport};
    use ocm_ce_core::{Codec, EventType};

    let Some(_one) = scenario(kind) else { return };
    let mut options = Options::clusters(0);
    options.clusters = vec!["payroll".into(), "prod-east".into(), "prod".into()];
    let mut sys = System::start(kind, options);
    let mut works = vec![("payroll".to_owned(), "salaries".to_owned(), "s".to_owned())];
    works.push(("prod-east".into(), "app".into(), "a".into()));
    sys.put_file("works.yaml", &works);
    sys.converge("payroll and prod-east/app", CONVERGE);
    // The colliding work: same resource id as prod-east/app.
    let mut with_collision = works.clone();
    with_collision.push(("prod".into(), "east-app".into(), "b".into()));
    sys.put_file("works.yaml", &with_collision);
    sys.desired.remove(&("prod".to_owned(), "east-app".to_owned()));
    pause(Duration::from_secs(1));
    sys.converge("a colliding work refused", CONVERGE);
    assert!(
        !sys.log_lines("source.log", "would have the resource id").is_empty(),
        "the refusal is logged"
    );

    // The rogue agent.
    let record = std::fs::read_dir(sys.path("apply/payroll"))
        .unwrap()
        .flatten()
        .find_map(|e| std::fs::read_to_string(e.path().join(".work.json")).ok())
        .unwrap();
    let mut forged: ocm_ce_work::ManifestWork = serde_json::from_str(&record).unwrap();
    forged.metadata.namespace = Some("rogue".into());
    forged.metadata.finalizers = None;
    ocm_ce_work::mark_manifests_deleted(&mut forged, chrono::Utc::now());
    let ty: EventType = "io.open-cluster-management.works.v1alpha1.manifestbundles.status.delete_request"
        .parse()
        .unwrap();
    let event = ocm_ce_work::AgentManifestBundleCodec::new()
        .encode("rogue-agent", &ty, &forged)
        .unwrap();
    let config = sys.path("rogue.yaml");
    let text = std::fs::read_to_string(sys.path("agent-payroll.yaml"))
        .unwrap()
        .replace("clusters/payroll/", "clusters/rogue/")
        .replace("-payroll-agent", "-rogue-agent");
    std::fs::write(&config, text).unwrap();
    runtime(1).block_on(async {
        let transport_config = ocm_ce_client::TransportConfig::load(
            match kind {
                Kind::Grpc => ocm_ce_client::TransportKind::Grpc,
                Kind::Mqtt => ocm_ce_client::TransportKind::Mqtt,
                Kind::Kafka => unreachable!("not a scenario"),
            },
            &config,
        )
        .unwrap();
        let rogue = ocm_ce_client::AnyTransport::agent(&transport_config, "rogue", "rogue-agent").unwrap();
        let conn = rogue.connect().await.unwrap();
        conn.publish(&PublishTarget::Source(sys.source_id.clone()), &event)
            .await
            .unwrap();
        conn.close().await;
    });
    pause(Duration::from_secs(2));
    sys.converge("after a forged Deleted status", CONVERGE);
    let dropped = sys
        .log_lines("source.log", "from a cluster the work does not belong to")
        .len()
        + sys.log_lines("source.log", "not the topic's").len();
    assert!(dropped >= 1, "the forged status was dropped and logged");
}

per_transport! {
    forged_and_colliding:
    forged_and_colliding_statuses_are_refused_over_grpc => Grpc,
    forged_and_colliding_statuses_are_refused_over_mqtt => Mqtt,
}

#[test]
fn sigterm_stops_the_broker_gracefully() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (child, _, log) = logged_broker(dir.path(), &[]);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", std::fs::read_to_string(&log).unwrap());
    assert!(std::fs::read_to_string(&log).unwrap().contains("shutting down"));
}

/// The broker's peak memory (VmHWM of the `ocm-ce broker` process) while a subscriber that
/// reads nothing is sent 120 events of 3.9 MB (468 MB): bounded by the queue's byte budget
/// (64 MiB by default), not by the number of events.
#[test]
fn a_stalled_subscriber_of_4_mb_events_holds_the_broker_to_its_byte_budget() {
    use ocm_ce_client::transport::grpc::{GrpcConfig, GrpcTransport};
    use ocm_ce_client::{Connection, PublishTarget, Role, Transport};
    use ocm_ce_core::{EventBuilder, EventType};

    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, port, log) = logged_broker(dir.path(), &["--stall-timeout", "5s"]);
    let peak_kib = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let idle = peak_kib(broker.id());
    let runtime = runtime(2);
    let url = format!("127.0.0.1:{port}");
    let (stalled, published) = runtime.block_on(async {
        let stalled = stalled_subscriber(url.clone()).await;
        let source = GrpcTransport::new(GrpcConfig::new(url), Role::source("source1"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let ty: EventType = "io.open-cluster-management.works.v1alpha1.manifestbundles.spec.create_request"
            .parse()
            .unwrap();
        let mut published = 0;
        for i in 0..120 {
            let mut e = EventBuilder::new("source1", ty.clone())
                .cluster_name("cluster1")
                .resource_id(format!("w{i}"))
                .resource_version(1)
                .build()
                .unwrap();
            e.set_data("application/json", vec![b'x'; 3_900_000]);
            source
                .publish(&PublishTarget::Cluster("cluster1".into()), &e)
                .await
                .unwrap();
            published += 1;
        }
        source.close().await;
        (stalled, published)
    });
    let peak = peak_kib(broker.id());
    drop(stalled);
    drop(runtime);
    let _ = broker.kill();
    let _ = broker.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    eprintln!(
        "[grpc] broker peak RSS {:.1} MiB (idle {:.1} MiB) after {published} events of 3.9 MB to a stalled subscriber",
        peak as f64 / 1024.0,
        idle as f64 / 1024.0
    );
    assert_eq!(published, 120);
    assert!(text.contains("disconnecting a stuck subscriber"), "{text}");
    assert!(
        peak < 200 * 1024,
        "the broker held {} MiB for a 64 MiB queue budget",
        peak / 1024
    );
}
