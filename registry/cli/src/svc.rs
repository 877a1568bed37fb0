//! `muster svc`: namespaces, service instances, health and discovery.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use muster_client::{DiscoverOptions, SubscribeOptions};
use muster_types::catalog::{
    CheckSpec, HealthReport, HealthStatus, Instance, InstanceSpec, ServiceEvent, ServiceSpec,
};
use muster_types::error::ErrorCode;
use muster_types::{LeaseId, Revision};

use crate::Ctx;
use crate::output::{Format, Table, or_dash, print_json};

#[derive(Debug, Args)]
pub struct SvcArgs {
    /// The namespace.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    namespace: String,
    #[command(subcommand)]
    command: SvcCommand,
}

#[derive(Debug, Subcommand)]
enum SvcCommand {
    /// Register (or update) an instance.
    Register(RegisterArgs),
    /// Remove an instance.
    Deregister { service: String, id: String },
    /// The services of the namespace with their health counts.
    List,
    /// Discover a service's instances.
    Get(GetArgs),
    /// Stream a service's instance changes (a snapshot first).
    Watch {
        service: String,
        /// Every change after this revision, without a snapshot.
        #[arg(long)]
        from_revision: Option<Revision>,
    },
    /// Report an instance's health: passing, warning or critical.
    Health {
        service: String,
        id: String,
        #[arg(value_parser = parse_status)]
        status: HealthStatus,
        /// What the check saw (the report's `output`; `-o/--output` is
        /// taken by the output format).
        #[arg(short, long, default_value = "")]
        message: String,
    },
    /// Take an instance out of discovery, keeping it registered.
    Drain { service: String, id: String },
    /// Put a drained instance back into discovery.
    Enable { service: String, id: String },
    /// Keep an ephemeral instance alive: every TTL/3 until Ctrl-C.
    Heartbeat {
        service: String,
        id: String,
        /// Renew once and exit.
        #[arg(long)]
        once: bool,
    },
    /// Set a service's metadata and protection threshold.
    Set {
        service: String,
        /// 0-1: below this healthy share, discovery returns every instance.
        #[arg(long, default_value_t = 0.0)]
        protection_threshold: f64,
        /// Service metadata KEY=VALUE (repeatable).
        #[arg(long = "meta", value_parser = parse_pair)]
        metadata: Vec<(String, String)>,
    },
    /// Namespaces.
    #[command(subcommand)]
    Ns(NsCommand),
}

#[derive(Debug, Subcommand)]
enum NsCommand {
    List,
    Create {
        name: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete an empty namespace.
    Delete {
        name: String,
    },
}

#[derive(Debug, Args)]
struct RegisterArgs {
    service: String,
    id: String,
    #[arg(long)]
    address: String,
    #[arg(long)]
    port: u16,
    /// Share of traffic, 0-10000.
    #[arg(long, default_value_t = 100)]
    weight: u32,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Metadata KEY=VALUE (repeatable).
    #[arg(long = "meta", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
    #[arg(long)]
    zone: Option<String>,
    /// Ephemeral: the instance lives as long as its heart-beats (`--ttl`
    /// implies it).
    #[arg(long)]
    ephemeral: bool,
    /// Heart-beat TTL in seconds of an ephemeral instance.
    #[arg(long, conflicts_with = "lease")]
    ttl: Option<i64>,
    /// Bind the ephemeral instance to this existing lease instead.
    #[arg(long)]
    lease: Option<LeaseId>,
    /// Register drained (out of discovery).
    #[arg(long)]
    disabled: bool,
    /// A TTL health check: report at least every this many seconds.
    #[arg(long)]
    check_ttl: Option<u64>,
    #[arg(long, default_value_t = 1, requires = "check_ttl")]
    successes_before_passing: u32,
    #[arg(long, default_value_t = 1, requires = "check_ttl")]
    failures_before_critical: u32,
    /// Seconds critical before the instance is removed.
    #[arg(long, requires = "check_ttl")]
    deregister_critical_after: Option<u64>,
}

impl RegisterArgs {
    fn into_spec(self) -> (String, String, InstanceSpec) {
        let RegisterArgs {
            service,
            id,
            address,
            port,
            weight,
            tags,
            metadata,
            zone,
            ephemeral,
            ttl,
            lease,
            disabled,
            check_ttl,
            successes_before_passing,
            failures_before_critical,
            deregister_critical_after,
        } = self;
        let spec = InstanceSpec {
            address,
            port,
            weight,
            tags,
            metadata: metadata.into_iter().collect::<BTreeMap<_, _>>(),
            zone,
            enabled: !disabled,
            ephemeral: ephemeral || ttl.is_some() || lease.is_some(),
            ttl,
            lease,
            check: check_ttl.map(|ttl| CheckSpec {
                ttl,
                successes_before_passing,
                failures_before_critical,
                deregister_critical_after,
            }),
        };
        (service, id, spec)
    }
}

#[derive(Debug, Args)]
struct GetArgs {
    service: String,
    /// Statuses to return, comma separated, or `all` (default: passing).
    #[arg(long, value_parser = parse_healthy)]
    healthy: Option<Statuses>,
    /// Only instances with this tag (repeatable: all must match).
    #[arg(long = "tag")]
    tags: Vec<String>,
    #[arg(long)]
    zone: Option<String>,
    /// Only instances with this metadata KEY=VALUE (repeatable).
    #[arg(long = "meta", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
    /// Blocking query: answer once the service changed after this revision.
    #[arg(long)]
    index: Option<Revision>,
    /// How long a blocking query waits, e.g. 5s (default 30s).
    #[arg(long, value_parser = crate::parse_duration, requires = "index")]
    wait: Option<Duration>,
    /// Read this node's state without asking the leader.
    #[arg(long)]
    serializable: bool,
}

fn parse_status(text: &str) -> Result<HealthStatus, String> {
    match text {
        "passing" => Ok(HealthStatus::Passing),
        "warning" => Ok(HealthStatus::Warning),
        "critical" => Ok(HealthStatus::Critical),
        other => Err(format!(
            "'{other}' is not a status: use passing, warning or critical"
        )),
    }
}

/// The statuses of `--healthy` (one value, comma separated).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Statuses(Vec<HealthStatus>);

fn parse_healthy(text: &str) -> Result<Statuses, String> {
    if text == "all" {
        return Ok(Statuses(vec![
            HealthStatus::Passing,
            HealthStatus::Warning,
            HealthStatus::Critical,
        ]));
    }
    let statuses = text.split(',').map(|word| parse_status(word.trim()));
    Ok(Statuses(statuses.collect::<Result<_, _>>()?))
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

fn status_name(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Passing => "passing",
        HealthStatus::Warning => "warning",
        HealthStatus::Critical => "critical",
    }
}

impl SvcArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        let SvcArgs { namespace, command } = self;
        let ns = namespace.as_str();
        let client = &ctx.client;
        match command {
            SvcCommand::Register(args) => {
                let (service, id, spec) = args.into_spec();
                let instance = client.register(ns, &service, &id, &spec).await?;
                show_instance(ctx, &instance, "registered")
            }
            SvcCommand::Deregister { service, id } => {
                let answer = client.deregister(ns, &service, &id).await?;
                match ctx.format {
                    Format::Json => print_json(&answer),
                    Format::Table => {
                        println!("deregistered {service}/{id} revision={}", answer.revision);
                        Ok(())
                    }
                }
            }
            SvcCommand::List => {
                let list = client.list_services(ns).await?;
                if ctx.format == Format::Json {
                    return print_json(&list);
                }
                let mut table = Table::new(&[
                    "SERVICE",
                    "INSTANCES",
                    "PASSING",
                    "WARNING",
                    "CRITICAL",
                    "DRAINED",
                ]);
                for service in &list.services {
                    let health = &service.health;
                    table.row(vec![
                        service.name.clone(),
                        service.instances.to_string(),
                        health.passing.to_string(),
                        health.warning.to_string(),
                        health.critical.to_string(),
                        health.disabled.to_string(),
                    ]);
                }
                table.print();
                Ok(())
            }
            SvcCommand::Get(args) => get(ctx, ns, args).await,
            SvcCommand::Watch {
                service,
                from_revision,
            } => watch(ctx, ns, &service, from_revision).await,
            SvcCommand::Health {
                service,
                id,
                status,
                message,
            } => {
                let report = HealthReport {
                    status,
                    output: message,
                };
                let instance = client.report_health(ns, &service, &id, &report).await?;
                show_instance(ctx, &instance, "reported")
            }
            SvcCommand::Drain { service, id } => {
                let instance = client.drain(ns, &service, &id).await?;
                show_instance(ctx, &instance, "drained")
            }
            SvcCommand::Enable { service, id } => {
                let instance = client.enable(ns, &service, &id).await?;
                show_instance(ctx, &instance, "enabled")
            }
            SvcCommand::Heartbeat { service, id, once } => {
                heartbeat(ctx, ns, &service, &id, once).await
            }
            SvcCommand::Set {
                service,
                protection_threshold,
                metadata,
            } => {
                let spec = ServiceSpec {
                    metadata: metadata.into_iter().collect(),
                    protection_threshold,
                };
                let answer = client.set_service(ns, &service, &spec).await?;
                match ctx.format {
                    Format::Json => print_json(&answer),
                    Format::Table => {
                        println!("service {service} set, revision={}", answer.revision);
                        Ok(())
                    }
                }
            }
            SvcCommand::Ns(command) => namespaces(ctx, command).await,
        }
    }
}

async fn namespaces(ctx: &Ctx, command: NsCommand) -> anyhow::Result<()> {
    let client = &ctx.client;
    match command {
        NsCommand::List => {
            let list = client.namespaces().await?;
            if ctx.format == Format::Json {
                return print_json(&list);
            }
            let mut table = Table::new(&["NAMESPACE", "DESCRIPTION"]);
            for namespace in &list.namespaces {
                table.row(vec![namespace.name.clone(), namespace.description.clone()]);
            }
            table.print();
            Ok(())
        }
        NsCommand::Create { name, description } => {
            let namespace = client.create_namespace(&name, &description).await?;
            match ctx.format {
                Format::Json => print_json(&namespace),
                Format::Table => {
                    println!("namespace {} created", namespace.name);
                    Ok(())
                }
            }
        }
        NsCommand::Delete { name } => {
            let answer = client.delete_namespace(&name).await?;
            match ctx.format {
                Format::Json => print_json(&answer),
                Format::Table => {
                    println!("namespace {name} deleted, revision={}", answer.revision);
                    Ok(())
                }
            }
        }
    }
}

fn show_instance(ctx: &Ctx, instance: &Instance, what: &str) -> anyhow::Result<()> {
    match ctx.format {
        Format::Json => print_json(instance),
        Format::Table => {
            println!(
                "{what} {}/{} {} revision={}",
                instance.service,
                instance.id,
                status_name(instance.health.status),
                instance.revision
            );
            Ok(())
        }
    }
}

fn instance_table(instances: &[Instance]) -> Table {
    let mut table = Table::new(&[
        "ID", "ADDRESS", "WEIGHT", "HEALTH", "ENABLED", "ZONE", "TAGS", "LEASE", "OUTPUT",
    ]);
    for instance in instances {
        table.row(vec![
            instance.id.clone(),
            format!("{}:{}", instance.address, instance.port),
            instance.weight.to_string(),
            status_name(instance.health.status).to_owned(),
            instance.enabled.to_string(),
            or_dash(instance.zone.as_ref()),
            instance.tags.join(","),
            or_dash(instance.lease),
            instance.health.output.escape_debug().to_string(),
        ]);
    }
    table
}

async fn get(ctx: &Ctx, ns: &str, args: GetArgs) -> anyhow::Result<()> {
    let GetArgs {
        service,
        healthy,
        tags,
        zone,
        metadata,
        index,
        wait,
        serializable,
    } = args;
    let options = DiscoverOptions {
        healthy: healthy
            .map(|Statuses(statuses)| statuses)
            .unwrap_or_default(),
        tags,
        zone,
        metadata,
        index,
        wait,
        serializable,
    };
    let discovery = ctx.client.discover(ns, &service, options).await?;
    if ctx.format == Format::Json {
        return print_json(&discovery);
    }
    instance_table(&discovery.instances).print();
    if discovery.protection_triggered {
        println!("(protection threshold reached: every enabled instance is listed)");
    }
    Ok(())
}

async fn watch(
    ctx: &Ctx,
    ns: &str,
    service: &str,
    from_revision: Option<Revision>,
) -> anyhow::Result<()> {
    let mut events = ctx
        .client
        .subscribe(ns, service, SubscribeOptions { from_revision });
    let mut stdout = std::io::stdout();
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            event = events.next() => event,
        };
        let Some(event) = event else {
            bail!("the subscription ended");
        };
        let event = event?;
        let line = match ctx.format {
            Format::Json => serde_json::to_string(&event)?,
            Format::Table => event_line(&event),
        };
        writeln!(stdout, "{line}")?;
        // Lines must show up at once when piped.
        stdout.flush()?;
    }
}

fn event_line(event: &ServiceEvent) -> String {
    let describe = |instance: &Instance| {
        format!(
            "{} {}:{} {}{} rev={}",
            instance.id,
            instance.address,
            instance.port,
            status_name(instance.health.status),
            if instance.enabled { "" } else { " drained" },
            instance.revision
        )
    };
    match event {
        ServiceEvent::Snapshot {
            instances,
            revision,
        } => {
            let mut text = format!("SNAPSHOT rev={revision} instances={}", instances.len());
            for instance in instances {
                text.push_str(&format!("\n  {}", describe(instance)));
            }
            text
        }
        ServiceEvent::Upsert { instance } => format!("UPSERT {}", describe(instance)),
        ServiceEvent::Remove { id, revision } => format!("REMOVE {id} rev={revision}"),
        ServiceEvent::Progress { revision } => format!("PROGRESS rev={revision}"),
        ServiceEvent::Error { code, message } => format!("ERROR {code:?}: {message}"),
    }
}

async fn heartbeat(ctx: &Ctx, ns: &str, service: &str, id: &str, once: bool) -> anyhow::Result<()> {
    let mut ttl = Duration::from_secs(1);
    let mut last_beat = Instant::now();
    loop {
        match ctx.client.heartbeat(ns, service, id).await {
            Ok(answer) => {
                ttl = Duration::from_secs(answer.ttl.max(1).unsigned_abs());
                last_beat = Instant::now();
                match ctx.format {
                    Format::Json => println!("{}", serde_json::to_string(&answer)?),
                    Format::Table => println!("{service}/{id} kept alive, TTL {}s", answer.ttl),
                }
            }
            Err(err) if err.code() == Some(ErrorCode::KeyNotFound) => {
                return Err(err).with_context(|| format!("{service}/{id} is gone"));
            }
            // Other failures may pass (an election); give up once the
            // instance must have expired.
            Err(err) if !once && last_beat.elapsed() < ttl => {
                eprintln!("warning: heart-beat of {service}/{id}: {err}");
            }
            Err(err) => return Err(err.into()),
        }
        if once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep((ttl / 3).max(Duration::from_millis(100))) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        svc: SvcArgs,
    }

    fn parse(args: &[&str]) -> SvcArgs {
        Wrapper::try_parse_from(std::iter::once("svc").chain(args.iter().copied()))
            .unwrap()
            .svc
    }

    #[test]
    fn register_flags_build_the_spec() {
        let args = parse(&[
            "register",
            "web",
            "pod-1",
            "--address",
            "10.0.0.5",
            "--port",
            "8080",
            "--tag",
            "v2",
            "--meta",
            "version=2",
            "--zone",
            "eu-1",
            "--ttl",
            "10",
            "--check-ttl",
            "5",
            "--successes-before-passing",
            "2",
            "--failures-before-critical",
            "3",
            "--deregister-critical-after",
            "60",
            "-n",
            "prod",
        ]);
        assert_eq!(args.namespace, "prod");
        let SvcCommand::Register(register) = args.command else {
            panic!("register expected");
        };
        let (service, id, spec) = register.into_spec();
        assert_eq!((service.as_str(), id.as_str()), ("web", "pod-1"));
        assert!(spec.ephemeral, "--ttl implies ephemeral");
        assert_eq!(spec.ttl, Some(10));
        assert_eq!(spec.metadata["version"], "2");
        let check = spec.check.unwrap();
        assert_eq!(
            (
                check.ttl,
                check.successes_before_passing,
                check.failures_before_critical
            ),
            (5, 2, 3)
        );
        assert_eq!(check.deregister_critical_after, Some(60));
    }

    #[test]
    fn healthy_and_status_words() {
        assert_eq!(
            parse_healthy("passing,warning").unwrap(),
            Statuses(vec![HealthStatus::Passing, HealthStatus::Warning])
        );
        assert_eq!(parse_healthy("all").unwrap().0.len(), 3);
        assert!(parse_healthy("up").is_err());
        assert!(parse_pair("novalue").is_err());
    }
}
