//! Where the typed layers keep their objects in the one keyspace. Every
//! key is under `muster_types::limits::RESERVED_PREFIX`, which the KV API
//! does not write.

use muster_types::limits::RESERVED_PREFIX;

pub fn namespace(ns: &str) -> String {
    format!("{RESERVED_PREFIX}ns/{ns}")
}

pub fn namespaces_prefix() -> String {
    format!("{RESERVED_PREFIX}ns/")
}

/// A service's settings (metadata, protection threshold).
pub fn service(ns: &str, service: &str) -> String {
    format!("{RESERVED_PREFIX}svc/{ns}/{service}")
}

pub fn services_prefix(ns: &str) -> String {
    format!("{RESERVED_PREFIX}svc/{ns}/")
}

pub fn instance(ns: &str, service: &str, id: &str) -> String {
    format!("{RESERVED_PREFIX}inst/{ns}/{service}/{id}")
}

/// Every instance of one service.
pub fn instances_prefix(ns: &str, service: &str) -> String {
    format!("{RESERVED_PREFIX}inst/{ns}/{service}/")
}

/// Every instance in a namespace.
pub fn namespace_instances_prefix(ns: &str) -> String {
    format!("{RESERVED_PREFIX}inst/{ns}/")
}

/// Every instance of every namespace (the health sweeper's range).
pub fn all_instances_prefix() -> String {
    format!("{RESERVED_PREFIX}inst/")
}

pub fn config(ns: &str, group: &str, data_id: &str) -> String {
    format!("{RESERVED_PREFIX}cfg/{ns}/{group}/{data_id}")
}

/// Every config item of a namespace.
pub fn config_namespace_prefix(ns: &str) -> String {
    format!("{RESERVED_PREFIX}cfg/{ns}/")
}

pub fn config_group_prefix(ns: &str, group: &str) -> String {
    format!("{RESERVED_PREFIX}cfg/{ns}/{group}/")
}

/// Every config item of every namespace (the config listener's range).
pub fn all_configs_prefix() -> String {
    format!("{RESERVED_PREFIX}cfg/")
}

/// One published version; zero-padded so history lists in version order.
pub fn config_version(ns: &str, group: &str, data_id: &str, version: u64) -> String {
    format!("{RESERVED_PREFIX}cfgh/{ns}/{group}/{data_id}/{version:020}")
}

pub fn config_history_prefix(ns: &str, group: &str, data_id: &str) -> String {
    format!("{RESERVED_PREFIX}cfgh/{ns}/{group}/{data_id}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_under_the_reserved_prefix_and_prefixes_nest() {
        let key = instance("default", "web", "pod-1");
        assert_eq!(key, "_muster/inst/default/web/pod-1");
        assert!(key.starts_with(&instances_prefix("default", "web")));
        assert!(!instance("default", "web2", "x").starts_with(&instances_prefix("default", "web")));
        assert!(config_version("d", "g", "app.yaml", 7).ends_with("/00000000000000000007"));
    }
}
