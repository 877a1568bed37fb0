//! `muster kv`: keys.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use futures::StreamExt as _;
use muster_client::{Change, DeleteOptions, GetOptions, PutOptions, RangeOptions, WatchOptions};
use muster_types::kv::{KeyValue, TxnOpResponse, TxnRequest};
use muster_types::watch::{EventKind, WatchMessage};
use muster_types::{LeaseId, Revision};

use crate::Ctx;
use crate::lease::parse_lease_id;
use crate::output::{Format, Table, or_dash, print_json, show_bytes};

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Write a key; the value comes from stdin when omitted or '-'.
    Put {
        key: String,
        value: Option<String>,
        /// Attach the key to this lease (decimal, or hex with 0x).
        #[arg(long, value_parser = parse_lease_id)]
        lease: Option<LeaseId>,
        /// Write only if the key's mod revision is this (0: only if absent).
        #[arg(long)]
        prev_revision: Option<Revision>,
    },
    /// Print a key's value (raw bytes; a newline is added only on a
    /// terminal), or with --prefix a table of keys.
    Get {
        key: String,
        /// Read every key starting with KEY ("" for all).
        #[arg(long)]
        prefix: bool,
        /// Most keys to list with --prefix; 0: all.
        #[arg(long, default_value_t = 0, requires = "prefix")]
        limit: usize,
        /// Read at this past revision.
        #[arg(long)]
        revision: Option<Revision>,
        /// Answer from the node asked, without the leader (may be stale).
        #[arg(long)]
        serializable: bool,
        /// List keys without values.
        #[arg(long, requires = "prefix")]
        keys_only: bool,
    },
    /// Delete a key, or all keys with a prefix; prints how many were deleted.
    Del {
        key: String,
        #[arg(long)]
        prefix: bool,
    },
    /// Print changes as they happen, until Ctrl-C.
    Watch {
        key: String,
        #[arg(long)]
        prefix: bool,
        /// Start after this revision instead of now.
        #[arg(long)]
        from_revision: Option<Revision>,
        /// Also print each key's previous value.
        #[arg(long)]
        prev: bool,
    },
    /// Run a transaction given as TxnRequest JSON, from a file or stdin.
    Txn {
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
    },
    /// Drop the history before REVISION.
    Compact { revision: Revision },
}

impl KvCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        match self {
            KvCommand::Put {
                key,
                value,
                lease,
                prev_revision,
            } => put(ctx, key, value, lease, prev_revision).await,
            KvCommand::Get {
                key,
                prefix: true,
                limit,
                revision,
                serializable,
                keys_only,
            } => {
                let options = RangeOptions {
                    limit: 0,
                    after: None,
                    revision,
                    keys_only,
                    serializable,
                };
                list(ctx, &key, options, limit).await
            }
            KvCommand::Get {
                key,
                prefix: false,
                limit: _,
                revision,
                serializable,
                keys_only: _,
            } => {
                let options = GetOptions {
                    revision,
                    serializable,
                };
                get(ctx, &key, options).await
            }
            KvCommand::Del { key, prefix } => {
                let options = DeleteOptions {
                    prefix,
                    prev_kv: false,
                };
                let answer = ctx.client.delete(&key, options).await?;
                match ctx.format {
                    Format::Json => print_json(&answer),
                    Format::Table => {
                        println!("{}", answer.deleted);
                        Ok(())
                    }
                }
            }
            KvCommand::Watch {
                key,
                prefix,
                from_revision,
                prev,
            } => {
                let options = WatchOptions {
                    key,
                    prefix,
                    from_revision,
                    prev_value: prev,
                };
                watch(ctx, options).await
            }
            KvCommand::Txn { file } => txn(ctx, file).await,
            KvCommand::Compact { revision } => {
                let answer = ctx.client.compact(revision).await?;
                match ctx.format {
                    Format::Json => print_json(&answer),
                    Format::Table => {
                        println!("OK compacted_revision={}", answer.compacted_revision);
                        Ok(())
                    }
                }
            }
        }
    }
}

async fn put(
    ctx: &Ctx,
    key: String,
    value: Option<String>,
    lease: Option<LeaseId>,
    prev_revision: Option<Revision>,
) -> anyhow::Result<()> {
    let value = match value.as_deref() {
        None | Some("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the value from stdin")?;
            bytes
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    let options = PutOptions {
        lease,
        prev_revision,
        prev_kv: false,
    };
    let answer = ctx.client.put(&key, value, options).await?;
    match ctx.format {
        Format::Json => print_json(&answer),
        Format::Table => {
            println!("OK revision={}", answer.revision);
            Ok(())
        }
    }
}

async fn get(ctx: &Ctx, key: &str, options: GetOptions) -> anyhow::Result<()> {
    let Some(kv) = ctx.client.get(key, options).await? else {
        bail!("key not found: {key}");
    };
    match ctx.format {
        Format::Json => print_json(&kv),
        Format::Table => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(kv.value.as_bytes())?;
            // Raw bytes for pipes; a terminal gets its prompt on a new line.
            if stdout.is_terminal() {
                stdout.write_all(b"\n")?;
            }
            stdout.flush()?;
            Ok(())
        }
    }
}

async fn list(ctx: &Ctx, prefix: &str, options: RangeOptions, limit: usize) -> anyhow::Result<()> {
    let keys_only = options.keys_only;
    let answer = ctx.client.range_all(prefix, options, limit).await?;
    match ctx.format {
        Format::Json => print_json(&answer),
        Format::Table => {
            kv_table(&answer.kvs, keys_only).print();
            if answer.more {
                eprintln!("(more keys after {}; raise --limit)", or_dash(answer.next));
            }
            Ok(())
        }
    }
}

fn kv_table(kvs: &[KeyValue], keys_only: bool) -> Table {
    let mut table = if keys_only {
        Table::new(&["KEY", "MOD_REV", "VERSION", "LEASE"])
    } else {
        Table::new(&["KEY", "VALUE", "MOD_REV", "VERSION", "LEASE"])
    };
    for kv in kvs {
        let mut row = vec![kv.key.clone()];
        if !keys_only {
            row.push(show_bytes(kv.value.as_bytes()));
        }
        row.extend([
            kv.mod_revision.to_string(),
            kv.version.to_string(),
            or_dash(kv.lease),
        ]);
        table.row(row);
    }
    table
}

async fn watch(ctx: &Ctx, options: WatchOptions) -> anyhow::Result<()> {
    let with_prev = options.prev_value;
    let mut changes = ctx.client.watch(options)?;
    let mut stdout = std::io::stdout();
    loop {
        let change = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            change = changes.next() => change,
        };
        let Some(change) = change else {
            bail!("the watch ended");
        };
        let change = change?;
        let line = match ctx.format {
            Format::Json => serde_json::to_string(&WatchMessage::from(change))?,
            Format::Table => watch_line(&change, with_prev),
        };
        writeln!(stdout, "{line}")?;
        // Lines must show up at once when piped, e.g. into grep.
        stdout.flush()?;
    }
}

/// `PUT key value rev=N` / `DELETE key rev=N`, with ` prev=V` if asked.
fn watch_line(change: &Change, with_prev: bool) -> String {
    let event = &change.event;
    let mut line = match change.kind {
        EventKind::Put => format!(
            "PUT {} {} rev={}",
            event.key,
            show_bytes(event.value.as_bytes()),
            event.mod_revision
        ),
        EventKind::Delete => format!("DELETE {} rev={}", event.key, event.mod_revision),
    };
    if with_prev {
        let prev = event.prev_value.as_ref().map(|v| show_bytes(v.as_bytes()));
        line.push_str(&format!(" prev={}", or_dash(prev)));
    }
    line
}

async fn txn(ctx: &Ctx, file: Option<PathBuf>) -> anyhow::Result<()> {
    let text = match &file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the transaction from stdin")?;
            text
        }
    };
    let request: TxnRequest =
        serde_json::from_str(&text).context("the transaction is not valid TxnRequest JSON")?;
    let answer = ctx.client.txn(&request).await?;
    match ctx.format {
        Format::Json => print_json(&answer),
        Format::Table => {
            let outcome = if answer.succeeded {
                "SUCCEEDED"
            } else {
                "FAILED"
            };
            println!("{outcome} revision={}", answer.revision);
            for response in &answer.responses {
                match response {
                    TxnOpResponse::Put(put) => println!("put revision={}", put.revision),
                    TxnOpResponse::Delete(del) => println!("delete deleted={}", del.deleted),
                    TxnOpResponse::Get(range) => {
                        println!("get {} key(s)", range.kvs.len());
                        if !range.kvs.is_empty() {
                            kv_table(&range.kvs, false).print();
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use muster_types::Blob;
    use muster_types::watch::WatchEvent;

    use super::*;

    fn event(value: &str, prev: Option<&str>) -> WatchEvent {
        WatchEvent {
            key: "a/b".into(),
            value: Blob::from(value),
            mod_revision: 9,
            create_revision: 3,
            version: 2,
            lease: None,
            prev_value: prev.map(Blob::from),
        }
    }

    #[test]
    fn watch_lines() {
        let put = Change {
            kind: EventKind::Put,
            event: event("v", Some("old")),
        };
        assert_eq!(watch_line(&put, false), "PUT a/b v rev=9");
        assert_eq!(watch_line(&put, true), "PUT a/b v rev=9 prev=old");
        let del = Change {
            kind: EventKind::Delete,
            event: event("", None),
        };
        assert_eq!(watch_line(&del, false), "DELETE a/b rev=9");
        assert_eq!(watch_line(&del, true), "DELETE a/b rev=9 prev=-");
    }

    #[test]
    fn key_tables() {
        let kv = KeyValue {
            key: "k".into(),
            value: Blob::from("v"),
            create_revision: 1,
            mod_revision: 4,
            version: 2,
            lease: Some(77),
        };
        assert_eq!(
            kv_table(std::slice::from_ref(&kv), false).render(),
            "KEY  VALUE  MOD_REV  VERSION  LEASE\nk    v      4        2        77\n"
        );
        assert_eq!(
            kv_table(&[kv], true).render(),
            "KEY  MOD_REV  VERSION  LEASE\nk    4        2        77\n"
        );
    }

    #[test]
    fn get_flags() {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(subcommand)]
            cmd: KvCommand,
        }
        let parsed = Wrapper::try_parse_from(["kv", "get", "k", "--limit", "5"]);
        assert!(parsed.is_err(), "--limit needs --prefix");
        let parsed =
            Wrapper::try_parse_from(["kv", "get", "", "--prefix", "--limit", "5", "--keys-only"])
                .unwrap();
        assert!(matches!(
            parsed.cmd,
            KvCommand::Get {
                prefix: true,
                limit: 5,
                keys_only: true,
                ..
            }
        ));
        let parsed =
            Wrapper::try_parse_from(["kv", "put", "k", "--lease", "0x10", "--prev-revision", "0"])
                .unwrap();
        assert!(matches!(
            parsed.cmd,
            KvCommand::Put {
                value: None,
                lease: Some(16),
                prev_revision: Some(0),
                ..
            }
        ));
    }
}
