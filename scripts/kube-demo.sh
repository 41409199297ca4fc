#!/usr/bin/env bash
# The whole path on a real Kubernetes API server, in one command:
#
#   hub API --> ocm-ce hub --> ocm-ce broker --> ocm-ce agent --> managed-cluster API
#
# Starts a kube-apiserver + etcd on loopback (scripts/test-env.sh kube-start: built once from
# the Go module proxy, about 7 minutes the first time, cached under ~/.cache/ocm-ce), which
# plays both the hub and the managed cluster `cluster1`, then an ocm-ce broker, `ocm-ce hub`
# and `ocm-ce agent --kubeconfig`. It creates a ManifestWork in the hub API (plain HTTP
# requests, as any Kubernetes client would), shows the ConfigMap the agent applied and the
# status the hub wrote back into the ManifestWork, updates the work, deletes it, and stops
# everything it started.
#
#   bash scripts/kube-demo.sh            (OCM_CE_BIN=path/to/ocm-ce to skip the cargo build)
#   KEEP=1 bash scripts/kube-demo.sh     leaves the processes running (stop: the printed command)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TIMEOUT="${DEMO_TIMEOUT:-60}"
STATE="$(mktemp -d "${TMPDIR:-/tmp}/ocm-ce-kube-demo.XXXXXX")"
PIDS=()

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'kube-demo: %s\n' "$*" >&2; exit 1; }

cleanup() {
    local code=$?
    if [[ "${KEEP:-}" == 1 && $code == 0 ]]; then
        printf '\nleft running; stop with: kill %s; bash %s kube-stop %s\n' "${PIDS[*]}" "$ROOT/scripts/test-env.sh" "$STATE"
        return
    fi
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    bash "$ROOT/scripts/test-env.sh" kube-stop "$STATE" >/dev/null 2>&1 || true
    if [[ $code != 0 ]]; then
        for f in "$STATE"/*.log; do
            [[ -f "$f" ]] && { printf '\n--- %s (tail)\n' "$(basename "$f")"; tail -n 20 "$f"; }
        done
    fi
    rm -rf "$STATE"
}
trap cleanup EXIT

if [[ -z "${OCM_CE_BIN:-}" ]]; then
    say "building ocm-ce (cargo build --release -p ocm-ce-cli)"
    (cd "$ROOT" && cargo build --release -p ocm-ce-cli)
    OCM_CE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/ocm-ce"
fi
[[ -x "$OCM_CE_BIN" ]] || die "no ocm-ce binary at $OCM_CE_BIN"

say "starting a Kubernetes API server (the hub and the managed cluster)"
bash "$ROOT/scripts/test-env.sh" kube-start "$STATE"
KUBECONFIG_FILE="$STATE/kube/kubeconfig-admin"
SERVER="$(sed -n 's/^ *server: //p' "$KUBECONFIG_FILE")"
TOKEN="$(cat "$STATE/kube/token-admin")"

# api METHOD PATH [BODY [CONTENT-TYPE]]: one request to the API server; prints the body.
api() {
    local args=(-sS --max-time 20 --cacert "$STATE/certs/ca.pem" -H "Authorization: Bearer $TOKEN" -X "$1")
    [[ $# -ge 3 ]] && args+=(-H "Content-Type: ${4:-application/json}" --data "$3")
    curl "${args[@]}" "$SERVER$2"
}

# until_ok WHAT COMMAND...: retries COMMAND until it succeeds, at most $TIMEOUT seconds.
until_ok() {
    local what="$1" deadline=$((SECONDS + TIMEOUT))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out waiting for $what"
        sleep 0.2
    done
}

# json EXPRESSION: evaluates a Python expression on the JSON document of stdin (`d`).
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

for ns in cluster1 demo; do
    api POST /api/v1/namespaces "{\"metadata\":{\"name\":\"$ns\"}}" >/dev/null
done

say "starting ocm-ce broker, ocm-ce hub and ocm-ce agent --kubeconfig"
"$OCM_CE_BIN" broker --listen 127.0.0.1:0 --insecure 2>"$STATE/broker.log" &
PIDS+=($!)
until_ok "the broker" grep -q 'listening on' "$STATE/broker.log"
BROKER="$(grep -o '127\.0\.0\.1:[0-9]*' "$STATE/broker.log" | head -n 1)"
echo "url: $BROKER" >"$STATE/grpc.yaml"
RUST_LOG=info "$OCM_CE_BIN" hub --transport grpc --config "$STATE/grpc.yaml" --source hub1 \
    --kubeconfig "$KUBECONFIG_FILE" 2>"$STATE/hub.log" &
PIDS+=($!)
"$OCM_CE_BIN" agent --transport grpc --config "$STATE/grpc.yaml" --cluster cluster1 \
    --kubeconfig "$KUBECONFIG_FILE" 2>"$STATE/agent.log" &
PIDS+=($!)
until_ok "the hub's subscription" grep -q 'subscription confirmed' "$STATE/hub.log"
echo "broker $BROKER; hub and agent talk to the API server at $SERVER"

WORKS=/apis/work.open-cluster-management.io/v1/namespaces/cluster1/manifestworks
CM=/api/v1/namespaces/demo/configmaps/greeting
work() {
    cat <<EOF
{"apiVersion": "work.open-cluster-management.io/v1", "kind": "ManifestWork",
 "metadata": {"name": "demo-work", "namespace": "cluster1"},
 "spec": {"workload": {"manifests": [
   {"apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "greeting", "namespace": "demo"}, "data": {"message": "$1"}}]}}}
EOF
}
cm_says() { [[ "$(api GET "$CM" | json 'd.get("data", {}).get("message")')" == "$1" ]]; }
applied_at() {
    [[ "$(api GET "$WORKS/demo-work" | json '[c.get("observedGeneration") for c in d.get("status", {}).get("conditions", []) if c["type"] == "Applied" and c["status"] == "True"]')" == "[$1]" ]]
}

say "creating ManifestWork cluster1/demo-work in the hub API"
api POST "$WORKS" "$(work hello)" | json '"created, generation %s" % d["metadata"]["generation"]'
until_ok "the ConfigMap on the managed cluster" cm_says hello
until_ok "Applied on the hub object" applied_at 1
echo "managed cluster: ConfigMap demo/greeting"
api GET "$CM" | json '"  data %s, written by %s" % (d["data"], sorted({f["manager"] for f in d["metadata"]["managedFields"]}))'
echo "hub: ManifestWork cluster1/demo-work"
api GET "$WORKS/demo-work" | json '"  finalizers %s\n" % d["metadata"]["finalizers"] + "\n".join("  %-9s %-5s generation %s  %s" % (c["type"], c["status"], c.get("observedGeneration"), c["message"]) for c in d["status"]["conditions"])'

say "updating the work (generation 2)"
api PATCH "$WORKS/demo-work" '{"spec":{"workload":{"manifests":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"greeting","namespace":"demo"},"data":{"message":"bonjour"}}]}}}' \
    application/merge-patch+json >/dev/null
until_ok "the updated ConfigMap" cm_says bonjour
until_ok "Applied at generation 2 on the hub object" applied_at 2
api GET "$CM" | json '"managed cluster: ConfigMap demo/greeting data %s" % d["data"]'

say "deleting the work"
api DELETE "$WORKS/demo-work" >/dev/null
gone() { [[ "$(api GET "$1" | json 'd.get("code")')" == 404 ]]; }
until_ok "the ConfigMap deleted" gone "$CM"
echo "managed cluster: ConfigMap demo/greeting deleted"
until_ok "the ManifestWork gone" gone "$WORKS/demo-work"
echo "hub: ManifestWork cluster1/demo-work gone (the agent acknowledged the deletion, the hub removed its finalizer)"

say "hub log"
sed -e 's/\x1b\[[0-9;]*m//g' "$STATE/hub.log" | grep -E 'serving|created|updated|deleting|finalizer' || true
say "done"
