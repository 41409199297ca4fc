"""Go source <-> Go agent (sdk-go v0.15.0) lifecycle scenario, used by
selftest-mqtt.sh and selftest-kafka.sh.

usage: selftest_scenario.py WORKDIR TRANSPORT CLIENT_MODE
WORKDIR holds bin/ (go-source, go-agent), source.yaml and agent.yaml.
"""
import json, os, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import start, fail, must_ok, cond, configmap, manifestwork  # noqa: E402

work, TRANSPORT, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
BIN = os.path.join(work, "bin")
READY_TIMEOUT = 60


def start_source(*extra):
    return start("source", [os.path.join(BIN, "go-source"), "--transport", TRANSPORT,
                            "--config", os.path.join(work, "source.yaml"),
                            "--source-id", "source1", "--client-id", "source1-client",
                            "--state-file", os.path.join(work, "state.json"),
                            "--client-mode", MODE, *extra], work, READY_TIMEOUT)


agent = start("agent", [os.path.join(BIN, "go-agent"), "--transport", TRANSPORT,
                        "--config", os.path.join(work, "agent.yaml"),
                        "--cluster", "cluster1", "--agent-id", "agent1"], work, READY_TIMEOUT)
source = start_source()

# 1. create
m = source.mark(); ma = agent.mark()
res = must_ok(source.cmd("create", work=manifestwork("work1", "cluster1", [configmap({"k": "v1"})])), "create")
uid = res["work"]["metadata"]["uid"]
print(f"selftest: created work1 uid={uid}", file=sys.stderr)
# SourceLocalWatcherStore keeps only the latest pending watch event per key, so
# ADDED may be folded into MODIFIED when the status arrives quickly.
source.wait("watch ADDED", lambda e: e.get("event") == "watch" and e["type"] in ("ADDED", "MODIFIED")
            and e["name"] == "work1", m)
ev = agent.wait("applied v1", lambda e: e.get("event") == "applied" and e["uid"] == uid, ma)
if ev["manifests"][0]["data"] != {"k": "v1"}:
    fail(f"agent applied unexpected manifest {ev['manifests']}")
source.wait("status_event", lambda e: e.get("event") == "status_event" and e["resourceid"] == uid
            and e["type"].endswith(".status.update_request") and e["sequenceid"], m)
ev = source.wait("watch MODIFIED with Applied=True",
                 lambda e: e.get("event") == "watch" and e["type"] == "MODIFIED" and e["name"] == "work1"
                 and (cond(e["status"], "Applied") or {}).get("status") == "True"
                 and (cond(e["status"], "Available") or {}).get("status") == "True", m)
manifests = ev["status"]["resourceStatus"]["manifests"]
rm = manifests[0]["resourceMeta"]
if (rm["kind"], rm["resource"], rm["name"], rm["version"]) != ("ConfigMap", "configmaps", "cm1", "v1"):
    fail(f"unexpected resourceMeta {rm}")
if not ev["statusHash"]:
    fail("empty statusHash")

# 2. merge patch of the manifest
m = source.mark(); ma = agent.mark()
must_ok(source.cmd("patch", namespace="cluster1", name="work1", patchType="merge",
                   patch={"spec": {"workload": {"manifests": [configmap({"k": "v2"})]}}}), "merge patch")
agent.wait("applied v2", lambda e: e.get("event") == "applied" and e["uid"] == uid
           and e["manifests"][0].get("data") == {"k": "v2"}, ma)
source.wait("watch MODIFIED", lambda e: e.get("event") == "watch" and e["type"] == "MODIFIED" and e["name"] == "work1", m)

# 2b. JSON patch
m = source.mark(); ma = agent.mark()
must_ok(source.cmd("patch", namespace="cluster1", name="work1", patchType="json",
                   patch=[{"op": "replace", "path": "/spec/workload/manifests/0/data/k", "value": "v3"}]), "json patch")
agent.wait("applied v3", lambda e: e.get("event") == "applied" and e["uid"] == uid
           and e["manifests"][0].get("data") == {"k": "v3"}, ma)

res = must_ok(source.cmd("get", namespace="cluster1", name="work1"), "get")
if res["work"]["spec"]["workload"]["manifests"][0]["data"] != {"k": "v3"}:
    fail("get returned a stale spec")
res = must_ok(source.cmd("list"), "list")
if [w["metadata"]["name"] for w in res["works"]] != ["work1"]:
    fail(f"list returned {res['works']}")
res = must_ok(agent.cmd("list"), "agent list")
if [w["metadata"]["uid"] for w in res["works"]] != [uid]:
    fail(f"agent list returned {res['works']}")

# 3. restart the source while the agent changes a condition
time.sleep(0.5)  # let the last watch events reach the state file
source.quit()
state = json.load(open(os.path.join(work, "state.json")))
if [w["metadata"]["name"] for w in state] != ["work1"] or not cond(state[0].get("status"), "Applied"):
    fail(f"state file does not hold work1 with status: {state}")
must_ok(agent.cmd("set_condition", name=uid, type="Progressing", status="True",
                  reason="Testing", message="changed while the source was down"), "set_condition")
source = start_source()
source.wait("status via initial resync",
            lambda e: e.get("event") == "watch" and e["type"] == "MODIFIED" and e["name"] == "work1"
            and (cond(e["status"], "Progressing") or {}).get("reason") == "Testing")
print("selftest: restarted source got the new status via its initial resync", file=sys.stderr)

# 3b. explicit status resync (op "resync") after another offline change, with
# the automatic resync switched off
source.quit()
must_ok(agent.cmd("set_condition", name=uid, type="Progressing", status="False",
                  reason="Testing2", message="changed again"), "set_condition 2")
source = start_source("--resync=false")
time.sleep(2)
res = must_ok(source.cmd("get", namespace="cluster1", name="work1"), "get before resync")
# Kafka keeps the status published while the source was down (consumer group
# offsets), so only MQTT can show that nothing arrives without a resync.
if TRANSPORT == "mqtt" and (cond(res["work"]["status"], "Progressing") or {}).get("reason") != "Testing":
    fail(f"unexpected status before the explicit resync: {res['work']['status']}")
m = source.mark()
must_ok(source.cmd("resync", cluster="cluster1"), "resync cluster1")
source.wait("status via explicit resync",
            lambda e: e.get("event") == "watch" and e["name"] == "work1"
            and (cond(e["status"], "Progressing") or {}).get("reason") == "Testing2", m)
must_ok(source.cmd("resync", cluster=""), "resync all")

# 4. delete
m = source.mark(); ma = agent.mark()
must_ok(source.cmd("delete", namespace="cluster1", name="work1"), "delete")
agent.wait("deleted", lambda e: e.get("event") == "deleted" and e["uid"] == uid, ma)
# sdk-go v0.15.0 agents report the deletion as status.delete_request, v1.3.0
# agents as status.update_request (both carry condition Deleted=True)
source.wait("status_event delete", lambda e: e.get("event") == "status_event" and e["resourceid"] == uid
            and (e["type"].endswith(".status.delete_request") or e["type"].endswith(".status.update_request")), m)
source.wait("watch DELETED", lambda e: e.get("event") == "watch" and e["type"] == "DELETED" and e["name"] == "work1", m)
res = source.cmd("get", namespace="cluster1", name="work1")
if res.get("ok"):
    fail("work1 still exists after delete")
deadline = time.time() + 10
while True:
    res = must_ok(agent.cmd("list"), "agent list after delete")
    if not res["works"]:
        break
    if time.time() > deadline:
        fail(f"agent still has works: {res['works']}")
    time.sleep(0.2)

source.quit()
agent.quit()
if json.load(open(os.path.join(work, "state.json"))) != []:
    fail("state file not empty after delete")
print(f"SELFTEST PASS [{TRANSPORT}, {MODE}]", file=sys.stderr)
