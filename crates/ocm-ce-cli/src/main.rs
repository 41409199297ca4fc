//! `ocm-ce`: run the whole system in one command (`quickstart`), or each part for real:
//! the gRPC `broker`, a long-running `agent`, a `hub` serving the ManifestWorks of a Kubernetes
//! API server, a `source` that applies, lists and deletes
//! ManifestWorks, and `bench`. Transport configs are the Go SDK's YAML files, unchanged.

mod applier;
mod bench;
mod cli;
mod commands;
mod hub;
mod kube_agent;
mod lifecycle;
mod ops;
mod state;
mod sync;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: a work's lifecycle allocates many small,
/// short-lived buffers (events, JSON, manifests); `bench` spent about a quarter of its CPU time
/// in glibc's malloc and free. Built without transparent huge pages (`no_thp`): with them its
/// arenas were backed by 2 MiB pages, which half again the peak RSS of every process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(cli.verbose, cli.command.default_log_level());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The command runs as a task of the runtime, not on the main thread beside it: its hand-offs
    // to the client tasks (watch events, outbox, publishes) then stay among the worker threads
    // instead of waking the main thread each time (measured: ~10 % less CPU per work for a
    // source in `bench --processes`).
    let command = runtime.block_on(async {
        tokio::spawn(commands::run(cli))
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the command failed: {e}")))
    });
    match command {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
