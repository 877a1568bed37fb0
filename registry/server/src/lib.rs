//! The Muster registry server: a Raft-replicated, MVCC-versioned keyspace
//! with an HTTP API, watches and leases.

mod config;
mod dispatch;
mod http;
mod identity;
mod metrics;
mod raft;
mod store;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use config::Config;

/// Runs a node until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = async {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    };
    run_until(config, shutdown).await
}

/// Runs a node until `shutdown` completes.
pub async fn run_until(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client_listener = TcpListener::bind(config.listen_client)
        .await
        .with_context(|| format!("binding the client port {}", config.listen_client))?;
    let peer_listener = TcpListener::bind(config.listen_peer)
        .await
        .with_context(|| format!("binding the peer port {}", config.listen_peer))?;
    let metrics = Arc::new(metrics::Metrics::new());
    let store = Arc::new(store::Store::new(metrics.clone()));
    let node = raft::RaftNode::start(&config, store, metrics.clone()).await?;
    let api = http::router(http::AppState::new(node.clone(), metrics));
    let peer = node.peer_router();
    tracing::info!(
        name = %config.name,
        id = node.node_id(),
        client = %config.listen_client,
        peer = %config.listen_peer,
        data = %config.data_dir.display(),
        "muster server started"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait_for = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let client_server = tokio::spawn(
        axum::serve(client_listener, api)
            .with_graceful_shutdown(wait_for(stop_rx.clone()))
            .into_future(),
    );
    let peer_server = tokio::spawn(
        axum::serve(peer_listener, peer)
            .with_graceful_shutdown(wait_for(stop_rx))
            .into_future(),
    );
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    node.shutdown().await;
    // Watch streams never end on their own; do not wait for them forever.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = client_server.await;
        let _ = peer_server.await;
    })
    .await;
    Ok(())
}
