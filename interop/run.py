#!/usr/bin/env python3
"""Interoperability matrix: ocm-ce against the real Go SDK, end to end, as CI runs it.

    python3 interop/run.py [--only SUBSTRING ...] [--list] [--keep]

Builds the Go harness (interop/go on sdk-go v0.15.0, interop/go-latest on sdk-go v1.3.0) into a
temporary directory, then runs every cell sequentially, each with its own processes, source id
and cluster name (nothing is shared between cells but the Mosquitto broker):

  transport  pairing                                   scenarios
  gRPC       Go source -> ocm-ce agent                 lifecycle, agent restart, source restart
  gRPC       ocm-ce source -> Go agent                 lifecycle, agent restart, source restart
  gRPC       Go source <-> Go agent via ocm-ce broker  lifecycle, agent restart, source restart
  MQTT       Go source -> ocm-ce agent                 lifecycle, agent restart, source restart
  MQTT       ocm-ce source -> Go agent                 lifecycle, agent restart, source restart
  Kafka      Go source -> ocm-ce agent                 lifecycle, agent restart, source restart
  Kafka      ocm-ce source -> Go agent                 lifecycle, agent restart, source restart
  gRPC/MQTT  status hashes (Go source, ocm-ce agent)
  gRPC       ocm-ce source -> go-agent-latest (sdk-go v1.3.0), broker heartbeats on
             lifecycle, agent restart, source restart
  gRPC+kube  Go source -> ocm-ce agent --kubeconfig        lifecycle, agent restart
  gRPC+kube  ocm-ce hub -> Go agent                        lifecycle, agent restart, source restart

plus "probe" rows for known incompatibilities (XFAIL while the incompatibility exists, XPASS
once fixed; they do not change the exit code).

lifecycle: create -> Applied seen by the source -> update (the agent sees the new manifest) ->
delete -> Deleted seen by the source, the work gone on both sides.
agent restart: agent stopped; the source updates one work, creates one, deletes one; agent
started; both sides converge.
source restart: source stopped; the agent's status changes (Go agent: set_condition; ocm-ce
agent: a restart, whose fresh Applied condition has a new lastTransitionTime); source started
with its old state -> it gets the new status through its initial resync.

Known sdk-go races (Go-internal, seen on loopback where answers come back within a
millisecond) are healed the way Go heals them, once per wait, and reported as notes: a starting
Go client publishes its resync request before its own subscription is active (answers lost ->
the Go agent is restarted / the Go source sends another status resync / a restarted ocm-ce
agent is restarted again); ManifestWorkSourceClient.Patch and .Delete write their local store
after publishing (a fast status is dropped -> status resync; a fast deletion acknowledgement is
followed by the deleting work being re-inserted -> accepted, since Go emitted DELETED). A heal
only starts after RACE_GRACE seconds without the expected event.

The gRPC cells use the ocm-ce broker (`ocm-ce broker --listen 127.0.0.1:0 --insecure`); the MQTT
cells the Mosquitto at OCM_CE_TEST_MQTT (scripts/test-env.sh), or, when unset, one started here
on a free loopback port; the Kafka cells the Apache Kafka at OCM_CE_TEST_KAFKA, or, when unset,
one started with scripts/test-env.sh. The v0.15.0 harness is built with the SDK's `kafka` build
tag (cgo; confluent-kafka-go's static librdkafka), and each Kafka cell creates its four
per-cluster topics first (kafka-create-topics): the sdk-go consumer treats a pattern that matches
no topic as a connection error.

Environment:
  OCM_CE_BIN       the ocm-ce binary, built with `--features kafka` (else `cargo build -p
                   ocm-ce-cli --features kafka` is run and its debug binary used)
  OCM_CE_TEST_MQTT host:port of a Mosquitto broker (loopback)
  OCM_CE_TEST_KAFKA host:port of a Kafka broker (loopback)
  OCM_CE_TEST_KUBECONFIG  the admin kubeconfig of a test API server (scripts/test-env.sh; else
                   the kube cells start one with scripts/test-env.sh kube-start)
  INTEROP_GO_VERBOSE=1  klog -v 4 for the v0.15.0 Go agent too
  INTEROP_TIMEOUT  seconds for each bounded wait (default 45)
  INTEROP_KEEP=1   keep the work directory (logs, configs, state) - same as --keep

Output: a table (cell, result, seconds); exit code 0 only if every cell passed. On a failure
the tails of every process's stderr log and of the event trace of that cell are printed.
Only loopback addresses are used; every wait is bounded.
"""
import argparse
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import harness  # noqa: E402
from harness import Failure, cond, configmap, fail, manifestwork  # noqa: E402

harness.RAISE = True
TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "45"))
PROBE_TIMEOUT = 8  # seconds a probe waits for what a fixed ocm-ce would do at once
HASH_QUIET = 3.0
RACE_GRACE = 6.0  # seconds before a Go source is helped over an sdk-go race with a status resync  # seconds without resync answers before asserting there are none
RV = "cloudevents.open-cluster-management.io/resourceversion"
SEQ = "cloudevents.open-cluster-management.io/sequenceid"
RUN = uuid.uuid4().hex[:5]
TAIL_LINES = 40


def check(ok, msg):
    if not ok:
        raise Failure(msg)


def must_ok(res, what):
    check(res.get("ok"), f"{what} failed: {res.get('error')}")
    return res


def poll(what, fn, timeout=TIMEOUT, interval=0.1):
    """Calls fn until it returns something truthy; bounded."""
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise Failure(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_open(port):
    """Whether something listens on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def parse_time(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def applied(generation=None):
    """Predicate on a status: Applied and Available True (observedGeneration == generation if given)."""
    def pred(st):
        a, av = cond(st, "Applied"), cond(st, "Available")
        if not a or not av or a.get("status") != "True" or av.get("status") != "True":
            return False
        return generation is None or a.get("observedGeneration") == generation
    return pred


def cm_data(manifests):
    return (manifests[0].get("data") or {}).get("k") if manifests else None


# ---- processes ------------------------------------------------------------------------------

class Service:
    """A long-running process without the JSON-lines protocol (ocm-ce broker/agent/source):
    stdout lines are collected, stderr goes to <cell>/<name>.stderr.log."""

    def __init__(self, cell, name, args, env=None):
        self.cell, self.name = cell, name
        self.log_path = os.path.join(cell.dir, name + ".stderr.log")
        self.offset = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
        self.log = open(self.log_path, "a")
        self.log.write(f"=== {name} started at +{cell.elapsed():.1f}s: {' '.join(os.path.basename(a) for a in args[:3])} ...\n")
        self.log.flush()
        self.offset = self.log.tell()
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log,
                                  text=True, bufsize=1, env=env or dict(os.environ, NO_COLOR="1"))
        self.lines = []
        self.cv = threading.Condition()
        trace = cell.trace
        cell.procs.append(self)

        def read():
            for line in self.p.stdout:
                line = line.rstrip("\n")
                print(f"[{time.time()-harness.T0:7.2f}] {name} | {line[:300]}", file=trace, flush=True)
                with self.cv:
                    self.lines.append(line)
                    self.cv.notify_all()
        threading.Thread(target=read, daemon=True).start()

    def alive(self):
        return self.p.poll() is None

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            f.seek(self.offset)
            return f.read()

    def wait_log(self, what, pattern, timeout=TIMEOUT):
        def probe():
            m = re.search(pattern, self.log_text())
            if m:
                return m
            if not self.alive():
                raise Failure(f"{self.name} exited (code {self.p.returncode}) while waiting for {what}")
            return None
        return poll(f"{self.name}: {what}", probe, timeout, 0.05)

    def wait_exit(self, what, timeout=TIMEOUT):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure(f"{self.name}: timed out after {timeout:.0f}s waiting for {what}") from None

    def stop(self, sig=signal.SIGINT, timeout=20):
        """Graceful stop (SIGINT = ctrl-c for the ocm-ce commands); returns the exit code."""
        if self.alive():
            self.p.send_signal(sig)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Failure(f"{self.name} did not exit within {timeout}s after {sig.name}") from None

    def kill(self):
        if self.alive():
            self.p.kill()
            self.p.wait()


class Cell:
    """One row of the matrix: a directory, its processes, its trace."""

    def __init__(self, runner, name):
        self.runner, self.name = runner, name
        self.dir = os.path.join(runner.tmp, re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_"))
        os.makedirs(self.dir, exist_ok=True)
        self.procs = []
        self.t0 = time.time()
        self.trace = open(os.path.join(self.dir, "trace.log"), "a")
        self.notes = []
        harness.TRACE = self.trace

    def elapsed(self):
        return time.time() - self.t0

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def note(self, msg):
        self.notes.append(msg)
        print(f"[{time.time()-harness.T0:7.2f}] NOTE {msg}", file=self.trace, flush=True)

    def go(self, name, binary, args):
        """A Go harness program (JSON lines); waits for its ready event."""
        argv = [os.path.join(self.runner.bin_dir, binary), *args]
        with open(self.path(name + ".stderr.log"), "a") as f:
            f.write(f"=== {name} ({binary}) started at +{self.elapsed():.1f}s\n")
        p = harness.Proc(name, argv, self.dir)
        self.procs.append(p)
        p.ready = p.wait("ready", lambda e: e.get("event") == "ready", timeout=max(TIMEOUT, 60))
        return p

    def service(self, name, args):
        return Service(self, name, args)

    def ocm(self, args, timeout):
        """One ocm-ce command to completion: (exit code, stdout, stderr)."""
        argv = [self.runner.ocm_bin, *args]
        shown = " ".join(a if "/" not in a else os.path.basename(a) for a in args)
        t = time.time()
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                               env=dict(os.environ, NO_COLOR="1"))
            rc, out, err = r.returncode, r.stdout, r.stderr
        except subprocess.TimeoutExpired as e:
            rc, out, err = "timeout", e.stdout or "", e.stderr or ""
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            err = err.decode(errors="replace") if isinstance(err, bytes) else err
        with open(self.path("ocm-ce-cli.stderr.log"), "a") as f:
            f.write(f"$ ocm-ce {shown}  -> {rc} in {time.time()-t:.1f}s\n{err}")
        print(f"[{time.time()-harness.T0:7.2f}] $ ocm-ce {shown} -> {rc} ({time.time()-t:.1f}s)\n"
              + "".join(f"    | {l}\n" for l in out.splitlines()[:12]), file=self.trace, end="", flush=True)
        if rc == "timeout":
            raise Failure(f"ocm-ce {shown} did not finish within {timeout:.0f}s")
        return rc, out, err

    def close(self):
        for p in self.procs:
            try:
                if isinstance(p, Service):
                    p.kill()
                elif p.p.poll() is None:
                    p.p.kill()
                    p.p.wait()
            except Exception:  # noqa: BLE001 - best effort
                pass

    def tails(self):
        out = []
        for f in sorted(glob.glob(os.path.join(self.dir, "*.log"))):
            with open(f, errors="replace") as fh:
                lines = fh.read().splitlines()
            out.append(f"----- {self.name}: {os.path.basename(f)} (last {min(len(lines), TAIL_LINES)} of {len(lines)} lines)")
            out.extend("  " + l[:400] for l in lines[-TAIL_LINES:])
        return "\n".join(out)


# ---- transports -----------------------------------------------------------------------------

def test_certs():
    """The CA, server and client certificates of scripts/test-env.sh (server SAN 127.0.0.1,
    client CN ocm-ce-test-client)."""
    certs = os.environ.get("OCM_CE_TEST_CERTS")
    if not certs or not os.path.exists(os.path.join(certs, "ca.pem")):
        raise Failure("the secured cells need the certificates of scripts/test-env.sh: source its env file "
                      "(OCM_CE_TEST_CERTS)")
    return {n: os.path.join(certs, f"{n}.pem") for n in ("ca", "server", "server-key", "client", "client-key")}


class Transport:
    """Where a cell's clients meet: an ocm-ce broker (gRPC) or Mosquitto (MQTT). `secure`
    selects a secured variant, with Go and ocm-ce reading the same config file:
    gRPC "mtls" (client certificates) or "token" (TLS + a bearer token file) against an ocm-ce
    broker that requires it; MQTT "mtls" (test-env's Mosquitto that requires a client
    certificate) or "tls-password" (a broker that authenticates a user name and password over
    TLS); Kafka "mtls" (test-env's SSL listener, which requires a client certificate)."""

    def __init__(self, cell, kind, heartbeat=None, grpc_extra="", secure=None):
        self.cell, self.kind, self.secure = cell, kind, secure
        self.security = ""  # config lines both SDKs read
        if secure:
            c = test_certs()
            if secure == "mtls":
                self.security = f"caFile: {c['ca']}\nclientCertFile: {c['client']}\nclientKeyFile: {c['client-key']}\n"
            elif secure == "token" and kind == "grpc":
                token = uuid.uuid4().hex
                self.tokens = cell.write("tokens.yaml", f"tokens:\n  - token: {token}\n    identity: interop\n")
                # No trailing line break: sdk-go v0.15 sends the file's bytes as they are, and a
                # line break is not allowed in an HTTP/2 header (h2 refuses the connection).
                self.security = f"caFile: {c['ca']}\ntokenFile: {cell.write('token', token)}\n"
            elif secure == "tls-password" and kind == "mqtt":
                # sdk-go v0.15 turns MQTT TLS on only with a client certificate (a CA alone means
                # plaintext), so the clients present one; this broker does not ask for it and
                # authenticates the user name and password.
                self.security = (f"caFile: {c['ca']}\nclientCertFile: {c['client']}\nclientKeyFile: {c['client-key']}\n"
                                 f"username: {os.environ['OCM_CE_TEST_MQTT_USER']}\n"
                                 f"password: {os.environ['OCM_CE_TEST_MQTT_PASSWORD']}\n")
            else:
                raise Failure(f"no secured variant {secure} of {kind}")
        if kind == "grpc":
            self.heartbeat = heartbeat
            self.addr = self._start_broker("127.0.0.1:0")
            self.grpc_file = cell.write("grpc.yaml", f"url: {self.addr}\n{grpc_extra}{self.security}")
        elif kind == "kafka":
            self.topics_addr = cell.runner.kafka_addr()
            self.addr = self.topics_addr
            if secure == "mtls":
                self.addr = os.environ.get("OCM_CE_TEST_KAFKA_SSL") or fail("OCM_CE_TEST_KAFKA_SSL is not set")
        elif secure == "mtls":
            self.addr = os.environ.get("OCM_CE_TEST_MQTT_TLS") or fail("OCM_CE_TEST_MQTT_TLS is not set")
        elif secure == "tls-password":
            self.addr = self._start_tls_mosquitto()
        else:
            self.addr = cell.runner.mqtt_addr()

    def _start_tls_mosquitto(self):
        """A Mosquitto of this cell: server TLS, user name and password (test-env's password file)."""
        c, port = test_certs(), free_port()
        passwd = os.path.join(os.environ["OCM_CE_TEST_STATE_DIR"], "mosquitto", "passwd")
        # as root, Mosquitto would switch to its own user, which cannot read test-env's files
        user = "user root\n" if os.geteuid() == 0 else ""
        conf = self.cell.write("mosquitto-tls.conf", f"""{user}listener {port} 127.0.0.1
cafile {c['ca']}
certfile {c['server']}
keyfile {c['server-key']}
require_certificate false
allow_anonymous false
password_file {passwd}
persistence false
max_queued_messages 100000
""")
        mosq = os.environ.get("OCM_CE_MOSQUITTO_BIN") or shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.cell.service("mosquitto-tls", [mosq, "-c", conf])

        poll("the TLS mosquitto to listen", lambda: port_open(port), 15, 0.1)
        return f"127.0.0.1:{port}"

    def _start_broker(self, listen):
        args = [self.cell.runner.ocm_bin, "-v", "broker", "--listen", listen]
        if self.secure:
            c = test_certs()
            args += ["--tls-cert", c["server"], "--tls-key", c["server-key"]]
            args += ["--client-ca", c["ca"]] if self.secure == "mtls" else ["--tokens", self.tokens]
        else:
            args += ["--insecure"]
        if self.heartbeat:
            args += ["--heartbeat", str(self.heartbeat)]
        self.broker = self.cell.service("ocm-ce-broker", args)
        return self.broker.wait_log("listening line", r"listening on (127\.0\.0\.1:\d+)").group(1)

    def restart_broker(self, down=1.0):
        """Kills the ocm-ce broker (SIGKILL) and starts it again on the same port `down` s later."""
        check(self.kind == "grpc", "only the ocm-ce broker is restarted by a cell")
        self.broker.kill()
        time.sleep(down)
        self._start_broker(self.addr)

    def kafka_config(self, name):
        """Go's KafkaConfig, read by both SDKs. groupID is left out: it defaults to the source id /
        agent id on both sides. The pass-through librdkafka keys make a restarted client rejoin
        its group quickly and find a topic created after it subscribed (both subscribe to topic
        patterns) within a second instead of librdkafka's default 5 minutes."""
        return self.cell.write(name, f"""bootstrapServer: {self.addr}
{self.security}topic.metadata.refresh.interval.ms: 1000
session.timeout.ms: 6000
heartbeat.interval.ms: 500
""")

    def create_topics(self, source_id, cluster):
        """The four per-cluster topics of the v0.15.0 layout. They must exist before a Go client
        starts: the sdk-go consumer treats a subscribed pattern that matches no topic as a
        connection error ("Subscribed topic not available") and reconnects 5-10 s later."""
        topics = [f"sourceevents.{source_id}.{cluster}", f"agentevents.{source_id}.{cluster}",
                  f"sourcebroadcast.{source_id}", f"agentbroadcast.{cluster}"]
        r = subprocess.run([os.path.join(self.cell.runner.bin_dir, "kafka-create-topics"), "--bootstrap-server",
                            self.topics_addr, "--topics", ",".join(topics)], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"kafka-create-topics failed: {(r.stdout + r.stderr).strip()[-300:]}")

    def source_config(self, source_id):
        if self.kind == "grpc":
            return self.grpc_file
        if self.kind == "kafka":
            return self.kafka_config(f"kafka-source-{source_id}.yaml")
        return self.cell.write(f"mqtt-source-{source_id}.yaml", f"""brokerHost: {self.addr}
{self.security}topics:
  sourceEvents: sources/{source_id}/clusters/+/sourceevents
  agentEvents: sources/{source_id}/clusters/+/agentevents
  sourceBroadcast: sources/+/sourcebroadcast
""")

    def agent_config(self, source_id, cluster):
        if self.kind == "grpc":
            return self.grpc_file
        if self.kind == "kafka":
            return self.kafka_config(f"kafka-agent-{cluster}.yaml")
        return self.cell.write(f"mqtt-agent-{cluster}.yaml", f"""brokerHost: {self.addr}
{self.security}topics:
  sourceEvents: sources/{source_id}/clusters/{cluster}/sourceevents
  agentEvents: sources/{source_id}/clusters/{cluster}/agentevents
  sourceBroadcast: sources/+/sourcebroadcast
""")


# ---- sources --------------------------------------------------------------------------------

def work_json(name, cluster, value, version, namespace="default"):
    w = manifestwork(name, cluster, [configmap({"k": value}, name="cm-" + name, namespace=namespace)])
    if version is not None:
        w["metadata"]["annotations"] = {RV: str(version)}
    return w


class LongRunningSource:
    """A source that runs all along (the Go source, `ocm-ce hub`): it answers the agents' spec
    resync requests itself, nothing has to listen for it."""

    def listening(self):
        return contextlib.nullcontext()

    def agent_returning(self, deleted):
        return None

    def agent_returned(self, listener):
        pass


class GoSource(LongRunningSource):
    """go-source (sdk-go v0.15.0 ClientHolder + SourceLocalWatcherStore), long-running."""
    kind = "go-source"

    def __init__(self, cell, tr, source_id, cluster, state="go-source-state.json", client_id=None, extra=()):
        self.cell, self.tr, self.sid, self.cluster = cell, tr, source_id, cluster
        self.state = cell.path(state)
        self.client_id = client_id or source_id + "-client"
        self.extra = list(extra)
        self.p = None
        self.uids = {}
        self.delete_marks = {}
        self.readded = set()
        self.manifest_ns = "default"  # where the manifests go (a kube agent's cell sets its own)

    def start(self):
        self.p = self.cell.go("go-source", "go-source", [
            "--transport", self.tr.kind, "--config", self.tr.source_config(self.sid), "--source-id", self.sid,
            "--client-id", self.client_id, "--state-file", self.state, *self.extra])

    def stop(self):
        self.p.quit()

    def create(self, name, value, version=1, agent_up=True):
        res = must_ok(self.p.cmd("create", work=work_json(name, self.cluster, value, version, self.manifest_ns)),
                      f"create {name}")
        self.uids[name] = res["work"]["metadata"]["uid"]
        return self.uids[name]

    def update(self, name, value, version, agent_up=True):
        patch = {"spec": {"workload": {"manifests": [configmap({"k": value}, name="cm-" + name,
                                                               namespace=self.manifest_ns)]}}}
        if version is not None:
            patch["metadata"] = {"annotations": {RV: str(version)}}
        must_ok(self.p.cmd("patch", namespace=self.cluster, name=name, patchType="merge", patch=patch), f"patch {name}")

    def delete(self, name, agent_up=True):
        self.delete_marks[name] = self.p.mark()
        must_ok(self.p.cmd("delete", namespace=self.cluster, name=name), f"delete {name}")

    def get(self, name):
        res = self.p.cmd("get", namespace=self.cluster, name=name)
        if res.get("ok"):
            return res["work"]
        check("not found" in (res.get("error") or ""), f"get {name}: {res.get('error')}")
        return None

    def names(self):
        """The works of the cluster, without those re-inserted by the Delete race (see wait_gone)."""
        works = must_ok(self.p.cmd("list", namespace=self.cluster), "list")["works"]
        return [w["metadata"]["name"] for w in works
                if not (w["metadata"]["name"] in self.readded and w["metadata"].get("deletionTimestamp"))]

    def wait_status(self, name, what, pred, heal=None):
        """Waits until the source's copy of the work has a status matching pred.

        Two sdk-go v0.15.0 races can lose a status here, both Go-internal:
        * ManifestWorkSourceClient.Patch publishes the spec, then writes the patched work (with
          the status it had before) into its local store: a status the agent sends back faster
          than that write is dropped ("resource version N is great than its generation N-1,
          ignore") or overwritten;
        * a starting source publishes its status resync request before its own subscription is
          active, so fast answers to it are not delivered.
        Go heals both with a later status resync; so do we, once, if the status does not arrive
        within RACE_GRACE seconds (heal() instead of the resync request when given)."""
        m = self.p.mark()
        w = self.get(name)
        if w and pred(w.get("status") or {}):
            return w["status"]

        def match(e):
            return (e.get("event") == "watch" and e["name"] == name and e["type"] in ("ADDED", "MODIFIED")
                    and pred(e.get("status") or {}))
        try:
            return self.p.wait(f"{name}: {what}", match, m, RACE_GRACE)["status"]
        except Failure:
            pass
        w = self.get(name)
        if w and pred(w.get("status") or {}):
            return w["status"]
        raced = []
        if os.path.exists(self.cell.path("go-source.stderr.log")):
            with open(self.cell.path("go-source.stderr.log"), errors="replace") as f:
                raced = [l.strip() for l in f if f"/{name} resource version" in l and "is great than" in l]
        why = f" (sdk-go v0.15.0 Patch race: {raced[-1][raced[-1].find('the work'):]})" if raced else ""
        if heal is not None:
            heal(f"{name}: no '{what}' within {RACE_GRACE:.0f}s{why}")
        else:
            self.cell.note(f"{name}: no '{what}' within {RACE_GRACE:.0f}s{why}; sent a status resync")
            must_ok(self.p.cmd("resync", cluster=self.cluster), "resync")
        return self.p.wait(f"{name}: {what} (after a status resync)", match, m, TIMEOUT)["status"]

    def status_events(self, uid, since=0):
        return [e for e in self.p.find(lambda e: e.get("event") == "status_event" and e.get("resourceid") == uid, since)]

    def wait_gone(self, name):
        uid, m = self.uids.get(name), self.delete_marks.get(name, 0)
        self.p.wait(f"watch DELETED {name}", lambda e: e.get("event") == "watch" and e["type"] == "DELETED"
                    and e["name"] == name, m, TIMEOUT)
        acks = [e for e in self.status_events(uid, m) if e["type"].endswith((".status.delete_request", ".status.update_request"))]
        check(acks, f"no deletion status event for {name} ({uid})")
        check(not any(e.get("error") for e in acks), f"Go could not decode the deletion status: {acks}")
        self.cell.note(f"{name} deletion acknowledged with {'.'.join(acks[-1]['type'].split('.')[-2:])}")
        w = self.get(name)
        if w is not None:
            # sdk-go v0.15.0 race: ManifestWorkSourceClient.Delete publishes the deletion, then
            # writes the deleting work into its local store; when the agent's acknowledgement
            # was processed in between (the store removed the work and emitted DELETED), that
            # write puts the deleting work back. Go's own bug - it accepted the acknowledgement.
            check(w["metadata"].get("deletionTimestamp"), f"{name} still exists on the source after DELETED: {w['metadata']}")
            self.readded.add(name)
            self.cell.note(f"{name}: the Go source re-inserted the deleting work after DELETED (sdk-go v0.15.0 Delete race)")



class GoLatestHub:
    """sdk-go v1.3.0's GRPCBroker with an in-memory work service playing the source
    (grpc-broker-latest): the hub side of today's Go fleet, where the broker and the source are
    one process. Agents dial it; its works are kept in a state file across restarts, as a hub
    keeps them in its database. Plays both the transport and the source of a cell."""
    kind = "grpc"

    def __init__(self, cell, source_id):
        self.cell, self.sid = cell, source_id
        self.state = cell.path("go-hub-state.json")
        self.p = None
        self.addr = "127.0.0.1:0"
        self._start()
        self.grpc_file = cell.write("grpc.yaml", f"url: {self.addr}\nserverHealthinessTimeout: 15s\n")

    def _start(self):
        self.p = self.cell.go("go-hub", "grpc-broker-latest", [
            "--listen", self.addr, "--source-id", self.sid, "--state-file", self.state,
            "--heartbeat-interval", "10s", "-v", "4"])
        self.addr = self.p.ready["address"]

    def restart_broker(self, down=1.0):
        """Kills the Go hub (SIGKILL) and starts it again on the same port `down` s later."""
        self.p.kill()
        time.sleep(down)
        self._start()

    def agent_config(self, source_id, cluster):
        return self.grpc_file


class GoLatestSource(GoSource):
    """The work service inside grpc-broker-latest (see GoLatestHub): the same commands and
    events as go-source. It has no status resync of its own (a v1 hub answers the agents' spec
    resync requests from its store), and it lives as long as the hub process."""
    kind = "go-hub"

    def __init__(self, cell, tr, source_id, cluster):
        super().__init__(cell, tr, source_id, cluster)

    @property
    def p(self):
        return self.tr.p

    @p.setter
    def p(self, _):
        pass

    def start(self):
        pass

    def stop(self):
        pass


class OcmSource:
    """`ocm-ce source`: every operation is one process (state in SQLite under --state-dir; each
    start resyncs statuses)."""
    kind = "ocm-ce-source"

    def __init__(self, cell, tr, source_id, cluster, wait_applied=False):
        self.cell, self.tr, self.sid, self.cluster = cell, tr, source_id, cluster
        self.state_dir = cell.path("ocm-source-state")
        self.wait_applied = wait_applied  # `apply --wait` (needs observedGeneration from the agent)
        self.listener = None
        self.uids = {}
        self.n = 0

    def base(self, verbose=False):
        return [*(["-v"] if verbose else []), "source", "--transport", self.tr.kind,
                "--config", self.tr.source_config(self.sid), "--source", self.sid,
                "--state-dir", self.state_dir, "--connect-timeout", "30s"]

    def run(self, *args, timeout=None):
        return self.cell.ocm([*self.base(), *args], timeout or TIMEOUT + 40)

    def start(self):
        pass

    def stop(self):
        pass

    def _apply(self, name, value, version, wait):
        self.n += 1
        path = self.cell.write(f"work-{name}-{self.n}.json", json.dumps(work_json(name, self.cluster, value, None)))
        args = ["apply", "-f", path] + (["--wait", "--timeout", f"{max(1, int(TIMEOUT))}s"] if wait else [])
        rc, out, err = self.run(*args)
        check(rc == 0, f"ocm-ce source apply {name} ({value}) exited {rc}: {err.strip()[-300:]}")
        check(f"(version {version})" in out, f"apply {name}: expected version {version}, got: {out.strip()[:200]}")
        if wait:
            check("Applied" in out, f"apply --wait printed no Applied status: {out[:300]}")

    def create(self, name, value, version=1, agent_up=True):
        self._apply(name, value, version, self.wait_applied and agent_up)
        w = self.get(name)
        check(w is not None, f"{name} missing after apply")
        self.uids[name] = w["metadata"]["uid"]
        return self.uids[name]

    def update(self, name, value, version, agent_up=True):
        self._apply(name, value, version, self.wait_applied and agent_up)

    def delete(self, name, agent_up=True):
        args = ["delete", name, "-n", self.cluster] + (["--wait", "--timeout", f"{max(1, int(TIMEOUT))}s"] if agent_up else [])
        rc, out, err = self.run(*args)
        check(rc == 0, f"ocm-ce source delete {name} exited {rc}: {err.strip()[-300:]}")

    def get(self, name):
        rc, out, err = self.run("get", name, "-n", self.cluster, "-o", "json")
        if rc == 0:
            return json.loads(out)
        check("not found" in err, f"ocm-ce source get {name} exited {rc}: {err.strip()[-300:]}")
        return None

    def names(self):
        rc, out, err = self.run("list", "-n", self.cluster)
        check(rc == 0, f"ocm-ce source list exited {rc}: {err.strip()[-300:]}")
        return sorted(l.split()[1] for l in out.splitlines()[1:] if l.strip())

    def wait_status(self, name, what, pred, heal=None):
        # every `get` is a fresh source process: its start resyncs the statuses
        def probe():
            w = self.get(name)
            return w and pred(w.get("status") or {}) and (w.get("status") or {})
        return poll(f"ocm-ce source get {name}: {what}", probe, TIMEOUT, 0.2)

    def wait_gone(self, name):
        poll(f"{name} gone from ocm-ce source", lambda: self.get(name) is None, TIMEOUT, 0.2)

    @contextlib.contextmanager
    def listening(self):
        """A source process that answers spec resync requests meanwhile: the `delete --wait`
        listener if it still runs, else `ocm-ce source watch` (stopped with SIGINT at the end)."""
        if self.listener is not None and self.listener.alive():
            yield
            return
        svc = self.cell.service("ocm-ce-source-watch", [
            self.cell.runner.ocm_bin, *self.base(verbose=True), "watch", "-n", self.cluster])
        svc.wait_log("subscription", r"subscription confirmed")
        yield
        rc = svc.stop()
        check(rc == 0, f"ocm-ce source watch exited {rc} on SIGINT")

    def agent_returning(self, deleted):
        """A one-shot source is not running when the agent comes back and asks for a spec
        resync; `delete --wait` of the already-deleting work is a source process that stays
        until the agent acknowledged the deletion - it answers the resync request."""
        svc = self.cell.service("ocm-ce-source-listener", [
            self.cell.runner.ocm_bin, *self.base(verbose=True), "delete", deleted, "-n", self.cluster,
            "--wait", "--timeout", f"{max(1, int(TIMEOUT))}s"])
        svc.wait_log("subscription", r"subscription confirmed")
        self.listener = svc
        return svc

    def agent_returned(self, listener):
        rc = listener.wait_exit("the deletion acknowledgement (delete --wait)")
        check(rc == 0, f"ocm-ce source delete --wait exited {rc}: {listener.log_text().strip()[-300:]}")


# ---- Kubernetes -----------------------------------------------------------------------------

class Kube:
    """The test API server of scripts/test-env.sh (its admin kubeconfig), through plain HTTPS."""

    def __init__(self, kubeconfig):
        import base64
        import ssl
        with open(kubeconfig) as f:
            text = f.read()
        self.kubeconfig = kubeconfig
        self.server = re.search(r"server:\s*(\S+)", text).group(1)
        self.token = re.search(r"token:\s*(\S+)", text).group(1)
        ca = base64.b64decode(re.search(r"certificate-authority-data:\s*(\S+)", text).group(1)).decode()
        self.ctx = ssl.create_default_context(cadata=ca)

    def request(self, method, path, body=None, content_type="application/json"):
        """(HTTP code, decoded JSON body)."""
        import urllib.error
        import urllib.request
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=20) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path):
        """The object at path, or None (404)."""
        code, obj = self.request("GET", path)
        if code == 404:
            return None
        check(code == 200, f"GET {path}: {code} {obj}")
        return obj

    def ensure_namespace(self, name):
        code, obj = self.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        check(code in (201, 409), f"creating namespace {name}: {code} {obj}")


def works_path(cluster, name=""):
    return f"/apis/work.open-cluster-management.io/v1/namespaces/{cluster}/manifestworks" + (f"/{name}" if name else "")


class HubSource(LongRunningSource):
    """`ocm-ce hub`: the works are ManifestWorks in the hub API (namespace = cluster), created,
    patched and deleted there; the statuses are read from their status subresource. The resource
    version the agents see is the object's generation (create = 1, each spec change + 1)."""
    kind = "ocm-ce-hub"

    def __init__(self, cell, tr, source_id, cluster):
        self.cell, self.tr, self.sid, self.cluster = cell, tr, source_id, cluster
        self.kube = cell.runner.kube()
        self.kube.ensure_namespace(cluster)
        self.label = {"interop": source_id}  # the hub serves only this cell's works
        self.svc = None
        self.uids = {}

    def start(self):
        self.svc = self.cell.service("ocm-ce-hub", [
            self.cell.runner.ocm_bin, "-v", "hub", "--transport", self.tr.kind, "--config", self.tr.source_config(self.sid),
            "--source", self.sid, "--kubeconfig", self.kube.kubeconfig, "--resync-interval", "1s",
            "--selector", f"interop={self.sid}"])
        self.svc.wait_log("subscription", r"subscription confirmed")

    def stop(self):
        rc = self.svc.stop()
        check(rc == 0, f"ocm-ce hub exited {rc} on SIGINT")

    def create(self, name, value, version=1, agent_up=True):
        w = work_json(name, self.cluster, value, None)
        w["metadata"]["labels"] = self.label
        code, obj = self.kube.request("POST", works_path(self.cluster), w)
        check(code == 201, f"creating ManifestWork {name}: {code} {obj}")
        check(obj["metadata"]["generation"] == version, f"{name}: generation {obj['metadata']['generation']}, want {version}")
        # the id the hub's source client gives it (sdk-go's utils.UID), which the agent sees
        self.uids[name] = str(uuid.uuid5(uuid.NAMESPACE_OID,
                                         f"{self.sid}-manifestworks.work.open-cluster-management.io-{self.cluster}-{name}"))
        return self.uids[name]

    def update(self, name, value, version, agent_up=True):
        patch = {"spec": {"workload": {"manifests": [configmap({"k": value}, name="cm-" + name)]}}}
        code, obj = self.kube.request("PATCH", works_path(self.cluster, name), patch, "application/merge-patch+json")
        check(code == 200, f"patching ManifestWork {name}: {code} {obj}")
        check(obj["metadata"]["generation"] == version, f"{name}: generation {obj['metadata']['generation']}, want {version}")

    def delete(self, name, agent_up=True):
        code, obj = self.kube.request("DELETE", works_path(self.cluster, name))
        check(code in (200, 202), f"deleting ManifestWork {name}: {code} {obj}")

    def get(self, name):
        return self.kube.get(works_path(self.cluster, name))

    def names(self):
        return sorted(w["metadata"]["name"] for w in self.kube.get(works_path(self.cluster))["items"])

    def wait_status(self, name, what, pred, heal=None):
        def probe():
            w = self.get(name)
            return w and pred(w.get("status") or {}) and (w.get("status") or {})
        return poll(f"ManifestWork {name} in the hub API: {what}", probe, TIMEOUT, 0.1)

    def wait_gone(self, name):
        def finalizer():
            w = self.get(name)
            return w is None or w["metadata"].get("finalizers")
        check(poll(f"{name}: deleting with the hub's finalizer, or gone", finalizer, TIMEOUT, 0.05),
              f"{name} has no finalizer")
        poll(f"ManifestWork {name} gone from the hub API (the hub removed its finalizer)",
             lambda: self.get(name) is None, TIMEOUT, 0.1)



# ---- agents ---------------------------------------------------------------------------------

class GoAgent:
    """go-agent (sdk-go v0.15.0) or go-agent-latest (v1.3.0)."""

    def __init__(self, cell, tr, source_id, cluster, latest=False):
        self.cell, self.tr, self.sid, self.cluster, self.latest = cell, tr, source_id, cluster, latest
        self.binary = "go-agent-latest" if latest else "go-agent"
        self.kind = self.binary
        # v0.15.0 agent-side works carry no generation: observedGeneration stays 0
        self.reports_generation = latest
        self.p = None
        self.src = None  # the source of the cell, which must listen while the agent is healed
        self.healed = []  # instances replaced by heals since the last start by the scenario

    def start(self):
        self.healed = []
        self.p = self.cell.go("go-agent", self.binary, [
            "--transport", self.tr.kind, "--config", self.tr.agent_config(self.sid, self.cluster),
            "--cluster", self.cluster, "--agent-id", self.cluster + "-agent", *(["-v", "4"] if self.latest or os.environ.get("INTEROP_GO_VERBOSE") else [])])

    def stop(self):
        self.p.quit()

    def _wait_or_heal(self, what, pred):
        """Waits for an event of this agent; if it does not come within RACE_GRACE seconds,
        restarts the agent once while a source listens, and waits again.

        sdk-go race (v0.15.0 and v1.3.0 agents): a starting agent publishes its spec resync
        request before its own subscription is active (go-agent.stderr.log: "publishing event"
        before "subscribing events"), so answers the source sends at once can be lost, and
        specs published right after the agent's `ready` too. Go heals this on the next
        reconnect; so do we."""
        # An instance a heal replaced may have done it already (e.g. finished a deletion while
        # the wait was for an earlier step): what it did is done.
        for old in self.healed:
            done = old.find(pred)
            if done:
                return done[0]
        try:
            return self.p.wait(what, pred, 0, RACE_GRACE)
        except Failure:
            pass
        self.cell.note(f"no '{what}' within {RACE_GRACE:.0f}s; restarted the Go agent (sdk-go publishes its spec "
                       "resync request before its subscription is active, so early answers can be lost)")
        with self.src.listening() if self.src else contextlib.nullcontext():
            healed = [*self.healed, self.p]
            self.stop()
            self.start()
            self.healed = healed
            return self.p.wait(f"{what} (after an agent restart)", pred, 0, TIMEOUT)

    def wait_content(self, uid, value):
        self._wait_or_heal(f"applied {value}", lambda e: e.get("event") == "applied" and e["uid"] == uid
                           and cm_data(e.get("manifests")) == value)

    def uids(self):
        return sorted(w["metadata"]["uid"] for w in must_ok(self.p.cmd("list"), "agent list")["works"])

    def wait_removed(self, uid):
        self._wait_or_heal(f"deleted {uid}", lambda e: e.get("event") == "deleted" and e["uid"] == uid)
        poll(f"{uid} gone from the Go agent", lambda: uid not in self.uids(), TIMEOUT, 0.1)

    def change_status(self, uid, status):
        token = "changed-" + uuid.uuid4().hex[:6]
        must_ok(self.p.cmd("set_condition", name=uid, type="Progressing", status="True", reason="Interop",
                           message=token), "set_condition")
        return "condition Progressing set by the agent", lambda st: (cond(st, "Progressing") or {}).get("message") == token


class OcmAgent:
    """`ocm-ce agent`: writes manifests under --apply-dir/<cluster>/<uid>/."""
    kind = "ocm-ce-agent"
    reports_generation = True  # observedGeneration = the work's resource version

    def __init__(self, cell, tr, source_id, cluster):
        self.cell, self.tr, self.sid, self.cluster = cell, tr, source_id, cluster
        self.dir = cell.path("apply")
        self.svc = None

    def target(self):
        """Where the agent applies: the arguments that say it."""
        return ["--apply-dir", self.dir]

    def start(self):
        self.svc = self.cell.service("ocm-ce-agent", [
            self.cell.runner.ocm_bin, "-v", "agent", "--transport", self.tr.kind,
            "--config", self.tr.agent_config(self.sid, self.cluster), "--cluster", self.cluster,
            "--agent-id", self.cluster + "-agent", *self.target()])
        self.svc.wait_log("subscription", r"subscription confirmed")

    def stop(self):
        rc = self.svc.stop()
        check(rc == 0, f"ocm-ce agent exited {rc} on SIGINT")

    def work_dir(self, uid):
        return os.path.join(self.dir, self.cluster, uid)

    def content(self, uid):
        d = self.work_dir(uid)
        try:
            files = sorted(f for f in os.listdir(d) if f.endswith(".yaml"))
        except FileNotFoundError:
            return None
        if len(files) != 1:
            return None
        with open(os.path.join(d, files[0])) as f:
            m = re.search(r"^\s+k:\s*['\"]?([^'\"\s]+)", f.read(), re.M)
        return m and m.group(1)

    def wait_content(self, uid, value, timeout=TIMEOUT):
        poll(f"ocm-ce agent file of {uid} with k: {value}", lambda: self.content(uid) == value, timeout, 0.05)

    def uids(self):
        d = os.path.join(self.dir, self.cluster)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def wait_removed(self, uid):
        poll(f"ocm-ce agent directory of {uid} removed", lambda: not os.path.exists(self.work_dir(uid)), TIMEOUT, 0.05)

    def change_status(self, uid, status):
        """Restart on a new node: a fresh apply directory holds no records of what was applied,
        so the agent applies the work again when a source answers its spec resync, and the fresh
        Applied condition gets a new lastTransitionTime (RFC 3339 seconds, so make sure the clock
        has moved past the old one first). A restart over the same directory keeps the recorded
        status, transition time included, as OCM's agent does."""
        old = cond(status, "Applied")["lastTransitionTime"]
        poll("the clock to pass the old lastTransitionTime", lambda: time.time() >= parse_time(old) + 1.05, 3, 0.05)
        self.stop()
        self.dir = self.cell.path("apply-new-node")
        self.start()
        return (f"Applied lastTransitionTime newer than {old}",
                lambda st: (cond(st, "Applied") or {}).get("lastTransitionTime", "") > old)


    def heal_source_restart(self, why):
        """The restarted agent holds no works until a source answers its spec resync. It asked
        when the starting Go source's status resync request arrived (once per source and
        connection), but a Go source publishes that request before its own subscription is
        active, so the answer-request can be lost. Restart the agent again: its connect-time
        spec resync then reaches the subscribed source."""
        self.cell.note(f"{why}; restarted the ocm-ce agent again (its spec resync request, sent when the starting "
                       "Go source's status resync request arrived, was lost: sdk-go publishes before subscribing)")
        self.stop()
        self.start()


class KubeAgent(OcmAgent):
    """`ocm-ce agent --kubeconfig`: applies the works to the test API server (the manifests go to
    a namespace of the cell's own); what it applied is found through the owner references to its
    AppliedManifestWork records (`<hub hash>-<work uid>`)."""
    kind = "ocm-ce-agent-kube"

    def __init__(self, cell, tr, source_id, cluster):
        super().__init__(cell, tr, source_id, cluster)
        self.kube = cell.runner.kube()
        self.hub_hash = "hub-" + source_id
        self.ns = "ns-" + cluster
        self.kube.ensure_namespace(self.ns)

    def target(self):
        return ["--kubeconfig", self.kube.kubeconfig, "--hub-hash", self.hub_hash]

    def owned(self, uid):
        """The ConfigMaps of the cell's namespace owned by the record of work uid."""
        record = f"{self.hub_hash}-{uid}"
        cms = self.kube.get(f"/api/v1/namespaces/{self.ns}/configmaps")["items"]
        return [cm for cm in cms if any(o.get("name") == record for o in cm["metadata"].get("ownerReferences") or [])]

    def content(self, uid):
        cms = self.owned(uid)
        if len(cms) != 1:
            return None
        managers = {f.get("manager") for f in cms[0]["metadata"].get("managedFields") or []}
        check("ocm-ce-agent" in managers, f"{cms[0]['metadata']['name']} not written by ocm-ce-agent: {managers}")
        return (cms[0].get("data") or {}).get("k")

    def uids(self):
        records = self.kube.get("/apis/work.open-cluster-management.io/v1/appliedmanifestworks")["items"]
        prefix = self.hub_hash + "-"
        return sorted(r["metadata"]["name"][len(prefix):] for r in records if r["metadata"]["name"].startswith(prefix))

    def wait_removed(self, uid):
        poll(f"the ConfigMap of {uid} deleted from the API", lambda: not self.owned(uid), TIMEOUT, 0.05)
        poll(f"the AppliedManifestWork of {uid} deleted", lambda: uid not in self.uids(), TIMEOUT, 0.05)

    def change_status(self, uid, status):
        raise Failure("not used by the kube cells")


# ---- scenarios ------------------------------------------------------------------------------

def lifecycle(cell, src, agt):
    src.start()
    agt.start()
    gen = (lambda g: g) if agt.reports_generation else (lambda g: None)
    uid = src.create("w1", "w1-v1", 1)
    agt.wait_content(uid, "w1-v1")
    st = src.wait_status("w1", "Applied", applied(gen(1)))
    rm = st["resourceStatus"]["manifests"][0]["resourceMeta"]
    check((rm["kind"], rm["version"], rm["name"], rm["resource"]) == ("ConfigMap", "v1", "cm-w1", "configmaps"),
          f"unexpected resourceMeta {rm}")
    src.update("w1", "w1-v2", 2)
    agt.wait_content(uid, "w1-v2")
    src.wait_status("w1", "Applied after the update", applied(gen(2)))
    src.delete("w1")
    agt.wait_removed(uid)
    src.wait_gone("w1")
    check(src.names() == [], f"source still lists {src.names()}")
    check(agt.uids() == [], f"agent still holds {agt.uids()}")
    agt.stop()
    src.stop()


def agent_restart(cell, src, agt):
    src.start()
    agt.start()
    gen = (lambda g: g) if agt.reports_generation else (lambda g: None)
    ua = src.create("wa", "wa-v1", 1)
    uc = src.create("wc", "wc-v1", 1)
    for name, uid in (("wa", ua), ("wc", uc)):
        agt.wait_content(uid, name + "-v1")
        src.wait_status(name, "Applied", applied(gen(1)))
    agt.stop()
    src.update("wa", "wa-v2", 2, agent_up=False)
    ub = src.create("wb", "wb-v1", 1, agent_up=False)
    src.delete("wc", agent_up=False)
    listener = src.agent_returning("wc")
    agt.start()
    agt.wait_content(ua, "wa-v2")
    agt.wait_content(ub, "wb-v1")
    agt.wait_removed(uc)
    src.agent_returned(listener)
    src.wait_status("wa", "Applied after the resync", applied(gen(2)))
    src.wait_status("wb", "Applied after the resync", applied(gen(1)))
    src.wait_gone("wc")
    check(src.names() == ["wa", "wb"], f"source lists {src.names()}, want [wa, wb]")
    check(agt.uids() == sorted([ua, ub]), f"agent holds {agt.uids()}, want {sorted([ua, ub])}")
    agt.stop()
    src.stop()


def source_restart(cell, src, agt):
    src.start()
    agt.start()
    gen = (lambda g: g) if agt.reports_generation else (lambda g: None)
    uid = src.create("w1", "w1-v1", 1)
    agt.wait_content(uid, "w1-v1")
    st = src.wait_status("w1", "Applied", applied(gen(1)))
    src.stop()
    what, pred = agt.change_status(uid, st)
    mark = 0
    src.start()
    src.wait_status("w1", what, pred, heal=getattr(agt, "heal_source_restart", None))
    if isinstance(src, GoSource):
        types = sorted({e["type"].rsplit(".", 1)[-1] for e in src.status_events(uid, mark)})
        cell.note(f"the restarted Go source got the new status as {types}")
    src.delete("w1")
    agt.wait_removed(uid)
    src.wait_gone("w1")
    agt.stop()
    src.stop()


def status_hashes(cell, tr, sid, cluster):
    """Go source (--resync=false) holding statuses reported by the ocm-ce agent."""
    def resync_answers(s, since):
        return [e for e in s.p.find(lambda e: e.get("event") == "status_event"
                                    and e["type"].endswith(".status.resync_response"), since)]

    src = GoSource(cell, tr, sid, cluster, extra=["--resync=false"])
    agt = OcmAgent(cell, tr, sid, cluster)
    src.start()
    agt.start()
    names = ["h1", "h2", "h3"]
    uids = {n: src.create(n, n + "-v1", 1) for n in names}
    for n in names:
        agt.wait_content(uids[n], n + "-v1")
        src.wait_status(n, "Applied", applied(1))
    # 1. unchanged statuses: a status resync request must get no answers
    m = src.p.mark()
    must_ok(src.p.cmd("resync", cluster=cluster), "resync")
    time.sleep(HASH_QUIET)  # asserting an absence: wait a bounded time, then look
    got = resync_answers(src, m)
    check(not got, f"resync answers for unchanged works (status hash mismatch): {[e['resourceid'] for e in got]}")
    # 2. h2 changes while this source is not listening: the source updates h2, the agent reports
    #    the new status, the source stops; its persisted status of h2 (and the sequence id that
    #    came with it) is rolled back to the one before the update - as if that status report
    #    had been missed - and it starts again from that state.
    before = src.get("h2")
    src.update("h2", "h2-v2", 2)
    agt.wait_content(uids["h2"], "h2-v2")
    src.wait_status("h2", "Applied generation 2", applied(2))
    src.stop()
    with open(src.state) as f:
        state = json.load(f)
    for w in state:
        if w["metadata"]["name"] == "h2":
            w["status"] = before["status"]
            w["metadata"]["annotations"][SEQ] = before["metadata"]["annotations"][SEQ]
    with open(src.state, "w") as f:
        json.dump(state, f)
    src.start()
    check(not applied(2)(src.get("h2")["status"]), "the rolled-back status of h2 did not load")
    m = src.p.mark()
    # the restarted Go source is "ready" before its subscription is active (sdk-go starts it in
    # the background): an answer to a request sent too early is lost, so repeat the request
    deadline = time.time() + TIMEOUT
    for attempt in range(1, 100):
        must_ok(src.p.cmd("resync", cluster=cluster), "resync after the change")
        try:
            src.p.wait("resync answer for h2", lambda e: e.get("event") == "status_event"
                       and e["type"].endswith(".status.resync_response") and e["resourceid"] == uids["h2"], m,
                       max(0.1, min(3.0, deadline - time.time())))
            break
        except Failure:
            if time.time() >= deadline:
                raise
    if attempt > 1:
        cell.note(f"the restarted Go source needed {attempt} resync requests (answers to the first arrived "
                  "before its subscription was active)")
    time.sleep(HASH_QUIET)  # and nothing else may follow
    got = resync_answers(src, m)
    check(sorted({e["resourceid"] for e in got}) == [uids["h2"]],
          f"resync answers {[e['resourceid'] for e in got]}, want exactly h2 {uids['h2']}")
    check(not any(e.get("error") for e in got), f"Go could not decode a resync answer: {got}")
    src.wait_status("h2", "the new status of h2", applied(2))
    cell.note("unchanged: 0 answers; after h2 changed: exactly h2 answered")
    agt.stop()
    src.stop()


# ---- probes of known incompatibilities --------------------------------------------------------

def probe_apply_wait_v015(cell, tr, sid, cluster):
    """`ocm-ce source apply --wait` against an sdk-go v0.15.0 agent."""
    agt = GoAgent(cell, tr, sid, cluster)
    agt.start()
    src = OcmSource(cell, tr, sid, cluster)
    path = cell.write("work.json", json.dumps(work_json("w1", cluster, "w1-v1", None)))
    rc, out, err = src.run("apply", "-f", path, "--wait", "--timeout", f"{PROBE_TIMEOUT}s")
    check(rc == 0, f"apply --wait exited {rc}: {err.strip()[-200:]}")
    agt.stop()


def probe_unversioned_update(cell, tr, sid, cluster):
    """Go source without the resourceversion annotation (resourceVersion "0") updates a work."""
    src = GoSource(cell, tr, sid, cluster)
    agt = OcmAgent(cell, tr, sid, cluster)
    src.start()
    agt.start()
    uid = src.create("w1", "w1-v1", None)
    agt.wait_content(uid, "w1-v1")
    src.wait_status("w1", "Applied", applied())
    src.update("w1", "w1-v2", None)
    agt.wait_content(uid, "w1-v2", timeout=PROBE_TIMEOUT)
    agt.stop()
    src.stop()


def retrying(what, fn, timeout=TIMEOUT):
    """Calls fn until it stops raising Failure (a client still reconnecting refuses to publish:
    sdk-go answers "the cloudevents client is not ready"), at most `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except Failure:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def broker_restart(cell, src, agt):
    """The broker is killed (SIGKILL) and restarted on the same port between two phases; both
    sides reconnect and resync, then an update, a create and a delete go through."""
    src.start()
    agt.start()
    gen = (lambda g: g) if agt.reports_generation else (lambda g: None)
    ua = src.create("wa", "wa-v1", 1)
    uc = src.create("wc", "wc-v1", 1)
    for name, uid in (("wa", ua), ("wc", uc)):
        agt.wait_content(uid, name + "-v1")
        src.wait_status(name, "Applied", applied(gen(1)))
    t = time.time()
    src.tr.restart_broker()
    retrying("update after the broker restart", lambda: src.update("wa", "wa-v2", 2))
    ub = retrying("create after the broker restart", lambda: src.create("wb", "wb-v1", 1))
    agt.wait_content(ua, "wa-v2")
    agt.wait_content(ub, "wb-v1")
    src.wait_status("wa", "Applied after the broker restart", applied(gen(2)))
    src.wait_status("wb", "Applied after the broker restart", applied(gen(1)))
    retrying("delete after the broker restart", lambda: src.delete("wc"))
    agt.wait_removed(uc)
    src.wait_gone("wc")
    cell.note(f"converged {time.time() - t:.1f}s after the broker was killed")
    check(src.names() == ["wa", "wb"], f"source lists {src.names()}, want [wa, wb]")
    check(agt.uids() == sorted([ua, ub]), f"agent holds {agt.uids()}, want {sorted([ua, ub])}")
    agt.stop()
    src.stop()


def forged_status(cell, src, agt):
    """A Go agent connected for another cluster (sdk-go v0.15.0, go-forge) publishes a Deleted
    status carrying the resource id of this cluster's work: the ocm-ce source drops it, and the
    work stays, applied, on both sides."""
    src.start()
    agt.start()
    gen = (lambda g: g) if agt.reports_generation else (lambda g: None)
    uid = src.create("payroll", "salaries", 1)
    agt.wait_content(uid, "salaries")
    before = src.wait_status("payroll", "Applied", applied(gen(1)))
    w = src.get("payroll")
    rogue = "rogue-" + RUN
    forged = cell.write("forged.json", json.dumps({
        "metadata": {"name": uid, "namespace": rogue, "uid": uid, "resourceVersion": "1",
                     "labels": {"cloudevents.open-cluster-management.io/originalsource": src.sid}},
        "status": w.get("status") or {}}))
    cfg = src.tr.agent_config(src.sid, rogue)
    r = subprocess.run([os.path.join(cell.runner.bin_dir, "go-forge"), "--transport", src.tr.kind, "--config", cfg,
                        "--cluster", rogue, "--agent-id", rogue + "-agent", "--work", forged],
                       capture_output=True, text=True, timeout=90)
    with open(cell.path("go-forge.stderr.log"), "a") as f:
        f.write(r.stderr)
    check(r.returncode == 0 and '"published"' in r.stdout, f"go-forge failed: {(r.stdout + r.stderr).strip()[-300:]}")
    time.sleep(2)
    after = src.get("payroll")
    check(after is not None, "the forged Deleted status removed the work at the ocm-ce source")
    check(not after["metadata"].get("deletionTimestamp"), "the forged status marked the work deleting")
    check(cond(after.get("status") or {}, "Deleted") is None, "the forged Deleted condition was applied")
    check(cond(after.get("status") or {}, "Applied") == cond(before, "Applied"), "the status changed")
    check(agt.uids() == [uid], f"agent holds {agt.uids()}, want [{uid}]")
    cell.note(f"forged Deleted status from cluster {rogue} for {uid} dropped by the ocm-ce source")
    agt.stop()
    src.stop()


# ---- the matrix -----------------------------------------------------------------------------

def pairing(kind):
    """(source class, agent class) for a pairing name."""
    return {
        "gs-oa": (GoSource, OcmAgent),
        "os-ga": (OcmSource, GoAgent),
        "gs-ga": (GoSource, GoAgent),
        "os-gl": (OcmSource, GoAgent),
        "gh-oa": (GoLatestSource, OcmAgent),
    }[kind]


PAIR_TITLES = {
    "gs-oa": "Go source -> ocm-ce agent",
    "os-ga": "ocm-ce source -> Go agent",
    "gs-ga": "Go source <-> Go agent via ocm-ce broker",
    "os-gl": "ocm-ce source -> go-agent-latest (v1.3.0)",
    "gh-oa": "sdk-go v1.3.0 GRPCBroker hub -> ocm-ce agent",
}
SCENARIOS = {"lifecycle": lifecycle, "agent restart": agent_restart, "source restart": source_restart}
FAULTS = {"broker restart": broker_restart, "forged status": forged_status}


def matrix():
    """[(cell name, function(cell) -> None, is probe)]."""
    cells = []

    def scenario_cell(transport, pair, sname, secure=None):
        def run(cell):
            ident = f"{transport}-{pair}-{sname.split()[0][:5]}{'-' + secure[:3] if secure else ''}-{RUN}"
            latest = pair == "os-gl"
            sid, cluster = "src-" + ident, "cl-" + ident
            if pair == "gh-oa":
                tr = GoLatestHub(cell, sid)
            elif secure:
                tr = Transport(cell, transport, secure=secure)
            else:
                tr = Transport(cell, transport, heartbeat=1 if latest else None,
                               grpc_extra="serverHealthinessTimeout: 5s\n" if latest else "")
            scls, acls = pairing(pair)
            if transport == "kafka":
                tr.create_topics(sid, cluster)
            src = scls(cell, tr, sid, cluster, **({"wait_applied": True} if latest else {}))
            agt = acls(cell, tr, sid, cluster, **({"latest": True} if latest else {}))
            agt.src = src
            {**SCENARIOS, **FAULTS}[sname](cell, src, agt)
            if latest:
                with open(cell.path("go-agent.stderr.log"), errors="replace") as f:
                    log = f.read()
                beats = log.count("heartbeat received")
                check(beats > 0, "go-agent-latest logged no heartbeat from the ocm-ce broker")
                check("no heartbeat received" not in log, "go-agent-latest hit its heartbeat timeout")
                check(re.search(r'subscribed to grpc server" subID="[^"]+', log),
                      "go-agent-latest did not log the subscription id the broker sent")
                sent = [l for l in log.splitlines() if '"Sending event"' in l]
                acks = [l for l in sent if ".status.update_request" in l and "deletionTimestamp" in l]
                check(acks, "go-agent-latest sent no deletion acknowledgement (status.update_request, Deleted)")
                check(not any(".status.delete_request" in l for l in sent), "go-agent-latest sent a status.delete_request")
                cell.note(f"go-agent-latest: subscription id received, {beats} heartbeats, deletion acknowledged "
                          f"as status.update_request (Deleted=True) x{len(acks)} and accepted by the ocm-ce source")
        return run

    for transport in ("grpc", "mqtt"):
        for pair in ("gs-oa", "os-ga", "gs-ga"):
            if pair == "gs-ga" and transport == "mqtt":
                continue  # n/a: the ocm-ce broker is gRPC only
            for sname in SCENARIOS:
                cells.append((f"{transport:5} | {PAIR_TITLES[pair]} | {sname}", scenario_cell(transport, pair, sname), False))

    def hashes(transport):
        def run(cell):
            ident = f"{transport}-hash-{RUN}"
            status_hashes(cell, Transport(cell, transport), "src-" + ident, "cl-" + ident)
        return run

    for pair in ("gs-oa", "os-ga"):
        for sname in SCENARIOS:
            cells.append((f"kafka | {PAIR_TITLES[pair]} | {sname}", scenario_cell("kafka", pair, sname), False))

    for transport in ("grpc", "mqtt"):
        cells.append((f"{transport:5} | status hashes: Go source, ocm-ce agent | resync", hashes(transport), False))
    # faults with the Go SDK on the other side (the gRPC broker is ours, so it is the one restarted)
    for pair in ("gs-oa", "os-ga"):
        cells.append((f"grpc  | {PAIR_TITLES[pair]} | broker restart", scenario_cell("grpc", pair, "broker restart"), False))
    for transport in ("grpc", "mqtt"):
        cells.append((f"{transport:5} | {PAIR_TITLES['os-ga']} | forged status", scenario_cell(transport, "os-ga", "forged status"), False))
    for sname in SCENARIOS:
        cells.append((f"grpc  | {PAIR_TITLES['os-gl']} | {sname}", scenario_cell("grpc", "os-gl", sname), False))
    # today's Go hubs: the v1.3.0 GRPCBroker (it requires SubscriptionRequest.data_type) serving
    # an ocm-ce agent; a hub restart is a broker restart, its source state kept in its store
    for sname in ("lifecycle", "agent restart", "broker restart"):
        cells.append((f"grpc  | {PAIR_TITLES['gh-oa']} | {sname}", scenario_cell("grpc", "gh-oa", sname), False))

    # secured: Go and ocm-ce read the same TLS / token / password settings of one config file
    for transport, secure in (("grpc", "mtls"), ("grpc", "token"), ("mqtt", "mtls"), ("mqtt", "tls-password"),
                              ("kafka", "mtls")):
        for pair in ("gs-oa", "os-ga"):
            cells.append((f"{transport:5} | {PAIR_TITLES[pair]} | lifecycle over {secure}",
                          scenario_cell(transport, pair, "lifecycle", secure), False))

    def kube_cell(pair, sname):
        """Kubernetes at one end (the API server of scripts/test-env.sh): a Go source -> `ocm-ce
        agent --kubeconfig`, or `ocm-ce hub` -> a Go agent."""
        def run(cell):
            ident = f"kube-{pair}-{sname.split()[0][:5]}-{RUN}"
            tr = Transport(cell, "grpc")
            sid, cluster = "src-" + ident, "cl-" + ident
            if pair == "gs-ka":
                src, agt = GoSource(cell, tr, sid, cluster), KubeAgent(cell, tr, sid, cluster)
                src.manifest_ns = agt.ns
            else:
                src, agt = HubSource(cell, tr, sid, cluster), GoAgent(cell, tr, sid, cluster)
            agt.src = src
            SCENARIOS[sname](cell, src, agt)
        return run

    for sname in ("lifecycle", "agent restart"):
        cells.append((f"kube  | Go source -> ocm-ce agent --kubeconfig | {sname}", kube_cell("gs-ka", sname), False))
    # source restart: the hub is stopped, the Go agent's status changes, the restarted hub gets it
    # through its status resync and writes it into the hub object
    for sname in SCENARIOS:
        cells.append((f"kube  | ocm-ce hub -> Go agent | {sname}", kube_cell("hub-ga", sname), False))

    def probe(fn):
        def run(cell):
            ident = f"probe-{fn.__name__[6:11].replace('_', '')}-{RUN}"
            fn(cell, Transport(cell, "grpc"), "src-" + ident, "cl-" + ident)
        return run

    cells.append(("grpc  | probe: ocm-ce source apply --wait <- sdk-go v0.15.0 agent", probe(probe_apply_wait_v015), True))
    cells.append(("grpc  | probe: Go source unversioned update -> ocm-ce agent", probe(probe_unversioned_update), True))
    return cells


class Runner:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="ocm-ce-interop-")
        self.bin_dir = os.path.join(self.tmp, "bin")
        self.ocm_bin = None
        self._mqtt = None
        self.mosquitto = None
        self._kafka = None
        self.kafka_state = None  # test-env state dir of a Kafka started here
        self._kube = None
        self.kube_state = None  # test-env state dir of a Kubernetes API server started here

    def build(self):
        t = time.time()
        # v0.15.0 with the SDK's `kafka` build tag (cgo, the static librdkafka of confluent-kafka-go):
        # the same binaries serve the gRPC, MQTT and Kafka cells
        for module, tags, pkgs in (("go", ["-tags", "kafka"], ["./cmd/go-source", "./cmd/go-agent", "./cmd/go-forge", "./cmd/kafka-create-topics"]),
                                   ("go-latest", [], ["./cmd/go-agent-latest", "./cmd/grpc-broker-latest"])):
            r = subprocess.run(["go", "build", *tags, "-o", self.bin_dir + "/", *pkgs], cwd=os.path.join(HERE, module),
                               capture_output=True, text=True, timeout=1200,
                               env=dict(os.environ, CGO_ENABLED="1"))
            if r.returncode != 0:
                print(r.stdout + r.stderr, file=sys.stderr)
                raise SystemExit(f"interop: go build in interop/{module} failed")
        go_s = time.time() - t
        ocm = os.environ.get("OCM_CE_BIN")
        t = time.time()
        if not ocm:
            r = subprocess.run(["cargo", "build", "-q", "-p", "ocm-ce-cli", "--features", "kafka", "--locked"], cwd=ROOT,
                               timeout=3600)
            if r.returncode != 0:
                raise SystemExit("interop: cargo build -p ocm-ce-cli failed")
            meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                                             capture_output=True, text=True, check=True).stdout)
            ocm = os.path.join(meta["target_directory"], "debug", "ocm-ce")
        if not os.access(ocm, os.X_OK):
            raise SystemExit(f"interop: OCM_CE_BIN {ocm} is not an executable")
        self.ocm_bin = os.path.abspath(ocm)
        print(f"interop: Go harness built in {go_s:.1f}s (sdk-go v0.15.0 and v1.3.0); "
              f"ocm-ce binary {'from OCM_CE_BIN' if os.environ.get('OCM_CE_BIN') else f'built in {time.time()-t:.1f}s'}",
              flush=True)

    def mqtt_addr(self):
        if self._mqtt:
            return self._mqtt
        env = os.environ.get("OCM_CE_TEST_MQTT")
        if env:
            self._mqtt = env
            return env
        mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.access(mosq, os.X_OK):
            raise Failure("no MQTT broker: set OCM_CE_TEST_MQTT (scripts/test-env.sh) or install mosquitto")
        port = free_port()
        conf = os.path.join(self.tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\n")
        self.mosquitto = subprocess.Popen([mosq, "-c", conf], stdout=subprocess.DEVNULL,
                                          stderr=open(os.path.join(self.tmp, "mosquitto.log"), "w"))

        poll("mosquitto to listen", lambda: port_open(port), 15, 0.1)
        self._mqtt = f"127.0.0.1:{port}"
        return self._mqtt

    def kafka_addr(self):
        """OCM_CE_TEST_KAFKA, else a single-node Kafka started with scripts/test-env.sh for this run."""
        if self._kafka:
            return self._kafka
        env = os.environ.get("OCM_CE_TEST_KAFKA")
        if not env:
            state = os.path.join(self.tmp, "test-env")
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "test-env.sh"), "start", state, "--no-mqtt"],
                               capture_output=True, text=True, timeout=600)
            self.kafka_state = state
            if r.returncode != 0:
                raise Failure(f"no Kafka broker: scripts/test-env.sh start failed: {r.stderr.strip()[-500:]}")
            with open(os.path.join(state, "env")) as f:
                m = re.search(r"OCM_CE_TEST_KAFKA=['\"]?([^'\"\s]+)", f.read())
            check(m, "scripts/test-env.sh wrote no OCM_CE_TEST_KAFKA")
            env = m.group(1)
        self._kafka = env
        return env

    def kube(self):
        """The API server of OCM_CE_TEST_KUBECONFIG, else one started with scripts/test-env.sh."""
        if self._kube:
            return self._kube
        path = os.environ.get("OCM_CE_TEST_KUBECONFIG")
        if not path:
            state = os.path.join(self.tmp, "test-env-kube")
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "test-env.sh"), "kube-start", state],
                               capture_output=True, text=True, timeout=1800)
            self.kube_state = state
            if r.returncode != 0:
                raise Failure(f"no Kubernetes API server: scripts/test-env.sh kube-start failed: {r.stderr.strip()[-500:]}")
            path = os.path.join(state, "kube", "kubeconfig-admin")
        self._kube = Kube(path)
        return self._kube

    def close(self):
        if self.kube_state:
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "test-env.sh"), "kube-stop", self.kube_state],
                           capture_output=True, timeout=120)
        if self.kafka_state:
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "test-env.sh"), "stop", self.kafka_state],
                           capture_output=True, timeout=120)
        if self.mosquitto:
            self.mosquitto.terminate()
            try:
                self.mosquitto.wait(10)
            except subprocess.TimeoutExpired:
                self.mosquitto.kill()


def main():
    ap = argparse.ArgumentParser(description="ocm-ce <-> Go SDK interoperability matrix")
    ap.add_argument("--only", action="append", default=[], help="run the cells whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cells and exit")
    ap.add_argument("--keep", action="store_true", default=os.environ.get("INTEROP_KEEP") == "1",
                    help="keep the work directory")
    args = ap.parse_args()
    cells = [c for c in matrix() if not args.only or any(o in c[0] for o in args.only)]
    if args.list:
        for name, _, probe in cells:
            print(name + ("  (probe)" if probe else ""))
        return 0
    started = time.time()
    runner = Runner(args)
    results = []
    failed_tails = []
    try:
        runner.build()
        for name, fn, probe in cells:
            cell = Cell(runner, name)
            t = time.time()
            print(f"interop: {name} ...", flush=True)
            try:
                fn(cell)
                result, why = ("XPASS" if probe else "PASS"), ""
            except Failure as e:
                result, why = ("XFAIL" if probe else "FAIL"), str(e)
            except Exception as e:  # noqa: BLE001 - a harness bug is a failed cell, not a crash
                result, why = ("XFAIL" if probe else "FAIL"), f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
            finally:
                cell.close()
            secs = time.time() - t
            results.append((name, result, secs, why, cell.notes))
            print(f"interop: {name}: {result} ({secs:.1f}s){(' - ' + why.splitlines()[0]) if why else ''}", flush=True)
            if result == "FAIL":
                failed_tails.append(cell.tails())
    finally:
        runner.close()

    width = max(len(r[0]) for r in results) if results else 10
    print()
    print(f"{'cell':<{width}}  {'result':<6}  {'seconds':>7}")
    print(f"{'-' * width}  {'-' * 6}  {'-' * 7}")
    for name, result, secs, why, notes in results:
        print(f"{name:<{width}}  {result:<6}  {secs:7.1f}")
    print()
    for name, result, secs, why, notes in results:
        if why:
            print(f"{result}: {name}\n  {why.strip().splitlines()[0]}")
        for n in notes:
            print(f"note: {name}: {n}")
    failed = [r for r in results if r[1] == "FAIL"]
    if failed_tails:
        print("\n===== logs of the failed cells =====")
        for t in failed_tails:
            print(t)
    print(f"\ninterop: {len(results) - len(failed)}/{len(results)} cells without failure in {time.time()-started:.0f}s"
          + (f"; work dir kept: {runner.tmp}" if args.keep else ""))
    if not args.keep:
        shutil.rmtree(runner.tmp, ignore_errors=True)
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
