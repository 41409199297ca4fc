//! Runnable examples of **ocm-ce**; see `README.md`. The programs are the `[[example]]`s of this
//! crate (`cargo run -p ocm-ce-examples --example NAME`); this library only holds what they share.

use std::net::SocketAddr;
use std::time::Duration;

use ocm_ce::broker::{Broker, BrokerHandle};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A broker serving plaintext gRPC on a free loopback port, in this process.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// The address it listens on; a gRPC config's `url`.
    pub addr: SocketAddr,
    handle: BrokerHandle,
    task: JoinHandle<ocm_ce::broker::Result<()>>,
}

impl EmbeddedBroker {
    /// Builds an insecure broker (loopback only: no TLS, no authentication) and serves it on
    /// `127.0.0.1:0`.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let broker = Broker::builder().insecure(true).build()?;
        let handle = broker.handle();
        let task = tokio::spawn(broker.serve(listener));
        Ok(Self { addr, handle, task })
    }

    /// How many subscriptions (sources and agents) the broker serves now.
    pub fn subscriber_count(&self) -> usize {
        self.handle.subscriber_count()
    }

    /// Shuts the broker down and waits (at most five seconds) until it stopped.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.handle.shutdown();
        tokio::time::timeout(Duration::from_secs(5), self.task).await???;
        Ok(())
    }
}

/// Waits until `check` holds, polling every 10 ms, for at most `timeout`.
pub async fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}
