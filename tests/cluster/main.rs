//! Multi-process cluster tests: three (or four) `muster server` processes
//! on loopback, killed with SIGKILL, restarted, wiped.

#[path = "../common/mod.rs"]
mod util;

mod durability;
mod failover;
mod lease;
mod membership;
mod recovery;
mod replace;
mod replication;
mod snapshot;
mod tls;
mod watch;
mod wiped;

/// This target's port range.
pub const PORTS: (u16, u16) = (21000, 22999);
