#!/usr/bin/env bash
# Checks the deployment files: deploy/ (Kubernetes manifests) and the Dockerfile. scripts/test.sh
# runs it after the cargo tests; it also runs on its own:
#
#   bash scripts/deploy-check.sh
#
# 1. Dockerfile: the package, binary and features of its `cargo build` exist in the workspace,
#    its RUST_VERSION meets the workspace's rust-version, and it copies every workspace member
#    (cargo metadata; nothing is built, CI builds no image).
# 2. deploy/: every YAML file is reached by the dry-run below: listed in its directory's
#    kustomization.yaml (as a resource or a generator's file), or a standalone
#    `*.example.yaml` (the placeholder Secrets, kept out of the kustomizations on purpose).
# 3. deploy/: every kustomization directory (`kubectl apply -k`) and every `*.example.yaml`
#    (`-f`) goes through `kubectl apply --dry-run=server --validate=strict` against a real
#    kube-apiserver: the server's admission (schema, unknown fields, RBAC, Pod Security
#    "restricted" of the namespace) sees every object. A rejection fails, and so does any
#    warning (Pod Security violations of a Deployment's pod template are only warnings), except
#    "no PEM data" for the placeholder certificate of an example Secret.
#    The namespace must exist for the namespaced objects: it is created for real first.
# 4. With OCM_CE_BIN (an ocm-ce binary; scripts/test.sh passes its release build), the files
#    in use: the agent's transport config passes `ocm-ce config check`; a broker starts with
#    TLS, the policy of deploy/broker and the tokens of its example Secret, and serves GET
#    /metrics, /healthz and /readyz (the paths of its probes); an agent with that transport config (pointed at this
#    broker) and a token of deploy/agent's ServiceAccount, bound to the ocm-ce-agent role plus
#    only what the test work needs instead of the everything-role, applies a work with a CRD
#    and a ConfigMap from a source, finds its record after a restart, and deletes it. This
#    applies deploy/agent for real to the API server (its Deployment stays inert: the test
#    API server runs no controllers).
#
# API server: the one of OCM_CE_TEST_KUBECONFIG (scripts/test.sh has started it), else one
# started here with `scripts/test-env.sh start DIR --no-kafka --no-mqtt` and stopped on exit.
# kubectl: $OCM_CE_KUBECTL, else the one of the API server's version that `scripts/test-env.sh
# kubectl-build` builds once from the Go module proxy (cached in $HOME/.cache/ocm-ce/kube).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf '[deploy-check] %s\n' "$*" >&2; }
fail() {
    printf '[deploy-check] FAILED: %s\n' "$*" >&2
    exit 1
}

tmp="$(mktemp -d -t ocm-ce-deploy-check.XXXXXX)"
env_dir=""
broker_pid=""
agent_pid=""
cleanup() {
    local p
    for p in "$agent_pid" "$broker_pid"; do
        if [[ -n "$p" ]]; then kill "$p" 2>/dev/null || true; fi
    done
    if [[ -n "$env_dir" ]]; then bash scripts/test-env.sh stop "$env_dir" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# ---------------------------------------------------------------- 1. Dockerfile

check_dockerfile() {
    cargo metadata --no-deps --locked --format-version 1 >"$tmp/metadata.json"
    python3 - "$tmp/metadata.json" Dockerfile <<'EOF'
import json, os, re, shlex, sys

meta = json.load(open(sys.argv[1]))
text = open(sys.argv[2]).read()
errors = []

# The build command: `cargo build ... -p PKG --features F[,G]`, and where it takes the binary.
m = re.search(r"cargo build ([^&\\\n]*)", text)
if not m:
    sys.exit("the Dockerfile has no `cargo build` command")
args = shlex.split(m.group(1))
def values(*names):
    out = []
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                out.append(args[i + 1])
            elif a.startswith(n + "="):
                out.append(a[len(n) + 1:])
    return out
pkgs = values("-p", "--package")
if len(pkgs) != 1:
    sys.exit(f"the Dockerfile's cargo build names {len(pkgs)} packages (-p), expected one")
features = [f for v in values("-F", "--features") for f in re.split(r"[ ,]+", v) if f]
members = {p["name"]: p for p in meta["packages"] if p["id"] in meta["workspace_members"]}
pkg = members.get(pkgs[0])
if pkg is None:
    errors.append(f"package {pkgs[0]} is not a workspace member ({', '.join(sorted(members))})")
else:
    for f in features:
        if f not in pkg["features"]:
            errors.append(f"package {pkg['name']} has no feature {f!r} (it has: {', '.join(sorted(pkg['features'])) or 'none'})")
    bins = {t["name"] for t in pkg["targets"] if "bin" in t["kind"]}
    for b in re.findall(r"target/release/([A-Za-z0-9_.-]+)", text):
        if b not in bins:
            errors.append(f"the Dockerfile copies target/release/{b}, but {pkg['name']} builds {', '.join(sorted(bins))}")
    # The Rust image must be at least the workspace's rust-version.
    want = pkg.get("rust_version")
    rv = re.search(r"^ARG RUST_VERSION=(\S+)", text, re.M)
    if want and rv:
        key = lambda v: tuple(int(x) for x in v.split("."))
        have = rv.group(1)
        if key(have)[: len(key(want))] < key(want)[: len(key(have))]:
            errors.append(f"RUST_VERSION {have} is older than the workspace's rust-version {want}")
    elif want:
        errors.append("the Dockerfile has no `ARG RUST_VERSION=`")

# Every workspace member must be inside what the build stage copies.
root = meta["workspace_root"]
copied = [src for line in re.findall(r"^COPY (?!--from)(.*)$", text, re.M)
          for src in shlex.split(line)[:-1]]
for name, p in sorted(members.items()):
    rel = os.path.relpath(os.path.dirname(p["manifest_path"]), root)
    if not any(rel == c.rstrip("/") or rel.startswith(c.rstrip("/") + "/") for c in copied):
        errors.append(f"workspace member {name} ({rel}) is not copied by the Dockerfile (COPY {' '.join(copied)})")
for needed in ("Cargo.toml", "Cargo.lock", ".cargo"):
    if needed not in copied:
        errors.append(f"the Dockerfile does not copy {needed}")

if errors:
    sys.exit("\n".join(errors))
print(f"Dockerfile: cargo build -p {pkg['name']} --features {','.join(features) or '(none)'}; "
      f"RUST_VERSION {rv.group(1)} >= rust-version {want}; {len(members)} workspace members copied")
EOF
}

log "Dockerfile against the workspace"
check_dockerfile || fail "the Dockerfile does not match the workspace"

# ---------------------------------------------------------------- 2. coverage

kustomize_dirs=()
standalone=()
while IFS= read -r f; do
    dir="$(dirname "$f")"
    base="$(basename "$f")"
    case "$base" in
    kustomization.yaml) kustomize_dirs+=("$dir") ;;
    *.example.yaml) standalone+=("$f") ;;
    *)
        [[ -f "$dir/kustomization.yaml" ]] || fail "$f: its directory has no kustomization.yaml, so nothing applies it"
        grep -Eq "^[[:space:]]*-[[:space:]]+${base//./\\.}([[:space:]]|$)" "$dir/kustomization.yaml" ||
            fail "$f is not listed in $dir/kustomization.yaml (nor named *.example.yaml), so nothing applies it"
        ;;
    esac
done < <(find deploy -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
((${#kustomize_dirs[@]} > 0)) || fail "no kustomization.yaml under deploy/"
log "deploy/: ${#kustomize_dirs[@]} kustomizations (${kustomize_dirs[*]}), ${#standalone[@]} standalone files (${standalone[*]})"

# ---------------------------------------------------------------- 3. server-side dry-run

# kubectl of the API server's version (a kubectl on PATH may be any version; kubectl supports
# one minor version of skew).
kubectl="${OCM_CE_KUBECTL:-}"
if [[ -z "$kubectl" ]]; then
    kubectl="$(bash scripts/test-env.sh kubectl-build)" || fail "building kubectl failed"
fi

if [[ -z "${OCM_CE_TEST_KUBECONFIG:-}" ]]; then
    env_dir="$tmp/env"
    log "starting a Kubernetes API server (scripts/test-env.sh, Kubernetes only)"
    bash scripts/test-env.sh start "$env_dir" --no-kafka --no-mqtt
    # shellcheck disable=SC1091
    source "$env_dir/env"
fi
[[ -n "${OCM_CE_TEST_KUBECONFIG:-}" ]] || fail "no Kubernetes API server (OCM_CE_TEST_KUBECONFIG)"
k() { "$kubectl" --kubeconfig "$OCM_CE_TEST_KUBECONFIG" "$@"; }
k version -o json >"$tmp/version.json" || fail "no answer from the API server of $OCM_CE_TEST_KUBECONFIG"
log "$(python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
print("kubectl", v["clientVersion"]["gitVersion"] + ", kube-apiserver", v["serverVersion"]["gitVersion"])' "$tmp/version.json")"

# dry_run TOLERATED ARGS...: `kubectl apply --dry-run=server ARGS`; fails on an error or on a
# warning, except warnings matching the extended regex TOLERATED (empty: none).
dry_run() {
    local tolerated="$1" rc=0
    shift
    k apply --dry-run=server --validate=strict "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
    sed 's/^/    /' "$tmp/out"
    sed 's/^/    /' "$tmp/err" >&2
    ((rc == 0)) || fail "the API server rejected: kubectl apply --dry-run=server $*"
    local warnings
    warnings="$(grep '^Warning:' "$tmp/err" || true)"
    if [[ -n "$tolerated" && -n "$warnings" ]]; then
        warnings="$(grep -Ev "$tolerated" <<<"$warnings" || true)"
    fi
    [[ -z "$warnings" ]] || fail "the API server warned about: kubectl apply --dry-run=server $*"
}

# The namespace, for real: namespaced objects cannot be dry-run into a namespace that does not
# exist. (deploy/namespace is one of the kustomizations, so it is dry-run below as well.)
[[ -f deploy/namespace/kustomization.yaml ]] || fail "deploy/namespace/kustomization.yaml is missing"
k apply -k deploy/namespace >/dev/null || fail "creating the namespace of deploy/namespace failed"

for d in "${kustomize_dirs[@]}"; do
    log "dry-run: kubectl apply -k $d"
    dry_run "" -k "$d"
done
# The example Secrets hold placeholder text where a certificate and key belong, which the API
# server points out for kubernetes.io/tls Secrets; that warning is expected there, no other.
for f in "${standalone[@]}"; do
    log "dry-run: kubectl apply -f $f"
    dry_run '^Warning: tls: failed to find any PEM data in (certificate|key) input$' -f "$f"
done

# ---------------------------------------------------------------- 4. a work through them

# wait_log FILE REGEX PID: waits up to 10 s for a match of the extended REGEX in the log FILE of
# the process PID, and prints it; prints the log and fails when none comes.
wait_log() {
    local found=""
    for _ in $(seq 100); do
        found="$(grep -Eo "$2" "$1" | head -n 1 || true)"
        [[ -n "$found" ]] && break
        kill -0 "$3" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n "$found" ]] || { sed 's/^/    /' "$1" >&2; return 1; }
    printf '%s\n' "$found"
}

# stop_process PID: SIGTERM (a graceful stop), then waits for it.
stop_process() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# agent_start: starts the agent of cluster1 with the ServiceAccount's kubeconfig (sets
# agent_pid; call it without a subshell) and leaves its "N works recorded" count in $recorded.
agent_start() {
    # The endpoints of deploy/agent's probes, on a free port here.
    "$OCM_CE_BIN" agent --transport grpc --config "$tmp/agent-grpc.yaml" --cluster cluster1 \
        --kubeconfig "$tmp/sa.kubeconfig" --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 \
        2>"$tmp/agent.log" &
    agent_pid=$!
    recorded="$(wait_log "$tmp/agent.log" '\(([0-9]+) works? recorded' "$agent_pid")" ||
        fail "the agent did not start with the ServiceAccount of deploy/agent"
    recorded="$(grep -Eo '[0-9]+' <<<"$recorded")"
}

# source_cmd ARGS...: `ocm-ce source` as source1 with the hub's token.
source_cmd() {
    "$OCM_CE_BIN" source --transport grpc --config "$tmp/source-grpc.yaml" --source source1 \
        --state-dir "$tmp/source-state" "$@"
}

# token_of IDENTITY: its token in the example tokens file.
token_of() {
    python3 -c 'import re, sys
text = open(sys.argv[1]).read()
print(dict((i, t) for t, i in re.findall(r"token: (\S+)\s+identity: (\S+)", text))[sys.argv[2]])' \
        "$tmp/tokens.yaml" "$1" ||
        fail "no token for $1 in the Secret ocm-ce-broker-tokens of deploy/broker/secrets.example.yaml"
}

if [[ -n "${OCM_CE_BIN:-}" ]]; then
    log "ocm-ce config check: deploy/agent/grpc.yaml"
    "$OCM_CE_BIN" config check --transport grpc deploy/agent/grpc.yaml ||
        fail "ocm-ce rejects deploy/agent/grpc.yaml"

    # A CA and a broker certificate for localhost, and the example tokens.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=test-ca \
        -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null &&
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
            -keyout "$tmp/tls.key" -out "$tmp/tls.csr" 2>/dev/null &&
        openssl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
            -days 1 -extfile <(printf 'subjectAltName=DNS:localhost\n') -out "$tmp/tls.crt" 2>/dev/null ||
        fail "openssl could not make the test certificates"
    # (The jsonpath is applied to each Secret of the file; only the tokens Secret has the key.)
    k create --dry-run=client --validate=false -f deploy/broker/secrets.example.yaml \
        -o jsonpath='{.stringData.tokens\.yaml}' >"$tmp/tokens.yaml"
    token_of cluster1-agent >"$tmp/agent.token"
    token_of hub-controller >"$tmp/source.token"

    log "ocm-ce broker with TLS, deploy/broker/policy.yaml and the example tokens"
    "$OCM_CE_BIN" broker --listen 127.0.0.1:0 --tls-cert "$tmp/tls.crt" --tls-key "$tmp/tls.key" \
        --tokens "$tmp/tokens.yaml" --authz deploy/broker/policy.yaml --metrics-listen 127.0.0.1:0 \
        2>"$tmp/broker.log" &
    broker_pid=$!
    metrics="$(wait_log "$tmp/broker.log" 'http://[0-9.:]+/metrics' "$broker_pid")" ||
        fail "the broker did not start with deploy/broker/policy.yaml"
    port="$(wait_log "$tmp/broker.log" 'listening on [0-9.]+:[0-9]+' "$broker_pid")" ||
        fail "the broker did not say its port"
    port="${port##*:}"
    for path in /metrics /healthz /readyz; do
        curl -fsS -o /dev/null "${metrics%/metrics}$path" || fail "the broker's endpoint ${metrics%/metrics}$path does not answer"
    done

    # deploy/agent/grpc.yaml pointed at this broker and these files; the source's is the same
    # with the hub's token.
    sed -e "s|^url: .*|url: localhost:$port|" -e "s|^caFile: .*|caFile: $tmp/ca.pem|" \
        -e "s|^tokenFile: .*|tokenFile: $tmp/agent.token|" deploy/agent/grpc.yaml >"$tmp/agent-grpc.yaml"
    sed -e "s|agent\.token|source.token|" "$tmp/agent-grpc.yaml" >"$tmp/source-grpc.yaml"

    # The agent's ServiceAccount and RBAC for real, with the everything-role replaced by what the
    # test work needs: the ocm-ce-agent role must cover what the agent itself does.
    log "a work with a CRD and a ConfigMap, from a source through the broker to the agent with the RBAC of deploy/agent"
    k apply -k deploy/agent >/dev/null || fail "kubectl apply -k deploy/agent failed"
    k delete clusterrolebinding ocm-ce-agent:execution >/dev/null
    k apply -f - >/dev/null <<'RBAC'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: ocm-ce-deploy-check-execution
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, create, update, patch, delete]
  - apiGroups: [apiextensions.k8s.io]
    resources: [customresourcedefinitions]
    verbs: [create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ocm-ce-deploy-check-execution
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ocm-ce-deploy-check-execution}
subjects: [{kind: ServiceAccount, name: ocm-ce-agent, namespace: ocm-ce}]
RBAC
    k config view --raw --minify >"$tmp/sa.kubeconfig"
    user="$("$kubectl" --kubeconfig "$tmp/sa.kubeconfig" config view -o jsonpath='{.users[0].name}')"
    "$kubectl" --kubeconfig "$tmp/sa.kubeconfig" config set-credentials "$user" \
        --token="$(k -n ocm-ce create token ocm-ce-agent --duration=10m)" >/dev/null
    cat >"$tmp/work.yaml" <<'WORK'
apiVersion: work.open-cluster-management.io/v1
kind: ManifestWork
metadata:
  name: deploy-check
  namespace: cluster1
spec:
  workload:
    manifests:
      - apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: deploychecks.example.com
        spec:
          group: example.com
          names: {kind: DeployCheck, plural: deploychecks, singular: deploycheck, listKind: DeployCheckList}
          scope: Namespaced
          versions:
            - name: v1
              served: true
              storage: true
              schema:
                openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
      - apiVersion: v1
        kind: ConfigMap
        metadata:
          name: ocm-ce-deploy-check
          namespace: default
        data:
          greeting: hello
WORK
    agent_start
    source_cmd apply -f "$tmp/work.yaml" --wait --timeout 60s >"$tmp/apply.out" ||
        { sed 's/^/    /' "$tmp/agent.log" >&2; fail "the work was not applied"; }
    k -n default get configmap ocm-ce-deploy-check >/dev/null || fail "the work's ConfigMap is missing"
    endpoints="$(wait_log "$tmp/agent.log" 'http://[0-9.:]+' "$agent_pid")" ||
        fail "the agent did not serve the endpoints of its probes"
    for path in /healthz /readyz /metrics; do
        curl -fsS -o /dev/null "$endpoints$path" || fail "the agent's endpoint $endpoints$path does not answer"
    done
    # Restarted, the agent rebuilds its works from the AppliedManifestWork records.
    stop_process "$agent_pid"
    agent_start
    [[ "$recorded" == 1 ]] || fail "the restarted agent found $recorded recorded works, expected 1"
    source_cmd delete deploy-check -n cluster1 --wait --timeout 60s >/dev/null ||
        { sed 's/^/    /' "$tmp/agent.log" >&2; fail "the work was not deleted"; }
    [[ -z "$(k -n default get configmap ocm-ce-deploy-check --ignore-not-found -o name)" ]] ||
        fail "the work's ConfigMap is still there after the work's deletion"
    stop_process "$agent_pid"
    agent_pid=""
    stop_process "$broker_pid"
    broker_pid=""
    # Back to the RBAC of deploy/agent.
    k delete clusterrolebinding,clusterrole ocm-ce-deploy-check-execution >/dev/null
    k apply -k deploy/agent >/dev/null
    log "applied, recorded across a restart, deleted: the agent's RBAC, the policy and the tokens hold"
else
    log "OCM_CE_BIN not set: the files were not tried with ocm-ce"
fi

log "ok"
