#!/usr/bin/env python3
"""The hub path under load: N ManifestWorks created in a hub API server, served by `ocm-ce hub`
through an `ocm-ce broker` to `ocm-ce agent --kubeconfig`, which applies them to the same API
server (one ConfigMap each). Prints works/s, create -> Applied (on the hub object, as a watch of
the hub sees it) percentiles, the time to delete them all, and the peak RSS of hub and agent.

    python3 scripts/kube-hub-bench.py [--works 1000] [--threads 8] [--qps 1000] [--workers 8]

Uses the API server of OCM_CE_TEST_KUBECONFIG (scripts/test-env.sh), else starts one with
`scripts/test-env.sh kube-start`; OCM_CE_BIN is the ocm-ce binary (default: the release build
under CARGO_TARGET_DIR or target/). Loopback only; every wait is bounded.
"""
import argparse
import base64
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Kube:
    def __init__(self, kubeconfig):
        text = open(kubeconfig).read()
        self.server = re.search(r"server:\s*(\S+)", text).group(1)
        self.token = re.search(r"token:\s*(\S+)", text).group(1)
        ca = base64.b64decode(re.search(r"certificate-authority-data:\s*(\S+)", text).group(1)).decode()
        self.ctx = ssl.create_default_context(cadata=ca)

    def open(self, method, path, body=None, content_type="application/json", timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type})
        return urllib.request.urlopen(req, context=self.ctx, timeout=timeout)

    def request(self, method, path, body=None):
        try:
            with self.open(method, path, body) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"VmHWM:\s*(\d+) kB", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--works", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8, help="concurrent creating clients")
    ap.add_argument("--qps", type=float, default=1000, help="--kube-api-qps (and burst) of hub and agent")
    ap.add_argument("--workers", type=int, default=8, help="the agent's --workers")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ocm = os.environ.get("OCM_CE_BIN", os.path.join(target, "release", "ocm-ce"))
    tmp = tempfile.mkdtemp(prefix="ocm-ce-hub-bench-")
    procs, state = [], None
    try:
        kubeconfig = os.environ.get("OCM_CE_TEST_KUBECONFIG")
        if not kubeconfig:
            state = os.path.join(tmp, "kube")
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "test-env.sh"), "kube-start", state], check=True)
            kubeconfig = os.path.join(state, "kube", "kubeconfig-admin")
        kube = Kube(kubeconfig)
        run = uuid.uuid4().hex[:6]
        cluster, ns, label = f"bench-{run}", f"bench-cm-{run}", f"bench={run}"
        for n in (cluster, ns):
            code, obj = kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": n}})
            assert code == 201, obj

        def spawn(name, argv):
            p = subprocess.Popen([ocm, *argv], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, name + ".log"), "w"))
            procs.append(p)
            return p

        def wait_log(name, pattern, timeout=60):
            deadline = time.time() + timeout
            while time.time() < deadline:
                m = re.search(pattern, open(os.path.join(tmp, name + ".log")).read())
                if m:
                    return m
                time.sleep(0.05)
            raise SystemExit(f"{name}: no {pattern!r} within {timeout}s")

        spawn("broker", ["broker", "--listen", "127.0.0.1:0", "--insecure"])
        addr = wait_log("broker", r"listening on (127\.0\.0\.1:\d+)").group(1)
        config = os.path.join(tmp, "grpc.yaml")
        open(config, "w").write(f"url: {addr}\n")
        limits = ["--kube-api-qps", str(args.qps), "--kube-api-burst", str(int(max(args.qps, 1)))]
        hub = spawn("hub", ["-v", "hub", "--transport", "grpc", "--config", config, "--source", "hub-" + run,
                            "--kubeconfig", kubeconfig, "--selector", label, "--qps", "0", *limits])
        agent = spawn("agent", ["-v", "agent", "--transport", "grpc", "--config", config, "--cluster", cluster,
                                "--kubeconfig", kubeconfig, "--hub-hash", "hub-" + run, "--workers", str(args.workers),
                                "--qps", "0", *limits])
        wait_log("hub", "subscription confirmed")
        wait_log("agent", "subscription confirmed")

        works = f"/apis/work.open-cluster-management.io/v1/namespaces/{cluster}/manifestworks"
        created, applied, lock = {}, {}, threading.Lock()
        done = threading.Event()

        def watch():
            # the hub objects as a client of the hub sees them: Applied=True at generation 1
            with kube.open("GET", f"{works}?watch=1&labelSelector={label}", timeout=args.timeout) as r:
                for line in r:
                    w = json.loads(line)["object"]
                    conds = (w.get("status") or {}).get("conditions") or []
                    if any(c["type"] == "Applied" and c["status"] == "True" and c.get("observedGeneration") == 1
                           for c in conds):
                        with lock:
                            applied.setdefault(w["metadata"]["name"], time.time())
                            if len(applied) == args.works:
                                done.set()
                                return

        threading.Thread(target=watch, daemon=True).start()
        time.sleep(0.5)  # the watch is established

        def create(i):
            name = f"w{i:05d}"
            body = {"apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
                    "metadata": {"name": name, "namespace": cluster, "labels": {"bench": run}},
                    "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
                                                         "metadata": {"name": "cm-" + name, "namespace": ns},
                                                         "data": {"k": "x" * 256}}]}}}
            t = time.time()
            code, obj = kube.request("POST", works, body)
            assert code == 201, obj
            with lock:
                created[name] = t

        t0 = time.time()
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(create, range(args.works)))
        t_created = time.time() - t0
        if not done.wait(args.timeout):
            raise SystemExit(f"only {len(applied)}/{args.works} works Applied within {args.timeout}s")
        t_applied = time.time() - t0
        lat = [applied[n] - created[n] for n in created]
        rss_hub, rss_agent = peak_rss_mib(hub.pid), peak_rss_mib(agent.pid)

        t1 = time.time()
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(lambda i: kube.request("DELETE", f"{works}/w{i:05d}"), range(args.works)))
        deadline = time.time() + args.timeout
        while kube.request("GET", f"{works}?labelSelector={label}")[1]["items"]:
            if time.time() > deadline:
                raise SystemExit("the works were not all gone within the timeout")
            time.sleep(0.2)
        t_deleted = time.time() - t1
        left = kube.request("GET", f"/api/v1/namespaces/{ns}/configmaps")[1]["items"]
        print(json.dumps({
            "works": args.works, "create_threads": args.threads, "kube_api_qps": args.qps, "agent_workers": args.workers,
            "created_in_s": round(t_created, 2), "all_applied_in_s": round(t_applied, 2),
            "works_per_s": round(args.works / t_applied, 1),
            "create_to_applied_ms": {p: round(pct(lat, p) * 1000) for p in (50, 90, 99)},
            "create_to_applied_max_ms": round(max(lat) * 1000),
            "all_deleted_in_s": round(t_deleted, 2), "configmaps_left": len(left),
            "peak_rss_mib": {"hub": round(rss_hub, 1), "agent": round(rss_agent, 1)},
        }, indent=1))
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if state:
            subprocess.run(["bash", os.path.join(ROOT, "scripts", "test-env.sh"), "kube-stop", state], capture_output=True)
        if os.environ.get("KEEP") != "1":
            subprocess.run(["rm", "-rf", tmp])
        else:
            print("kept", tmp, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
