//! `muster lease`: leases.

use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Subcommand;
use muster_types::LeaseId;
use muster_types::error::ErrorCode;
use muster_types::lease::LeaseInfo;

use crate::Ctx;
use crate::output::{Format, Table, print_json};

#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Grant a lease of TTL seconds.
    Grant {
        ttl: i64,
        /// Ask for this id instead of letting the leader pick one.
        #[arg(long, value_parser = parse_lease_id)]
        id: Option<LeaseId>,
    },
    /// Renew a lease every TTL/3 until Ctrl-C or the lease is lost.
    Keepalive {
        #[arg(value_parser = parse_lease_id)]
        id: LeaseId,
        /// Renew once and exit.
        #[arg(long)]
        once: bool,
    },
    /// Revoke a lease, deleting its keys.
    Revoke {
        #[arg(value_parser = parse_lease_id)]
        id: LeaseId,
    },
    /// Show a lease's TTL and keys.
    Show {
        #[arg(value_parser = parse_lease_id)]
        id: LeaseId,
    },
    /// List all leases.
    List,
}

impl LeaseCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<()> {
        match self {
            LeaseCommand::Grant { ttl, id } => {
                let answer = ctx.client.lease_grant(ttl, id).await?;
                match ctx.format {
                    Format::Json => print_json(&answer),
                    Format::Table => {
                        println!("lease {} granted with TTL {}s", answer.id, answer.ttl);
                        Ok(())
                    }
                }
            }
            LeaseCommand::Keepalive { id, once } => keepalive(ctx, id, once).await,
            LeaseCommand::Revoke { id } => {
                let answer = ctx.client.lease_revoke(id).await?;
                match ctx.format {
                    Format::Json => print_json(&answer),
                    Format::Table => {
                        println!(
                            "lease {id} revoked, {} key(s) deleted, revision={}",
                            answer.deleted, answer.revision
                        );
                        Ok(())
                    }
                }
            }
            LeaseCommand::Show { id } => {
                let info = ctx.client.lease_info(id).await?;
                match ctx.format {
                    Format::Json => print_json(&info),
                    Format::Table => {
                        lease_table(std::slice::from_ref(&info), true).print();
                        Ok(())
                    }
                }
            }
            LeaseCommand::List => {
                let list = ctx.client.lease_list().await?;
                match ctx.format {
                    Format::Json => print_json(&list),
                    Format::Table => {
                        lease_table(&list.leases, false).print();
                        Ok(())
                    }
                }
            }
        }
    }
}

/// One row per lease; `key_names` lists the keys, otherwise counts them.
fn lease_table(leases: &[LeaseInfo], key_names: bool) -> Table {
    let mut table = Table::new(&["ID", "TTL", "GRANTED", "KEYS"]);
    for lease in leases {
        let keys = if key_names {
            lease.keys.join(",")
        } else {
            lease.keys.len().to_string()
        };
        table.row(vec![
            lease.id.to_string(),
            lease.ttl.to_string(),
            lease.granted_ttl.to_string(),
            keys,
        ]);
    }
    table
}

async fn keepalive(ctx: &Ctx, id: LeaseId, once: bool) -> anyhow::Result<()> {
    let mut ttl = Duration::from_secs(1);
    let mut last_renewal = Instant::now();
    loop {
        match ctx.client.lease_keepalive(id).await {
            Ok(answer) => {
                ttl = Duration::from_secs(answer.ttl.max(1).unsigned_abs());
                last_renewal = Instant::now();
                match ctx.format {
                    Format::Json => println!("{}", serde_json::to_string(&answer)?),
                    Format::Table => println!("lease {id} kept alive, TTL {}s", answer.ttl),
                }
            }
            Err(err) if err.code() == Some(ErrorCode::LeaseNotFound) => {
                bail!("lease {id} is gone (expired or revoked)")
            }
            // Other failures may pass (an election); give up once the lease
            // must have expired.
            Err(err) if !once && last_renewal.elapsed() < ttl => {
                eprintln!("warning: renewing lease {id}: {err}");
            }
            Err(err) => return Err(err.into()),
        }
        if once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(renew_interval(ttl)) => {}
        }
    }
}

/// A third of the TTL, so two renewals can fail before the lease expires.
fn renew_interval(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(100))
}

/// A lease id in decimal, or hex with a `0x` prefix (as etcd prints them).
pub fn parse_lease_id(text: &str) -> Result<LeaseId, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => LeaseId::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("'{text}' is not a lease id (decimal, or hex with 0x)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids() {
        assert_eq!(parse_lease_id("42"), Ok(42));
        assert_eq!(parse_lease_id("0x2a"), Ok(42));
        assert_eq!(parse_lease_id("0X2A"), Ok(42));
        assert!(parse_lease_id("-1").is_err());
        assert!(
            parse_lease_id("0xzz")
                .unwrap_err()
                .contains("not a lease id")
        );
    }

    #[test]
    fn renewal_interval() {
        assert_eq!(
            renew_interval(Duration::from_secs(9)),
            Duration::from_secs(3)
        );
        assert_eq!(
            renew_interval(Duration::from_secs(60)),
            Duration::from_secs(20)
        );
        assert_eq!(
            renew_interval(Duration::from_millis(200)),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn lease_rows() {
        let info = LeaseInfo {
            id: 5,
            granted_ttl: 30,
            ttl: 12,
            keys: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            lease_table(std::slice::from_ref(&info), true).render(),
            "ID  TTL  GRANTED  KEYS\n5   12   30       a,b\n"
        );
        assert_eq!(
            lease_table(&[info], false).render(),
            "ID  TTL  GRANTED  KEYS\n5   12   30       2\n"
        );
    }
}
