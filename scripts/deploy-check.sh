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
# 4. With OCM_CE_BIN (an ocm-ce binary; scripts/test.sh passes its release build): the agent's
#    transport config passes `ocm-ce config check`, and the broker starts with the policy of
#    deploy/broker and the tokens of the example Secret and serves GET /metrics (the path of
#    its probes).
#
# API server: the one of OCM_CE_TEST_KUBECONFIG (scripts/test.sh has started it), else one
# started here with `scripts/test-env.sh start DIR --no-kafka --no-mqtt` and stopped on exit.
# kubectl: $OCM_CE_KUBECTL, else `kubectl` on PATH, else the one `scripts/test-env.sh
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
cleanup() {
    if [[ -n "$broker_pid" ]]; then kill "$broker_pid" 2>/dev/null || true; fi
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

if [[ -n "${OCM_CE_KUBECTL:-}" ]]; then
    kubectl="$OCM_CE_KUBECTL"
elif command -v kubectl >/dev/null 2>&1; then
    kubectl="$(command -v kubectl)"
else
    log "no kubectl on PATH: building one (once per machine)"
    kubectl="$(bash scripts/test-env.sh kubectl-build)"
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

# ---------------------------------------------------------------- 4. the files the binary reads

if [[ -n "${OCM_CE_BIN:-}" ]]; then
    log "ocm-ce config check: deploy/agent/grpc.yaml"
    "$OCM_CE_BIN" config check --transport grpc deploy/agent/grpc.yaml ||
        fail "ocm-ce rejects deploy/agent/grpc.yaml"

    log "ocm-ce broker with deploy/broker/policy.yaml and the tokens of deploy/broker/secrets.example.yaml"
    # (The jsonpath is applied to each Secret of the file; only the tokens Secret has the key.)
    k create --dry-run=client --validate=false -f deploy/broker/secrets.example.yaml \
        -o jsonpath='{.stringData.tokens\.yaml}' >"$tmp/tokens.yaml"
    [[ -s "$tmp/tokens.yaml" ]] || fail "no tokens.yaml in the Secrets of deploy/broker/secrets.example.yaml"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null ||
        fail "openssl could not make a test certificate"
    "$OCM_CE_BIN" broker --listen 127.0.0.1:0 --tls-cert "$tmp/tls.crt" --tls-key "$tmp/tls.key" \
        --tokens "$tmp/tokens.yaml" --authz deploy/broker/policy.yaml --metrics-listen 127.0.0.1:0 \
        2>"$tmp/broker.log" &
    broker_pid=$!
    metrics=""
    for _ in $(seq 100); do
        metrics="$(grep -o 'http://[0-9.:]*/metrics' "$tmp/broker.log" || true)"
        [[ -n "$metrics" ]] && break
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n "$metrics" ]] || { cat "$tmp/broker.log" >&2; fail "the broker did not start with deploy/broker/policy.yaml"; }
    curl -fsS -o /dev/null "$metrics" || fail "the broker's probe endpoint $metrics does not answer"
    kill -TERM "$broker_pid"
    wait "$broker_pid" || fail "the broker did not stop cleanly on SIGTERM"
    broker_pid=""
    log "the broker started with them and answered GET /metrics"
else
    log "OCM_CE_BIN not set: the config files were not loaded by ocm-ce"
fi

log "ok"
