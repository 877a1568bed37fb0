//! The command line: `run` (the controller) and `render` (print what the
//! operator would apply for a RegistryCluster manifest).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use kube::runtime::events::{Recorder, Reporter};

use crate::build::tls::operator_issued;
use crate::build::{ClusterState, Shape, build};
use crate::controller::{Context, check_crd_installed, run};
use crate::crd::RegistryCluster;
use crate::http::{Health, serve};
use crate::lease::LeaseLock;
use crate::metrics::Metrics;
use crate::registry::HttpRegistry;
use crate::validate::{OperatorSettings, Tls, validate};

#[derive(Debug, Parser)]
#[command(
    name = "muster-operator",
    version,
    about = "The Muster Kubernetes operator"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the RegistryCluster controller.
    Run(RunArgs),
    /// Print, as YAML, the objects the operator builds for a RegistryCluster manifest.
    Render(RenderArgs),
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Run(args) => args.run().await,
            Command::Render(args) => {
                print!("{}", args.render()?);
                Ok(())
            }
        }
    }
}

#[derive(Debug, Args)]
struct ClusterArgs {
    /// The cluster's DNS domain.
    #[arg(
        long,
        env = "MUSTER_OPERATOR_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    cluster_domain: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Address of /metrics, /livez and /readyz.
    #[arg(long, env = "MUSTER_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Namespace of the leader-election Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: String,
    #[arg(
        long,
        env = "MUSTER_OPERATOR_LEASE_NAME",
        default_value = "muster-operator"
    )]
    lease_name: String,
    /// This replica's name in the Lease.
    #[arg(long, env = "POD_NAME")]
    identity: String,
    /// How long a lease holds without renewal, in seconds.
    #[arg(long, env = "MUSTER_OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// Deadline of one call to a registry member, in milliseconds.
    #[arg(
        long,
        env = "MUSTER_OPERATOR_REGISTRY_TIMEOUT_MS",
        default_value_t = 3000
    )]
    registry_timeout_ms: u64,
}

impl RunArgs {
    async fn run(self) -> anyhow::Result<()> {
        let Self {
            cluster,
            listen,
            lease_namespace,
            lease_name,
            identity,
            lease_seconds,
            registry_timeout_ms,
        } = self;
        if lease_seconds < 3 {
            bail!("--lease-seconds must be at least 3");
        }
        let client = kube::Client::try_default()
            .await
            .context("connecting to the Kubernetes API")?;
        check_crd_installed(&client).await?;
        let metrics = Arc::new(Metrics::new()?);
        let leading = Arc::new(AtomicBool::new(false));
        let health = Health {
            metrics: metrics.clone(),
            leading: leading.clone(),
        };
        let server = tokio::spawn(serve(listen, health));
        let lock = LeaseLock::new(
            client.clone(),
            &lease_namespace,
            &lease_name,
            &identity,
            Duration::from_secs(lease_seconds),
        );
        tracing::info!(lease = %lease_name, %identity, "waiting for the leader lease");
        lock.acquire().await;
        leading.store(true, Ordering::Relaxed);
        tracing::info!("leading: starting the controller");
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "muster-operator".into(),
                instance: Some(identity),
            },
        );
        let ctx = Arc::new(Context::new(
            client,
            HttpRegistry::new(Duration::from_millis(registry_timeout_ms)),
            recorder,
            metrics,
            OperatorSettings {
                cluster_domain: cluster.cluster_domain,
            },
        ));
        tokio::select! {
            () = run(ctx) => Ok(()),
            () = lock.hold() => bail!("lost the leader lease; exiting so a fresh start can compete again"),
            served = server => bail!("the metrics server stopped: {served:?}"),
        }
    }
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// A RegistryCluster manifest (YAML). `metadata.uid`, which only the API
    /// server assigns, defaults to a placeholder.
    file: PathBuf,
    /// StatefulSet replicas [default: spec.replicas].
    #[arg(long)]
    pods: Option<i32>,
    /// Render as after bootstrap (pods with an empty volume wait to be added).
    #[arg(long)]
    existing: bool,
}

/// Owner references need a uid; a rendered manifest has none yet.
const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

impl RenderArgs {
    pub fn render(self) -> anyhow::Result<String> {
        let Self {
            cluster,
            file,
            pods,
            existing,
        } = self;
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let mut resource: RegistryCluster = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not a RegistryCluster", file.display()))?;
        let meta = &mut resource.metadata;
        meta.uid.get_or_insert_with(|| PLACEHOLDER_UID.to_string());
        meta.namespace.get_or_insert_with(|| "default".to_string());
        let settings = OperatorSettings {
            cluster_domain: cluster.cluster_domain,
        };
        let valid = validate(&resource, &settings)?;
        let shape = Shape {
            pods: pods.unwrap_or(valid.replicas),
            cluster_state: if existing {
                ClusterState::Existing
            } else {
                ClusterState::New
            },
        };
        let objects = build(&valid, shape);
        let mut documents = Vec::new();
        if valid.tls == Tls::OperatorIssued {
            let tls = operator_issued(&valid, None, None, time::OffsetDateTime::now_utc())?;
            documents.push(serde_yaml_ng::to_string(&tls.ca)?);
            documents.push(serde_yaml_ng::to_string(&tls.server)?);
        }
        documents.push(serde_yaml_ng::to_string(&objects.config_map)?);
        documents.push(serde_yaml_ng::to_string(&objects.peer_service)?);
        documents.push(serde_yaml_ng::to_string(&objects.client_service)?);
        documents.push(serde_yaml_ng::to_string(&objects.pod_disruption_budget)?);
        documents.push(serde_yaml_ng::to_string(&objects.stateful_set)?);
        Ok(documents
            .iter()
            .map(|doc| format!("---\n{doc}"))
            .collect::<String>())
    }
}
