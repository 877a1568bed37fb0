//! `muster`: runs a registry node, and talks to a cluster.

mod bench;
mod config;
mod kv;
mod lease;
mod member;
mod output;
mod server;
mod status;
mod svc;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use muster_client::Client;

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "muster",
    version,
    about = "The Muster registry: server, client and benchmarks"
)]
struct Cli {
    /// Client URLs of cluster members, comma separated.
    #[arg(
        long,
        global = true,
        env = "MUSTER_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7001"
    )]
    endpoints: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Deadline of each request attempt, e.g. 5s, 500ms, 2m (plain number: seconds).
    #[arg(long, global = true, env = "MUSTER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// CA bundle (PEM) that signed the servers' certificates, for https endpoints.
    #[arg(long, global = true, env = "MUSTER_CACERT")]
    cacert: Option<std::path::PathBuf>,
    /// Client certificate (PEM), for clusters that require one.
    #[arg(
        long = "cert",
        global = true,
        env = "MUSTER_CERT",
        requires = "client_key"
    )]
    client_cert: Option<std::path::PathBuf>,
    /// Key of the client certificate (PEM).
    #[arg(
        long = "key",
        global = true,
        env = "MUSTER_KEY",
        requires = "client_cert"
    )]
    client_key: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a registry node.
    Server(server::ServerArgs),
    /// Read, write and watch keys.
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Grant, renew and revoke leases.
    #[command(subcommand)]
    Lease(lease::LeaseCommand),
    /// List and change cluster members.
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// Ask every endpoint for its status.
    Status,
    /// Service catalog: namespaces, instances, health, discovery.
    Svc(svc::SvcArgs),
    /// Measure throughput and latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Publish, read, roll back and gray-release config items.
    #[command(subcommand)]
    Config(config::ConfigCommand),
}

/// What every client command needs.
pub struct Ctx {
    pub client: Client,
    pub format: Format,
    pub timeout: Duration,
}

#[tokio::main]
async fn main() -> ExitCode {
    // One crypto provider for the whole process, before any TLS is set up.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let server = matches!(cli.command, Command::Server(_));
    // openraft narrates every election at info; its warnings are what matter.
    init_tracing(if server { "info,openraft=warn" } else { "warn" });
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Cli {
        endpoints,
        output,
        timeout,
        cacert,
        client_cert,
        client_key,
        command,
    } = cli;
    let connect = || -> anyhow::Result<Ctx> {
        let mut builder = Client::builder(endpoints.clone()).request_timeout(timeout);
        if let Some(ca) = &cacert {
            let read = |path: &std::path::PathBuf| {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))
            };
            builder = builder.tls(muster_client::TlsOptions {
                ca_pem: read(ca)?,
                client_cert_pem: client_cert.as_ref().map(read).transpose()?,
                client_key_pem: client_key.as_ref().map(read).transpose()?,
            });
        }
        let client = builder.build()?;
        Ok(Ctx {
            client,
            format: output,
            timeout,
        })
    };
    match command {
        Command::Server(args) => muster_server::run(args.into_config()?).await,
        Command::Kv(cmd) => cmd.run(&connect()?).await,
        Command::Lease(cmd) => cmd.run(&connect()?).await,
        Command::Member(cmd) => cmd.run(&connect()?).await,
        Command::Status => status::run(&connect()?).await,
        Command::Svc(args) => args.run(&connect()?).await,
        Command::Bench(cmd) => cmd.run(&connect()?).await,
        Command::Config(cmd) => cmd.run(&connect()?).await,
    }
}

/// Logs go to stderr; RUST_LOG overrides the default level.
fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// `500ms`, `5s`, `2m`, or a plain (fractional) number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 500ms, 5s or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => {
            return Err(format!(
                "unknown unit '{unit}' in '{text}' (use ms, s or m)"
            ));
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("'{text}' must be positive"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("0").unwrap_err().contains("positive"));
        assert!(parse_duration("5h").unwrap_err().contains("unit 'h'"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn global_flags_and_defaults() {
        let cli = Cli::try_parse_from(["muster", "kv", "get", "k"]).unwrap();
        assert_eq!(cli.endpoints, ["http://127.0.0.1:7001"]);
        assert_eq!(cli.output, Format::Table);
        assert_eq!(cli.timeout, Duration::from_secs(10));
        let cli = Cli::try_parse_from([
            "muster",
            "status",
            "--endpoints",
            "http://a:1,http://b:2",
            "-o",
            "json",
            "--timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(cli.endpoints, ["http://a:1", "http://b:2"]);
        assert_eq!(cli.output, Format::Json);
        assert_eq!(cli.timeout, Duration::from_millis(500));
        assert!(Cli::try_parse_from(["muster", "-o", "yaml", "status"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
