#!/usr/bin/env bash
# The whole test suite of ocm-ce, as CI runs it (`.ci/run` calls this). On a fresh Debian
# machine it installs what it needs (Mosquitto from apt, Kafka jars from Maven Central, Go
# modules; kube-apiserver and etcd are built from the Go module proxy once per machine, about
# 7-15 minutes, then cached in $HOME/.cache/ocm-ce/kube), starts the brokers and a Kubernetes
# API server on free loopback ports, runs every check, and stops them.
#
#   bash scripts/test.sh            everything
#   OCM_CE_SKIP_LINT=1 bash scripts/test.sh   tests only (local iteration)
#   OCM_CE_SKIP_FUZZ=1 bash scripts/test.sh   without the fuzz smoke run (it needs nightly)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ocm-ce-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CI="${CI:-}"

step() { printf '\n==== %s ====\n' "$*"; }
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started ))s"; }

state="$(mktemp -d -t ocm-ce-test-env.XXXXXX)"
cleanup() { bash scripts/test-env.sh stop "$state" >/dev/null 2>&1 || true; rm -rf "$state"; }
trap cleanup EXIT

# The target dir is kept between runs and grows with every one: its incremental caches hold
# every past state of the workspace crates (32 GB of them once filled the disk mid-run). Below
# 20 GB free they go; that costs a rebuild of the workspace crates, not of the dependencies.
mkdir -p "$CARGO_TARGET_DIR"
free_kb=$(df -Pk "$CARGO_TARGET_DIR" | awk 'NR == 2 { print $4 }')
if [ "${free_kb:-0}" -lt $((20 * 1024 * 1024)) ]; then
    echo "low disk space ($((free_kb / 1024)) MB free): removing the incremental build caches"
    rm -rf "$CARGO_TARGET_DIR"/debug/incremental "$CARGO_TARGET_DIR"/release/incremental
fi

step "toolchain ($(elapsed))"
cargo --version
rustc --version
if ! command -v rustfmt >/dev/null || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi

step "test services: Mosquitto, Kafka and a Kubernetes API server on loopback ($(elapsed))"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
bash scripts/test-env.sh start "$state"
# shellcheck disable=SC1091
source "$state/env"
# The Kubernetes tests (crates/ocm-ce-kube, the gc tests) skip without it; CI must run them.
[ -n "${OCM_CE_TEST_KUBECONFIG:-}" ] || { echo "the test environment has no Kubernetes API server" >&2; exit 1; }

if [ -z "${OCM_CE_SKIP_LINT:-}" ]; then
    step "cargo fmt --check ($(elapsed))"
    cargo fmt --all --check

    step "cargo clippy, all features ($(elapsed))"
    cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

    step "cargo clippy, no default features ($(elapsed))"
    cargo clippy --workspace --all-targets --no-default-features --locked -- -D warnings

    step "per-feature checks ($(elapsed))"
    for f in "" testing mqtt grpc kafka; do
        echo "ocm-ce-client features=[$f]"
        cargo check -p ocm-ce-client --no-default-features --features "$f" --locked
    done
    for f in "" mqtt grpc work broker gc; do
        echo "ocm-ce features=[$f]"
        cargo check -p ocm-ce --no-default-features --features "$f" --locked
    done

    if [ -f xtask/src/main.rs ] && grep -q codegen xtask/src/main.rs; then
        step "generated gRPC code is up to date ($(elapsed))"
        cargo run -q -p xtask --locked -- codegen
        git diff --exit-code -- crates/ocm-ce-proto/src/generated
    fi

    step "forbidden patterns ($(elapsed))"
    if grep -rn --include='*.rs' -E '```ignore|\bdbg!\(' crates xtask; then
        echo "forbidden: ignore doctests or dbg!" >&2
        exit 1
    fi
fi

step "the main job: quickstart ($(elapsed))"
# With the Kafka transport: the interop stage below runs this binary on every transport.
cargo run -q --release --locked -p ocm-ce-cli --features kafka -- quickstart

step "cargo test, all features ($(elapsed))"
# The fault-injection suite (crates/ocm-ce-cli/tests/faults) drives the release binary built
# above: it measures convergence times, which an unoptimised build would distort.
OCM_CE_BIN="$CARGO_TARGET_DIR/release/ocm-ce" cargo test --workspace --all-features --locked 2>&1 | tee "$state/test.log"
passed=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$state/test.log" | awk '{s+=$4} END {print s+0}')
echo "total tests passed: $passed"
[ "$passed" -gt 0 ] || { echo "no test ran" >&2; exit 1; }

step "deployment files: deploy/ dry-run on the test API server, the Dockerfile against the workspace ($(elapsed))"
# Reuses the API server started above (OCM_CE_TEST_KUBECONFIG) and the release binary.
OCM_CE_BIN="$CARGO_TARGET_DIR/release/ocm-ce" bash scripts/deploy-check.sh

step "interoperability with the Go SDK: sdk-go v0.15.0 and v1.3.0 against ocm-ce ($(elapsed))"
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "the Go toolchain is required for the interop stage" >&2; exit 1; }
OCM_CE_BIN="$CARGO_TARGET_DIR/release/ocm-ce" python3 interop/run.py

step "the newcomer's Kubernetes demo: scripts/kube-demo.sh ($(elapsed))"
OCM_CE_BIN="$CARGO_TARGET_DIR/release/ocm-ce" bash scripts/kube-demo.sh

if [ -z "${OCM_CE_SKIP_FUZZ:-}" ]; then
    step "fuzz targets: build, 15 s each from the committed corpus ($(elapsed))"
    # Installs nightly and cargo-fuzz when missing; fails on any crash, panic or timeout.
    bash scripts/fuzz.sh 15
fi

if [ -z "${OCM_CE_SKIP_LINT:-}" ]; then
    step "cargo doc ($(elapsed))"
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked
fi

step "done in $(elapsed)"
