//! The config center against real `muster server` processes: format
//! validation, history and rollback, gray releases, listeners and watches,
//! through the Rust client, plain HTTP and the CLI.

#[path = "../common/mod.rs"]
mod util;

mod cli;
mod cluster;
mod single;

use std::time::Duration;

use muster_client::Client;

use crate::util::{Api, Node, wait_until};

/// This target's port range.
pub const PORTS: (u16, u16) = (26000, 26999);

/// A started single node with these extra flags, ready, and a client on it.
async fn single_node(name: &str, extra_args: &[&str]) -> (Node, Client) {
    let node = Node::single(name, extra_args);
    let api = Api::new();
    let url = node.client_url();
    wait_until(
        Duration::from_secs(15),
        "the node to be ready",
        async || api.ready(&url).await,
    )
    .await;
    let client = Client::new([url]).expect("a client");
    (node, client)
}
