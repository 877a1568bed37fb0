//! Service catalog tests on real `muster server` processes: ephemeral and
//! persistent instances across a cluster, health damping and the leader's
//! sweeper, discovery filters and protection, blocking queries,
//! subscriptions across a leader failover, and refusals of bad input.

#[path = "../common/mod.rs"]
mod util;

mod discovery;
mod ephemeral;
mod health;
mod subscribe;

use muster_types::catalog::{Discovery, Instance};
use reqwest::Method;
use serde_json::Value;

use crate::util::{Answer, Api};

/// This target's port range.
pub const PORTS: (u16, u16) = (25000, 25999);

pub fn instance_url(base: &str, ns: &str, service: &str, id: &str) -> String {
    format!("{base}/v1/services/{ns}/{service}/instances/{id}")
}

/// PUTs an instance spec; the raw answer.
pub async fn register(api: &Api, base: &str, service: &str, id: &str, spec: &Value) -> Answer {
    let url = instance_url(base, "default", service, id);
    api.call(Method::PUT, &url, Some(serde_json::to_vec(spec).unwrap()))
        .await
        .unwrap_or_else(|err| panic!("register {service}/{id}: {err}"))
}

/// Registers and insists on success.
pub async fn register_ok(api: &Api, base: &str, service: &str, id: &str, spec: &Value) -> Instance {
    let answer = register(api, base, service, id, spec).await;
    assert_eq!(answer.status, 200, "register {service}/{id}: {answer:?}");
    answer.json()
}

/// A discovery query (`query` is the query string) that must succeed.
pub async fn discover(api: &Api, base: &str, service: &str, query: &str) -> Discovery {
    let url = util::with_query(&format!("{base}/v1/services/default/{service}"), query);
    let answer = api.get(&url).await.unwrap();
    assert_eq!(answer.status, 200, "discover {url}: {answer:?}");
    answer.json()
}

/// The ids a discovery answer lists, in order.
pub fn ids(discovery: &Discovery) -> Vec<String> {
    discovery.instances.iter().map(|i| i.id.clone()).collect()
}
