#!/usr/bin/env bash
# Builds the cargo-fuzz targets of fuzz/ and runs each one for a short time from its committed
# corpus; a crash, a panic, a timeout or an out-of-memory in any target fails the script. The CI
# entry (scripts/test.sh) runs it; see fuzz/README.md for longer campaigns.
#
#   bash scripts/fuzz.sh                 every target, 15 s each
#   bash scripts/fuzz.sh 60 mqtt_message one target, 60 s
#
# Installs what is missing: the nightly toolchain (rustup, minimal profile) and cargo-fuzz
# (crates.io, --locked). Builds go to $OCM_CE_FUZZ_TARGET_DIR (default
# $HOME/.cache/ocm-ce-target-fuzz), kept between runs. The corpus is only read: what a short
# run finds is written to a scratch directory and dropped.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-15}"
shift || true
target_dir="${OCM_CE_FUZZ_TARGET_DIR:-$HOME/.cache/ocm-ce-target-fuzz}"
cargo_fuzz_version=0.13.2

if ! cargo +nightly --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
    cargo install --locked cargo-fuzz --version "$cargo_fuzz_version"
fi
cargo +nightly --version
cargo fuzz --version

cd "$root/fuzz"
# The main workspace's CARGO_TARGET_DIR would mix sanitizer builds into its cache.
unset CARGO_TARGET_DIR
cargo +nightly fuzz build --target-dir "$target_dir"
# cargo-fuzz has no --locked. When a product crate gained or lost a dependency, the build
# adds it to fuzz/Cargo.lock (every version already pinned stays): say so, so it gets committed.
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1 && ! git -C "$root" diff --quiet -- fuzz/Cargo.lock; then
    git -C "$root" diff --stat -- fuzz/Cargo.lock >&2
    echo "note: the build updated fuzz/Cargo.lock (a product crate's dependencies changed): commit it" >&2
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
scratch="$(mktemp -d -t ocm-ce-fuzz.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "corpus/$t"
    start=$(date +%s)
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a decoder must not balloon.
    if ! cargo +nightly fuzz run --target-dir "$target_dir" "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$scratch/" \
        -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
        tail -n 60 "$scratch/$t.log" >&2
        echo "fuzz target $t failed; the input is in the log above (base64 / artifact)" >&2
        for a in "$scratch"/crash-* "$scratch"/timeout-* "$scratch"/oom-* "$scratch"/leak-*; do
            [ -f "$a" ] && { echo "artifact $a (base64):" >&2; base64 -w0 "$a" >&2; echo >&2; }
        done
        exit 1
    fi
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$scratch/$t.log" | grep -Eo '[0-9]+$' || echo '?')
    echo "fuzz $t: $runs executions in $(( $(date +%s) - start ))s, no crash"
done
