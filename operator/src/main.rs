//! `muster-operator`: install the crypto provider, parse the arguments,
//! hand over to the library.
#![forbid(unsafe_code)]

use clap::Parser;
use muster_operator::cli::Cli;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // kube uses rustls with ring; nothing may pick a provider implicitly.
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a TLS crypto provider was installed already"))?;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube=warn")),
        )
        .init();
    Cli::parse().run().await
}
