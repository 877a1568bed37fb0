//! The Muster registry server: a Raft-replicated, MVCC-versioned keyspace
//! with an HTTP API, watches and leases.

mod catalog;
mod change_stream;
mod config;
mod config_center;
mod dispatch;
mod dns;
mod http;
mod identity;
mod metrics;
mod raft;
mod store;
mod tls;
mod typed;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

pub use config::Config;
pub use tls::TlsFiles;

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
    let tls = config.tls.as_ref().map(tls::Tls::load).transpose()?;
    let client_listener = TcpListener::bind(config.listen_client)
        .await
        .with_context(|| format!("binding the client port {}", config.listen_client))?;
    let peer_listener = TcpListener::bind(config.listen_peer)
        .await
        .with_context(|| format!("binding the peer port {}", config.listen_peer))?;
    let metrics = Arc::new(metrics::Metrics::new());
    let store = Arc::new(store::Store::new(metrics.clone()));
    let node = raft::RaftNode::start(&config, store, metrics.clone(), tls.as_ref()).await?;
    let forward_http = tls::http_client(
        tls.as_ref(),
        Duration::from_secs(2),
        Some(Duration::from_secs(30)),
    )?;
    let state = http::AppState::new(node.clone(), metrics, forward_http);
    catalog::spawn_background(state.clone());
    dns::start(&config, node.store().clone()).await?;
    let api = http::router(state);
    let peer = node.peer_router();
    tracing::info!(
        name = %config.name,
        id = node.node_id(),
        client = %config.listen_client,
        peer = %config.listen_peer,
        tls = tls.is_some(),
        data = %config.data_dir.display(),
        "muster server started"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let client_server = serve(
        client_listener,
        api,
        tls.as_ref(),
        tls::Port::Client,
        stop_rx.clone(),
    )?;
    let peer_server = serve(peer_listener, peer, tls.as_ref(), tls::Port::Peer, stop_rx)?;
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    node.shutdown().await;
    // Watch streams never end on their own; do not wait for them forever.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = client_server.await;
        let _ = peer_server.await;
    })
    .await;
    Ok(())
}

/// Serves a router on a listener, over TLS when configured, until `stop`.
fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<&tls::Tls>,
    port: tls::Port,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    Ok(match tls {
        Some(tls) => {
            let listener = tls::TlsListener::new(listener, tls, port)?;
            tokio::spawn(
                axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .into_future(),
            )
        }
        None => {
            let listener = listener.tap_io(|tcp| {
                // Small request/response messages: do not wait to coalesce.
                let _ = tcp.set_nodelay(true);
            });
            tokio::spawn(
                axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .into_future(),
            )
        }
    })
}
