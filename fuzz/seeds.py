#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets from real samples.

    python3 fuzz/seeds.py [OUT_DIR]      (default: fuzz/corpus)

Sources: the Go golden vectors (`$OCM_CE_GOLDEN_DIR`, else `testdata/golden` of the
repository: `decode.json`, `events.json`, `agent_spec_action.json`, `topics.json`) and the YAML
examples of `docs/config-*.md` and `docs/broker.md`. Multi-field inputs use the framing of
`fuzz/src/lib.rs` (fields separated by 0xFF, the payload after 0xFE).

The committed corpus is this output plus what the fuzzers found, minimised with `cargo fuzz
cmin`; re-running this script only adds files (named by content hash).
"""

import base64
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
GOLDEN = os.environ.get("OCM_CE_GOLDEN_DIR") or os.path.join(REPO, "testdata", "golden")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
MAX_SEED = 16 * 1024  # keep the committed corpus small: no golden size cases

PAYLOAD, SEP = b"\xfe", b"\xff"


def frame(fields, payload=None):
    head = SEP.join(f if isinstance(f, bytes) else f.encode() for f in fields)
    return head if payload is None else head + PAYLOAD + payload


def write(target, data):
    if len(data) > MAX_SEED:
        return
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def golden(name):
    with open(os.path.join(GOLDEN, name)) as f:
        return json.load(f)["cases"]


def payload_bytes(p, b64=None):
    if b64 is not None:
        return base64.b64decode(b64)
    if p is None:
        return None
    if "utf8" in p:
        return p["utf8"].encode()
    return bytes.fromhex(p["hex"])


def mqtt_seeds(content_type, props, payload):
    write("mqtt_message", frame([content_type or ""] + [x for kv in props for x in kv], payload or b""))
    # The same message as a Kafka record: `content-type` header, `ce-*` headers, value.
    headers = [("content-type", content_type)] if content_type else []
    headers += [tuple(kv) for kv in props]
    for topic in ("sourceevents.source1.cluster1", "agentevents.source1.cluster1"):
        write("kafka_record", frame([topic, "source1@cluster1"] + [x for kv in headers for x in kv], payload))


def event_seed(cloudevent):
    """A work_codecs input from a golden `event`/`cloudevent` (attributes, extensions, data)."""
    attrs = cloudevent["attributes"]
    fields = [attrs.get("type", ""), attrs.get("source", ""), attrs.get("datacontenttype", "")]
    for name, ext in sorted(cloudevent.get("extensions", {}).items()):
        t, v = ext["go_type"], ext["value"]
        if t == "int32":
            fields += [name + "#i", str(v)]
        elif t == "bool":
            fields += [name + "#b", "true" if v else "false"]
        elif isinstance(v, dict):
            continue  # invalid UTF-8 extension values cannot reach the codecs
        else:
            fields += [name, str(v)]
    data = cloudevent.get("data")
    if isinstance(data, dict) and ("utf8" in data or "hex" in data):
        data = payload_bytes(data)
    elif data is not None:
        data = json.dumps(data, separators=(",", ":")).encode()
    write("work_codecs", frame(fields, data))
    if data:
        for target in ("resync_versions", "resync_status_hashes"):
            if b"resourceVersions" in data or b"statusHashes" in data:
                write(target, data)


def work_seeds(work_json):
    write("manifestwork_json", work_json.encode())
    write("manifestwork_yaml", work_json.encode())  # JSON is YAML


def yaml_blocks(path):
    with open(path) as f:
        return re.findall(r"```yaml\n(.*?)```", f.read(), re.S)


def main():
    for c in golden("decode.json"):
        inp = c["input"]
        if "mqtt" in inp:
            m = inp["mqtt"]
            if "payload_template" not in m:
                mqtt_seeds(m["content_type"], m["user_properties"], payload_bytes(m["payload"], m.get("payload_base64")))
        if "grpc" in inp:
            g = inp["grpc"]
            write("proto_cloudevent", bytes.fromhex(g["cloudevent_hex_deterministic"]))
            write("proto_publish_request", bytes.fromhex(g["publish_request_hex_deterministic"]))
        if c.get("event"):
            event_seed(c["event"])
        out = c.get("outcome") or {}
        if out.get("ok") and out.get("work_json"):
            work_seeds(out["work_json"])

    for c in golden("events.json"):
        if "mqtt" in c:
            m = c["mqtt"]
            mqtt_seeds(m["content_type"], m["user_properties"], payload_bytes(m.get("payload"), m.get("payload_base64")))
        if "grpc" in c:
            write("proto_cloudevent", bytes.fromhex(c["grpc"]["cloudevent_hex_deterministic"]))
            write("proto_publish_request", bytes.fromhex(c["grpc"]["publish_request_hex_deterministic"]))
        if "cloudevent" in c:
            event_seed(c["cloudevent"])

    for c in golden("agent_spec_action.json"):
        p = c.get("request_payload")
        if isinstance(p, str):
            write("resync_versions" if "resourceVersions" in p else "resync_status_hashes", p.encode())

    for c in golden("topics.json"):
        if "config_file" in c:
            write("config_mqtt", c["config_file"].encode())

    docs = os.path.join(REPO, "docs")
    for target, doc in (("config_mqtt", "config-mqtt.md"), ("config_grpc", "config-grpc.md"), ("config_kafka", "config-kafka.md")):
        for block in yaml_blocks(os.path.join(docs, doc)):
            write(target, block.encode())
    for block in yaml_blocks(os.path.join(docs, "broker.md")):
        write("broker_tokens" if "tokens:" in block else "broker_policy", block.encode())

    # A works file as `ocm-ce source apply -f` reads it: several documents, YAML block style.
    write("manifestwork_yaml", b"""apiVersion: work.open-cluster-management.io/v1
kind: ManifestWork
metadata:
  name: work1
  namespace: cluster1
  labels: {app: demo}
  annotations:
    cloudevents.open-cluster-management.io/resourceversion: "2"
spec:
  workload:
    manifests:
      - apiVersion: v1
        kind: ConfigMap
        metadata: {name: cm1, namespace: default}
        data:
          a: "b"
  deleteOption:
    propagationPolicy: Orphan
---
# a second work
kind: ManifestWork
metadata: {name: work2, namespace: cluster2}
spec:
  workload:
    manifests: []
...
""")


if __name__ == "__main__":
    main()
