"""Small driver for the interop programs' JSON-lines stdin/stdout protocol.

Used by the self-test scripts (go/selftest-mqtt.sh, go-latest/selftest-grpc.sh) and by the
interop matrix (run.py). Every wait is bounded; any failure prints SELFTEST FAIL and exits 1,
or raises Failure when RAISE is set (run.py, which runs many cells in one process).
"""
import json
import os
import subprocess
import sys
import threading
import time

TIMEOUT = float(os.environ.get("SELFTEST_TIMEOUT", "30"))
T0 = time.time()
_procs = []
TRACE = sys.stderr  # where the event trace goes; run.py points it at a per-cell file
RAISE = False  # True: fail() raises Failure instead of killing everything and exiting


class Failure(Exception):
    """A failed check (raised by fail() when RAISE is set)."""


def fail(msg):
    if RAISE:
        raise Failure(msg)
    print(f"SELFTEST FAIL: {msg}", file=sys.stderr)
    for p in _procs:
        p.kill()
    sys.stderr.flush()
    os._exit(1)


def must_ok(res, what):
    if not res.get("ok"):
        fail(f"{what} failed: {res.get('error')}")
    return res


def cond(status, ctype):
    """The condition of type ctype in a ManifestWork status (dict), or None."""
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


class Proc:
    def __init__(self, name, args, logdir):
        self.name = name
        self.log = open(os.path.join(logdir, name + ".stderr.log"), "a")
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, bufsize=1)
        self.events = []
        self.cv = threading.Condition()
        self.next_id = 1
        _procs.append(self)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"event": "NOT_JSON", "line": line}
            print(f"[{time.time()-T0:7.2f}] {self.name} < {line[:300]}", file=TRACE, flush=True)
            with self.cv:
                self.events.append(ev)
                self.cv.notify_all()
        with self.cv:
            self.events.append({"event": "EOF"})
            self.cv.notify_all()

    def mark(self):
        with self.cv:
            return len(self.events)

    def wait(self, what, pred, since=0, timeout=TIMEOUT):
        """Wait for an event (from index since on) matching pred; return it."""
        deadline = time.time() + timeout
        with self.cv:
            i = since
            while True:
                while i < len(self.events):
                    ev = self.events[i]
                    i += 1
                    if ev.get("event") == "NOT_JSON":
                        fail(f"{self.name}: non-JSON stdout line: {ev['line']}")
                    if pred(ev):
                        return ev
                    if ev.get("event") in ("EOF", "fatal"):
                        fail(f"{self.name}: {ev} while waiting for {what}")
                left = deadline - time.time()
                if left <= 0:
                    fail(f"{self.name}: timed out after {timeout}s waiting for {what}")
                self.cv.wait(left)

    def find(self, pred, since=0):
        with self.cv:
            return [e for e in self.events[since:] if pred(e)]

    def cmd(self, op, **kw):
        cid = self.next_id
        self.next_id += 1
        msg = dict(id=cid, op=op, **kw)
        since = self.mark()
        print(f"[{time.time()-T0:7.2f}] {self.name} > {json.dumps(msg)[:300]}", file=TRACE, flush=True)
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()
        res = self.wait(f"result of {op}", lambda e: e.get("event") == "result" and e.get("id") == cid, since)
        if res.get("op") != op:
            fail(f"{self.name}: result op {res.get('op')} != {op}")
        return res

    def quit(self):
        self.cmd("quit")
        try:
            rc = self.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.p.kill()
            fail(f"{self.name}: did not exit after quit")
        if rc != 0:
            fail(f"{self.name}: exit code {rc}")
        if self in _procs:
            _procs.remove(self)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def start(name, args, logdir, ready_timeout=TIMEOUT):
    p = Proc(name, args, logdir)
    p.ready = p.wait("ready", lambda e: e.get("event") == "ready", timeout=ready_timeout)
    return p


def configmap(data, name="cm1", namespace="default"):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}, "data": data}


def manifestwork(name, cluster, manifests):
    return {"apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
            "metadata": {"name": name, "namespace": cluster},
            "spec": {"workload": {"manifests": manifests}}}
