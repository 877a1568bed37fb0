//! `muster config`: the config center (Nacos-style `namespace / group /
//! data_id` items).

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use futures::StreamExt as _;
use muster_client::config::{ConfigId, Labels};
use muster_types::Revision;
use muster_types::config::{ConfigEvent, ConfigFormat, ConfigItem};

use crate::Ctx;
use crate::output::{Format, Table, or_dash, print_json};

/// Where an item lives; Nacos's defaults.
#[derive(Debug, Args)]
pub struct Place {
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[arg(short = 'g', long, default_value = "DEFAULT_GROUP")]
    group: String,
}

#[derive(Debug, Args)]
pub struct Item {
    data_id: String,
    #[command(flatten)]
    place: Place,
}

impl Item {
    fn id(&self) -> ConfigId {
        ConfigId::new(&self.place.namespace, &self.place.group, &self.data_id)
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Publish a new version, from a file (-f) or stdin.
    Publish {
        #[command(flatten)]
        item: Item,
        /// yaml, json, toml, properties or text; checked by the server.
        #[arg(long, default_value = "text", value_parser = parse_format)]
        format: ConfigFormat,
        /// The content's file; '-' or none: stdin.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// Recorded as the publisher (default: $USER).
        #[arg(long)]
        author: Option<String>,
    },
    /// Print the content (with -o json, the whole item).
    Get {
        #[command(flatten)]
        item: Item,
        /// This client's labels (k=v,k2=v2): gray content when they match.
        #[arg(long, value_parser = parse_labels)]
        labels: Option<Labels>,
    },
    /// Delete the item (its history is kept).
    Delete {
        #[command(flatten)]
        item: Item,
    },
    /// List published versions, newest first.
    History {
        #[command(flatten)]
        item: Item,
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// Unified diff between two versions (--to: default the current one).
    Diff {
        #[command(flatten)]
        item: Item,
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: Option<u64>,
    },
    /// Publish an old version again, as a new version.
    Rollback {
        #[command(flatten)]
        item: Item,
        version: u64,
    },
    /// Print changes of a group's items (or one item with --data-id).
    Watch {
        #[command(flatten)]
        place: Place,
        #[arg(long)]
        data_id: Option<String>,
        /// Start after this revision (default: now).
        #[arg(long)]
        from_revision: Option<Revision>,
    },
    /// Gray (canary) releases: content for clients whose labels match.
    #[command(subcommand)]
    Gray(GrayCommand),
}

#[derive(Debug, Subcommand)]
pub enum GrayCommand {
    /// Set gray content (-f file or stdin) for clients matching --selector.
    Set {
        #[command(flatten)]
        item: Item,
        /// k=v,k2=v2: every pair must be among the client's labels.
        #[arg(long, value_parser = parse_labels)]
        selector: Labels,
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
    },
    /// Publish the gray content as the next stable version.
    Promote {
        #[command(flatten)]
        item: Item,
    },
    /// Drop the gray content.
    Cancel {
        #[command(flatten)]
        item: Item,
    },
}

fn parse_format(text: &str) -> Result<ConfigFormat, String> {
    ConfigFormat::parse(text)
        .ok_or_else(|| format!("'{text}' is not yaml, json, toml, properties or text"))
}

/// `k=v,k2:v2` (the server checks the names).
fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut labels = Labels::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let at = pair
            .find(['=', ':'])
            .ok_or_else(|| format!("label '{pair}' must be key=value"))?;
        labels.insert(pair[..at].trim().into(), pair[at + 1..].trim().into());
    }
    Ok(labels)
}

/// The publisher recorded by default: the login name.
fn user() -> Option<String> {
    std::env::var("USER").ok().filter(|user| !user.is_empty())
}

fn read_content(file: Option<&PathBuf>) -> anyhow::Result<String> {
    match file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        }
        _ => {
            let mut content = String::new();
            std::io::stdin()
                .read_to_string(&mut content)
                .context("reading the content from stdin")?;
            Ok(content)
        }
    }
}

fn format_name(format: ConfigFormat) -> String {
    serde_json::to_value(format)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn print_item(ctx: &Ctx, item: &ConfigItem) -> anyhow::Result<()> {
    if ctx.format == Format::Json {
        return print_json(item);
    }
    println!(
        "OK {}/{}/{} version={} md5={} revision={}",
        item.namespace, item.group, item.data_id, item.version, item.md5, item.revision
    );
    Ok(())
}

/// Milliseconds since the epoch as UTC `YYYY-MM-DD HH:MM:SS`.
fn show_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

impl ConfigCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        let client = &ctx.client;
        match self {
            ConfigCommand::Publish {
                item,
                format,
                file,
                author,
            } => {
                let content = read_content(file.as_ref())?;
                let author = author.or_else(user);
                let published = client
                    .config_publish(&item.id(), content, format, author.as_deref())
                    .await?;
                print_item(ctx, &published)
            }
            ConfigCommand::Get { item, labels } => {
                let labels = labels.unwrap_or_default();
                let Some(found) = client.config_get_with_labels(&item.id(), &labels).await? else {
                    bail!(
                        "config {}/{}/{} does not exist",
                        item.place.namespace,
                        item.place.group,
                        item.data_id
                    );
                };
                if ctx.format == Format::Json {
                    return print_json(&found);
                }
                let mut stdout = std::io::stdout();
                stdout.write_all(found.content.as_bytes())?;
                if stdout.is_terminal() && !found.content.ends_with('\n') {
                    writeln!(stdout)?;
                }
                Ok(())
            }
            ConfigCommand::Delete { item } => {
                let deleted = client.config_delete(&item.id()).await?;
                if ctx.format == Format::Json {
                    return print_json(&deleted);
                }
                println!("OK revision={}", deleted.revision);
                Ok(())
            }
            ConfigCommand::History { item, limit } => {
                let history = client.config_history(&item.id(), limit).await?;
                if ctx.format == Format::Json {
                    return print_json(&history);
                }
                let mut table = Table::new(&["VERSION", "MD5", "PUBLISHED", "BY", "ROLLBACK-OF"]);
                for version in &history.versions {
                    table.row(vec![
                        version.version.to_string(),
                        version.md5.clone(),
                        show_time(version.published_at_ms),
                        version.published_by.clone(),
                        or_dash(version.rolled_back_from),
                    ]);
                }
                table.print();
                Ok(())
            }
            ConfigCommand::Diff { item, from, to } => {
                let diff = client.config_diff(&item.id(), from, to).await?;
                if ctx.format == Format::Json {
                    return print_json(&serde_json::json!({ "diff": diff }));
                }
                print!("{diff}");
                Ok(())
            }
            ConfigCommand::Rollback { item, version } => {
                let published = client
                    .config_rollback(&item.id(), version, user().as_deref())
                    .await?;
                print_item(ctx, &published)
            }
            ConfigCommand::Watch {
                place,
                data_id,
                from_revision,
            } => {
                let mut events = client.watch_config(
                    &place.namespace,
                    &place.group,
                    data_id.as_deref(),
                    from_revision,
                );
                while let Some(event) = events.next().await {
                    let event = event?;
                    if ctx.format == Format::Json {
                        println!("{}", serde_json::to_string(&event)?);
                        continue;
                    }
                    match event {
                        ConfigEvent::Published { revision, item } => println!(
                            "PUBLISHED {}/{}/{} version={} format={} md5={}{} rev={revision}",
                            item.namespace,
                            item.group,
                            item.data_id,
                            item.version,
                            format_name(item.format),
                            item.md5,
                            if item.gray.is_some() { " gray" } else { "" },
                        ),
                        ConfigEvent::Deleted {
                            revision,
                            namespace,
                            group,
                            data_id,
                        } => println!("DELETED {namespace}/{group}/{data_id} rev={revision}"),
                        ConfigEvent::Progress { .. } | ConfigEvent::Error { .. } => {}
                    }
                    std::io::stdout().flush()?;
                }
                Ok(())
            }
            ConfigCommand::Gray(gray) => gray.run(ctx).await,
        }
    }
}

impl GrayCommand {
    async fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        let client = &ctx.client;
        let item = match self {
            GrayCommand::Set {
                item,
                selector,
                file,
            } => {
                let content = read_content(file.as_ref())?;
                client
                    .config_gray_set(&item.id(), content, selector, user().as_deref())
                    .await?
            }
            GrayCommand::Promote { item } => {
                client
                    .config_gray_promote(&item.id(), user().as_deref())
                    .await?
            }
            GrayCommand::Cancel { item } => client.config_gray_cancel(&item.id()).await?,
        };
        print_item(ctx, &item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_times() {
        let labels = parse_labels("canary=true, zone:eu").unwrap();
        assert_eq!(labels["canary"], "true");
        assert_eq!(labels["zone"], "eu");
        assert!(parse_labels("oops").is_err());
        assert_eq!(show_time(0), "1970-01-01 00:00:00");
        assert_eq!(show_time(1_764_075_600_000), "2025-11-25 13:00:00");
    }
}
