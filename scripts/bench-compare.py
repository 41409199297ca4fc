#!/usr/bin/env python3
"""The Go SDK v0.15.0 and ocm-ce side by side, over the same Mosquitto, in one run.

For each N (default 1000 and 5000 works, one cluster, ~1 KiB each: a ConfigMap of 1 KiB and a
Deployment) both run the same lifecycle: every work created and reported Applied, updated once
and reported applied again, deleted and acknowledged (`Deleted`), with the publish rate limits
raised (Go's default 50 QPS caps a lifecycle at ~17 works/s):

* Go: `interop/go` `go-source --client-mode manual --qps 100000 --quiet` running its `lifecycle`
  op, and `go-agent --qps 100000 --quiet --observe-resource-version`, as two processes;
* ocm-ce: `ocm-ce bench --processes --transport mqtt --update-all` (the source in the bench
  process, the agent a separate `ocm-ce agent --apply memory` process).

Each run gets a fresh Mosquitto (`max_queued_messages 1000000`, no persistence) on a free
loopback port; CPU (user + system over the lifecycle) and peak RSS (VmHWM) of every process,
Mosquitto's included, come from /proc. Mosquitto's raw rate for the same message mix (6 QoS 1
messages of 1 KiB per work lifecycle: 3 specs, 3 statuses) is measured with
crates/ocm-ce-client/benches/mqtt_mosquitto_baseline.sh. A Go run that does not finish within
--go-timeout is reported as such (with the phase it reached) instead of hanging.

Prints a table (works/s, ratio ocm-ce/Go, CPU ms per work per process, peak RSS per process,
Mosquitto's raw rate), writes results.json and compare.svg (works/s and agent CPU per work
against N, both implementations) into --out.

    python3 scripts/bench-compare.py [--works 1000,5000] [--go-timeout 600] [--out DIR]

OCM_CE_BIN is the ocm-ce binary (default: `cargo build --release -p ocm-ce-cli`, then the
binary under CARGO_TARGET_DIR, default ~/.cache/ocm-ce-target as for scripts/test.sh). The Go programs are built into a temporary
directory (Go module proxy or the module cache). Python 3 standard library only; Linux (/proc).
"""
import argparse
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
RAISED_QPS = "100000"
MESSAGES_PER_WORK = 6


# ---- processes ------------------------------------------------------------------------------

def usage(pid):
    """(CPU seconds, peak RSS MiB) of a live process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmHWM:\s*(\d+) kB", f.read())
    except OSError:
        return 0.0, 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS, (int(m.group(1)) / 1024 if m else 0.0)


class Proc:
    """A child process; stdout lines go to a queue, stderr to a log file."""

    def __init__(self, name, argv, log_dir, stdin=False):
        self.name = name
        self.log = os.path.join(log_dir, f"{name}.log")
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=open(self.log, "w"), text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, pred, timeout):
        """The first stdout JSON line for which pred is true, or None after timeout / at exit."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if pred(v):
                return v

    def send(self, obj):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()

    def usage(self):
        return usage(self.p.pid)

    def stop(self, quit_cmd=False):
        if self.p.poll() is None:
            try:
                if quit_cmd:
                    self.send({"op": "quit"})
                else:
                    self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()

    def tail(self, n=15):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"bench-compare: nothing listens on 127.0.0.1:{port}")


def start_mosquitto(work, name):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = os.path.join(work, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_queued_messages 1000000\nmax_inflight_messages 0\nmax_keepalive 65535\n"
                "log_dest stderr\nlog_type error\nlog_type warning\n")
    m = Proc(name, [exe, "-c", conf], work)
    wait_port(port)
    return m, f"127.0.0.1:{port}"


# ---- builds ---------------------------------------------------------------------------------

def ocm_binary(work):
    """The ocm-ce binary, copied into the work directory (a target directory shared with other
    checkouts may get another build while this runs)."""
    binary = os.environ.get("OCM_CE_BIN")
    if not binary:
        # The target directory scripts/test.sh uses, not one more under the checkout.
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/ocm-ce-target")
        print(f"building ocm-ce (cargo build --release -p ocm-ce-cli, into {target}) ...", flush=True)
        env = dict(os.environ, CARGO_TARGET_DIR=target)
        if subprocess.run(["cargo", "build", "--release", "-p", "ocm-ce-cli"], cwd=ROOT, env=env).returncode != 0:
            raise SystemExit("bench-compare: cargo build failed")
        binary = os.path.join(target, "release", "ocm-ce")
    copy = os.path.join(work, "ocm-ce")
    shutil.copy2(binary, copy)
    return copy


def go_binaries(work):
    out = os.path.join(work, "go-bin")
    print("building interop/go go-source and go-agent (sdk-go v0.15.0) ...", flush=True)
    r = subprocess.run(["go", "build", "-o", out + "/", "./cmd/go-source", "./cmd/go-agent"],
                       cwd=os.path.join(ROOT, "interop", "go"))
    if r.returncode != 0:
        raise SystemExit("bench-compare: go build failed")
    return out


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def mqtt_config(path, addr, source, cluster):
    return write(path, f"brokerHost: {addr}\ntopics:\n"
                       f"  sourceEvents: sources/{source}/clusters/{cluster}/sourceevents\n"
                       f"  agentEvents: sources/{source}/clusters/{cluster}/agentevents\n")


# ---- runs -----------------------------------------------------------------------------------

def figures(name, before, after, works):
    cpu = max(after[0] - before[0], 0.0)
    return {"process": name, "cpu_s": cpu, "cpu_ms_per_work": cpu * 1000 / works, "peak_rss_mb": after[1]}


def run_go(n, bins, work, timeout, manifest_bytes):
    run_dir = os.path.join(work, f"go-{n}")
    os.makedirs(run_dir)
    mosq, addr = start_mosquitto(run_dir, "mosquitto")
    source_id, cluster = "bench-go", "cluster1"
    agent = Proc("go-agent", [os.path.join(bins, "go-agent"), "--transport", "mqtt", "--config",
                              mqtt_config(os.path.join(run_dir, "agent.yaml"), addr, source_id, cluster),
                              "--cluster", cluster, "--agent-id", f"{cluster}-agent", "--qps", RAISED_QPS,
                              "--burst", RAISED_QPS, "--quiet", "--observe-resource-version"], run_dir, stdin=True)
    source = Proc("go-source", [os.path.join(bins, "go-source"), "--transport", "mqtt", "--config",
                                mqtt_config(os.path.join(run_dir, "source.yaml"), addr, source_id, "+"),
                                "--source-id", source_id, "--client-id", f"{source_id}-client",
                                "--client-mode", "manual", "--qps", RAISED_QPS, "--burst", RAISED_QPS, "--quiet"],
                  run_dir, stdin=True)
    procs = [("source", source), ("agent", agent), ("mosquitto", mosq)]
    try:
        for name, p in procs[:2]:
            if p.expect(lambda v: v.get("event") in ("ready", "fatal"), 60) is None:
                raise RuntimeError(f"go {name} did not start:\n{p.tail()}")
        time.sleep(1)  # the agent's start-up resync settles
        before = {name: p.usage() for name, p in procs}
        source.send({"id": 1, "op": "lifecycle", "lifecycle": {
            "clusters": [cluster], "works": n, "manifestBytes": manifest_bytes, "updateEvery": 1,
            "timeoutSeconds": timeout}})
        result = source.expect(lambda v: v.get("event") == "result", timeout + 60)
        after = {name: p.usage() for name, p in procs}
        if result is None:
            return {"impl": "go", "n": n, "complete": False, "note": f"did not finish in {timeout:.0f} s (no answer)"}
        if not result.get("ok"):
            return {"impl": "go", "n": n, "complete": False, "note": f"failed: {result.get('error')}"}
        s = result["summary"]
        out = {"impl": "go", "n": n, **s,
               "processes": [figures(name, before[name], after[name], n) for name, _ in procs]}
        if not s["complete"]:
            done = ", ".join(f"{p} took {s[p + '_s']:.0f} s" for p in ("apply", "update") if s.get(p + "_s"))
            out["note"] = (f"did not finish in {timeout:.0f} s ({s.get('pending')} works still in phase "
                           f"{s.get('phase')}{'; ' + done if done else ''})")
        return out
    finally:
        source.stop(quit_cmd=True)
        agent.stop(quit_cmd=True)
        mosq.stop()


def run_ocm(n, binary, work, timeout, manifest_bytes):
    run_dir = os.path.join(work, f"ocm-ce-{n}")
    os.makedirs(run_dir)
    mosq, addr = start_mosquitto(run_dir, "mosquitto")
    config = mqtt_config(os.path.join(run_dir, "mqtt.yaml"), addr, "ocm-ce-bench", "+")
    try:
        before = mosq.usage()
        r = subprocess.run([binary, "bench", "--processes", "--transport", "mqtt", "--config", config,
                            "--clusters", "1", "--works", str(n), "--update-all", "--manifest-bytes",
                            str(manifest_bytes), "--timeout", f"{timeout}s", "--json"],
                           capture_output=True, text=True, timeout=timeout + 120)
        after = mosq.usage()
        if r.returncode != 0 and not r.stdout.strip():
            return {"impl": "ocm-ce", "n": n, "complete": False, "note": "failed: " + r.stderr.strip()[-500:]}
        rep = json.loads(r.stdout)
        procs = [{"process": p["role"], "cpu_s": p["cpu_s"], "cpu_ms_per_work": p["cpu_ms_per_work"],
                  "peak_rss_mb": p["peak_rss_mb"]} for p in rep["processes"]]
        procs.append(figures("mosquitto", before, after, n))
        keys = ("works_created", "works_updated", "works_deleted", "statuses_received", "p50_ms", "p99_ms",
                "max_ms", "works_per_sec", "elapsed_s", "complete", "apply_s", "update_s", "delete_s")
        return {"impl": "ocm-ce", "n": n, **{k: rep[k] for k in keys}, "processes": procs}
    except subprocess.TimeoutExpired:
        return {"impl": "ocm-ce", "n": n, "complete": False, "note": f"did not finish in {timeout + 120:.0f} s"}
    finally:
        mosq.stop()


def raw_rate(n, work):
    """Mosquitto's own clients moving the messages of n lifecycles (QoS 1, 1 KiB)."""
    run_dir = os.path.join(work, f"raw-{n}")
    os.makedirs(run_dir)
    mosq, addr = start_mosquitto(run_dir, "mosquitto")
    try:
        r = subprocess.run(["bash", os.path.join(ROOT, "crates/ocm-ce-client/benches/mqtt_mosquitto_baseline.sh"),
                            str(n * MESSAGES_PER_WORK)], env=dict(os.environ, OCM_CE_TEST_MQTT=addr),
                           capture_output=True, text=True, timeout=600)
        m = re.search(r"= (\d+) messages/s", r.stdout)
        if not m:
            return {"n": n, "note": "failed: " + (r.stdout + r.stderr).strip()[-300:]}
        msgs = float(m.group(1))
        return {"n": n, "messages": n * MESSAGES_PER_WORK, "messages_per_sec": msgs,
                "works_per_sec": msgs / MESSAGES_PER_WORK}
    finally:
        mosq.stop()


# ---- report ---------------------------------------------------------------------------------

def proc(run, name):
    for p in run.get("processes", []):
        if p["process"] == name:
            return p
    return None


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def print_table(results, raws):
    ns = sorted({r["n"] for r in results})
    print()
    print(f"{'N':>6} {'impl':<7} {'works/s':>9} {'ratio':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU ms/work: source':>20} {'agent':>7} {'mosq':>7} {'RSS MiB: source':>16} {'agent':>7} {'mosq':>7}")
    for n in ns:
        go = next((r for r in results if r["n"] == n and r["impl"] == "go"), {})
        for r in (x for x in results if x["n"] == n):
            ok = r.get("complete")
            wps = r.get("works_per_sec") if ok else None
            ratio = "-"
            if r["impl"] == "ocm-ce" and ok and go.get("complete"):
                ratio = f"{r['works_per_sec'] / go['works_per_sec']:.1f}x"
            elif r["impl"] == "ocm-ce" and ok and go.get("works_per_sec"):
                # Go did not finish: its works/s (N / the time it was given) is an upper bound.
                ratio = f">{r['works_per_sec'] / go['works_per_sec']:.0f}x"
            cells = [proc(r, p) or {} for p in ("source", "agent", "mosquitto")]
            print(f"{n:>6} {r['impl']:<7} {fmt(wps):>9} {ratio:>7} "
                  f"{fmt(r.get('p50_ms') if ok else None, '.0f'):>8} {fmt(r.get('p99_ms') if ok else None, '.0f'):>8} "
                  f"{fmt(cells[0].get('cpu_ms_per_work'), '.2f'):>20} {fmt(cells[1].get('cpu_ms_per_work'), '.2f'):>7} "
                  f"{fmt(cells[2].get('cpu_ms_per_work'), '.2f'):>7} {fmt(cells[0].get('peak_rss_mb')):>16} "
                  f"{fmt(cells[1].get('peak_rss_mb')):>7} {fmt(cells[2].get('peak_rss_mb')):>7}")
            if r.get("note"):
                bound = f"; below {r['works_per_sec']:.1f} works/s" if r.get("works_per_sec") else ""
                print(f"{'':>6} {'':<7} {r['note']}{bound}")
        raw = next((x for x in raws if x["n"] == n), None)
        if raw and "messages_per_sec" in raw:
            print(f"{n:>6} {'raw':<7} {raw['works_per_sec']:>9.1f}   Mosquitto alone: {raw['messages']} messages "
                  f"(QoS 1, 1 KiB) at {raw['messages_per_sec']:.0f}/s = {MESSAGES_PER_WORK} per work")
        elif raw:
            print(f"{n:>6} {'raw':<7} {raw.get('note')}")
    print("ratio = ocm-ce works/s / Go works/s (>: Go did not finish, N / its time is an upper bound); "
          "CPU over the lifecycle (or the time given); RSS = peak (VmHWM)")


def nice_step(span, count=5):
    """A 1/2/5 x 10^k step that cuts span into about count parts."""
    import math
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)


def label(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def svg_panel(x0, y0, w, h, title, ylabel, series, ns):
    """One chart: series = [(label, colour, dash, [(n, value)])]."""
    vals = [v for s in series for _, v in s[3] if v and v > 0]
    out = [f'<text x="{x0 + w / 2}" y="{y0 - 12}" text-anchor="middle" font-size="14" font-weight="bold">{title}</text>']
    if not vals:
        return out + [f'<text x="{x0 + w / 2}" y="{y0 + h / 2}" text-anchor="middle">no data</text>']
    import math
    lo, hi = min(vals), max(vals)
    log = hi / lo > 20
    if log:
        lo_e, hi_e = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        ty = lambda v: y0 + h - (math.log10(v) - lo_e) / max(hi_e - lo_e, 1) * h
        ticks = [10 ** e for e in range(lo_e, hi_e + 1)]
    else:
        step = nice_step(hi)
        top = math.ceil(hi * 1.05 / step) * step
        ty = lambda v: y0 + h - v / top * h
        ticks = [k * step for k in range(int(round(top / step)) + 1)]
    xs = sorted(ns)
    tx = (lambda n: x0 + w / 2) if len(xs) == 1 else (lambda n: x0 + 30 + (n - xs[0]) / (xs[-1] - xs[0]) * (w - 60))
    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#444"/>')
    for t in ticks:
        y = ty(t)
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{label(t)}</text>')
    for n in xs:
        out.append(f'<text x="{tx(n):.1f}" y="{y0 + h + 16}" text-anchor="middle" font-size="11">{n}</text>')
    out.append(f'<text x="{x0 + w / 2}" y="{y0 + h + 34}" text-anchor="middle" font-size="12">N (works)</text>')
    out.append(f'<text x="{x0 - 48}" y="{y0 + h / 2}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 {x0 - 48} {y0 + h / 2})">{ylabel}{" (log)" if log else ""}</text>')
    shown = 0
    for name, colour, dash, pts, *hollow in series:
        pts = [(n, v) for n, v in pts if v and v > 0]
        fill = "white" if hollow else colour
        if not pts:
            continue
        path = " ".join(f"{tx(n):.1f},{ty(v):.1f}" for n, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
                   f'stroke-dasharray="{dash}"/>')
        for n, v in pts:
            out.append(f'<circle cx="{tx(n):.1f}" cy="{ty(v):.1f}" r="3.5" fill="{fill}" stroke="{colour}"/>')
            out.append(f'<text x="{tx(n) + 6:.1f}" y="{ty(v) - 6:.1f}" font-size="10" fill="{colour}">{label(v)}</text>')
        ly = y0 + h + 56 + shown * 16
        shown += 1
        out.append(f'<line x1="{x0 + 10}" y1="{ly - 4}" x2="{x0 + 30}" y2="{ly - 4}" stroke="{colour}" '
                   f'stroke-width="2" stroke-dasharray="{dash}"/>')
        out.append(f'<text x="{x0 + 36}" y="{ly}" font-size="11">{name}</text>')
    return out


def write_svg(path, results, raws):
    ns = sorted({r["n"] for r in results})

    def pts(impl, f, complete=True):
        return [(r["n"], f(r)) for r in results
                if r["impl"] == impl and bool(r.get("complete")) == complete and r.get("processes")]

    agent_cpu = lambda r: (proc(r, "agent") or {}).get("cpu_ms_per_work")
    left = svg_panel(90, 50, 380, 300, "Lifecycle throughput", "works/s", [
        ("ocm-ce", "#c0392b", "", pts("ocm-ce", lambda r: r["works_per_sec"])),
        ("Go sdk-go v0.15.0", "#2471a3", "", pts("go", lambda r: r["works_per_sec"])),
        ("Go, did not finish: N / time given (upper bound)", "#2471a3", "2,3",
         pts("go", lambda r: r.get("works_per_sec"), False), True),
        ("Mosquitto raw (6 msgs/work)", "#7f8c8d", "5,4",
         [(x["n"], x.get("works_per_sec")) for x in raws if "works_per_sec" in x]),
    ], ns)
    right = svg_panel(590, 50, 380, 300, "Agent CPU per work", "CPU ms per work", [
        ("ocm-ce agent", "#c0392b", "", pts("ocm-ce", agent_cpu)),
        ("Go agent", "#2471a3", "", pts("go", agent_cpu)),
        ("Go agent, did not finish: CPU within the time given", "#2471a3", "2,3",
         pts("go", agent_cpu, False), True),
    ], ns)
    notes = [f"{r['impl']} N={r['n']}: {r['note']}" for r in results if r.get("note")]
    foot = [f'<text x="20" y="{480 + 14 * i}" font-size="11">{t}</text>' for i, t in enumerate(
        ["One cluster, ~1 KiB works; each created, updated once, deleted; rate limits raised; one Mosquitto per run."]
        + notes)]
    height = 490 + 14 * len(notes)
    with open(path, "w") as f:
        f.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="1010" height="{height}" '
                f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n')
        f.write("\n".join(left + right + foot))
        f.write("\n</svg>\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--works", default="1000,5000", help="comma-separated N (works, one cluster)")
    ap.add_argument("--go-timeout", type=float, default=600, help="seconds a Go lifecycle may take")
    ap.add_argument("--timeout", type=float, default=300, help="seconds an ocm-ce lifecycle may take")
    ap.add_argument("--manifest-bytes", type=int, default=1024)
    ap.add_argument("--skip-go", action="store_true", help="only ocm-ce and Mosquitto")
    ap.add_argument("--out", help="directory of results.json and compare.svg (default: a new temporary one)")
    args = ap.parse_args()
    ns = [int(x) for x in args.works.split(",") if x.strip()]
    out = args.out or tempfile.mkdtemp(prefix="ocm-ce-bench-compare-")
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="ocm-ce-bench-compare-work-")
    binary = ocm_binary(work)
    bins = None if args.skip_go else go_binaries(work)
    results, raws = [], []
    for n in ns:
        if bins:
            print(f"Go     N={n} ...", flush=True)
            results.append(run_go(n, bins, work, args.go_timeout, args.manifest_bytes))
            print(f"       {results[-1].get('works_per_sec', 0):.1f} works/s, complete={results[-1].get('complete')}")
        print(f"ocm-ce N={n} ...", flush=True)
        results.append(run_ocm(n, binary, work, args.timeout, args.manifest_bytes))
        print(f"       {results[-1].get('works_per_sec', 0):.1f} works/s, complete={results[-1].get('complete')}")
        print(f"raw    N={n} ...", flush=True)
        raws.append(raw_rate(n, work))
    print_table(results, raws)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"works": ns, "go_timeout_s": args.go_timeout, "manifest_bytes": args.manifest_bytes,
                   "results": results, "mosquitto_raw": raws}, f, indent=2)
    write_svg(os.path.join(out, "compare.svg"), results, raws)
    print(f"\nresults: {os.path.join(out, 'results.json')}\nplot:    {os.path.join(out, 'compare.svg')}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.get("complete") for r in results if r["impl"] == "ocm-ce") else 1


if __name__ == "__main__":
    sys.exit(main())
