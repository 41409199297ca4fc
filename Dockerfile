# syntax=docker/dockerfile:1
# The `ocm-ce` binary (broker, agent, source, quickstart, bench) in a container image:
#   docker build -t ocm-ce:0.1.0 .
# deploy/README.md says how the Kubernetes manifests in deploy/ use it. scripts/deploy-check.sh
# (in CI) checks that the build command below names a real package, binary and features and
# that RUST_VERSION meets the workspace's rust-version; CI does not build the image.

# The Rust release of the build (at least the workspace's rust-version) and the Debian release
# of both stages: the runtime must provide the shared libraries the build linked against.
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# The kafka feature builds librdkafka from its bundled C sources (./configure && make, no
# cmake): it needs a C/C++ toolchain, make, pkg-config and the OpenSSL and zlib headers
# (docs/config-kafka.md). Everything else is Rust (rusqlite builds its bundled SQLite with cc).
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The workspace: manifests, lock file, cargo config (it sets K8S_OPENAPI_ENABLED_VERSION, which
# k8s-openapi needs at build time) and the member crates.
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY crates crates
COPY xtask xtask
COPY examples examples
# The same build as CI's release binary (scripts/test.sh): every transport, Kafka included.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ocm-ce-cli --features kafka \
    && install -D -m 0755 target/release/ocm-ce /out/ocm-ce

FROM debian:${DEBIAN_RELEASE}-slim
# What the binary loads at run time: OpenSSL and zlib (linked dynamically by librdkafka's
# openssl-sys and libz-sys; librdkafka and SQLite are static), and the system CA store (TLS
# clients trust it plus the config's caFile).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 ocm-ce \
    && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin ocm-ce
COPY --from=build /out/ocm-ce /usr/local/bin/ocm-ce
# Numeric, so that Kubernetes' runAsNonRoot can verify it (deploy/ sets the same ids).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ocm-ce"]
CMD ["--help"]
