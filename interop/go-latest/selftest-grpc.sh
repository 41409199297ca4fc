#!/usr/bin/env bash
# Self-test of go-agent-latest (sdk-go v1.3.0, gRPC v2 transport) against
# grpc-broker-latest (sdk-go v1.3.0 GRPCBroker + in-memory work source) on a
# free loopback port: subscribe ack, heartbeats, create/patch/status/
# set_condition, agent restart (spec resync answered by the broker), delete.
#
#   interop/go-latest/selftest-grpc.sh     # builds, runs, exits non-zero on failure
#
# Needs: go, python3. Env: KEEP_WORKDIR=1 keeps the temporary directory;
# HEARTBEAT_WAIT=seconds (default 25) how long to watch the stream for heartbeats.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d -t ocm-interop-grpc-selftest.XXXXXX)"
cleanup() {
	if [[ "${KEEP_WORKDIR:-0}" == "1" ]]; then echo "selftest: work dir kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "selftest: building" >&2
(cd "$here" && go build -o "$work/bin/" ./cmd/...)

PYTHONPATH="$here/.." python3 - "$work" "${HEARTBEAT_WAIT:-25}" <<'PY'
import os, sys, time
from harness import start, fail, must_ok, cond, configmap, manifestwork

work, HEARTBEAT_WAIT = sys.argv[1], float(sys.argv[2])
BIN = os.path.join(work, "bin")

broker = start("broker", [os.path.join(BIN, "grpc-broker-latest"), "--listen", "127.0.0.1:0",
                          "--source-id", "source1", "--heartbeat-interval", "10s", "-v", "4"], work)
addr = broker.ready["address"]
with open(os.path.join(work, "agent-grpc.yaml"), "w") as f:
    # the client reconnects when no heartbeat arrives within 15s
    f.write(f"url: {addr}\nserverHealthinessTimeout: 15s\n")


def start_agent():
    return start("agent", [os.path.join(BIN, "go-agent-latest"), "--transport", "grpc",
                           "--config", os.path.join(work, "agent-grpc.yaml"),
                           "--cluster", "cluster1", "--agent-id", "agent1", "-v", "4"], work)


def wait_subscribed():
    deadline = time.time() + 30
    while time.time() < deadline:
        if must_ok(broker.cmd("subscribers"), "subscribers")["works"] == ["cluster1"]:
            return
        time.sleep(0.2)
    fail("agent never subscribed to the broker")


def agent_log():
    return open(os.path.join(work, "agent.stderr.log")).read()


agent = start_agent()
wait_subscribed()

# create
mb = broker.mark(); ma = agent.mark()
res = must_ok(broker.cmd("create", work=manifestwork("work1", "cluster1", [configmap({"k": "v1"})])), "create")
uid = res["work"]["metadata"]["uid"]
ev = agent.wait("applied v1", lambda e: e.get("event") == "applied" and e["uid"] == uid, ma)
if ev["manifests"][0]["data"] != {"k": "v1"} or ev["generation"] != 1:
    fail(f"unexpected applied event {ev}")
agent_name = ev["name"]
print(f"selftest: agent-side work name {agent_name!r} (uid {uid})", file=sys.stderr)
broker.wait("status Applied", lambda e: e.get("event") == "watch" and e["type"] == "MODIFIED" and e["uid"] == uid
            and (cond(e["status"], "Applied") or {}).get("status") == "True"
            and (cond(e["status"], "Applied") or {}).get("observedGeneration") == 1, mb)
se = broker.find(lambda e: e.get("event") == "status_event" and e["resourceid"] == uid, mb)
if not se or not se[0]["sequenceid"] or not se[0]["type"].endswith(".status.update_request"):
    fail(f"unexpected status events {se}")

# merge patch (generation 2)
mb = broker.mark(); ma = agent.mark()
must_ok(broker.cmd("patch", namespace="cluster1", name="work1", patchType="merge",
                   patch={"spec": {"workload": {"manifests": [configmap({"k": "v2"})]}}}), "patch")
agent.wait("applied v2", lambda e: e.get("event") == "applied" and e["uid"] == uid
           and e["manifests"][0].get("data") == {"k": "v2"} and e["generation"] == 2, ma)
broker.wait("status gen 2", lambda e: e.get("event") == "watch" and e["uid"] == uid
            and (cond(e["status"], "Applied") or {}).get("observedGeneration") == 2, mb)

# set_condition by uid
mb = broker.mark()
must_ok(agent.cmd("set_condition", name=uid, type="Progressing", status="True", reason="Testing",
                  message="set by the test"), "set_condition")
broker.wait("status Progressing", lambda e: e.get("event") == "watch" and e["uid"] == uid
            and (cond(e["status"], "Progressing") or {}).get("reason") == "Testing", mb)

# heartbeats keep the stream healthy (serverHealthinessTimeout 15s, heartbeat every 10s)
if HEARTBEAT_WAIT > 0:
    subs_before = agent_log().count("subscribed to grpc server")
    time.sleep(HEARTBEAT_WAIT)
    subs_after = agent_log().count("subscribed to grpc server")
    if subs_after != subs_before:
        fail(f"agent resubscribed while heartbeats were flowing ({subs_before} -> {subs_after})")
    wait_subscribed()
    print(f"selftest: stream stayed up for {HEARTBEAT_WAIT:.0f}s on heartbeats", file=sys.stderr)

# agent restart: the spec changed while the agent was down; its spec resync
# request is answered by the broker
agent.quit()
must_ok(broker.cmd("patch", namespace="cluster1", name="work1", patchType="json",
                   patch=[{"op": "replace", "path": "/spec/workload/manifests/0/data/k", "value": "v3"}]), "patch v3")
mb = broker.mark()
agent = start_agent()
agent.wait("applied v3 after restart", lambda e: e.get("event") == "applied" and e["uid"] == uid
           and e["manifests"][0].get("data") == {"k": "v3"} and e["generation"] == 3)
broker.wait("status gen 3", lambda e: e.get("event") == "watch" and e["uid"] == uid
            and (cond(e["status"], "Applied") or {}).get("observedGeneration") == 3, mb)
res = must_ok(agent.cmd("list"), "agent list")
if [w["metadata"]["uid"] for w in res["works"]] != [uid]:
    fail(f"agent list: {res['works']}")

# delete
mb = broker.mark(); ma = agent.mark()
must_ok(broker.cmd("delete", namespace="cluster1", name="work1"), "delete")
agent.wait("deleted", lambda e: e.get("event") == "deleted" and e["uid"] == uid, ma)
broker.wait("watch DELETED", lambda e: e.get("event") == "watch" and e["type"] == "DELETED" and e["uid"] == uid, mb)
if must_ok(broker.cmd("list"), "broker list")["works"]:
    fail("broker still has works")
deadline = time.time() + 10
while must_ok(agent.cmd("list"), "agent list")["works"]:
    if time.time() > deadline:
        fail("agent still has the work after delete")
    time.sleep(0.2)

agent.quit()
broker.quit()
print("SELFTEST PASS [go-agent-latest over gRPC]", file=sys.stderr)
PY
