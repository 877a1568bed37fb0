//! Which instances a discovery query returns.
//!
//! - Drained instances (`enabled: false`) are never returned.
//! - `tag` filters (all must be present), `zone` and `metadata` (`k:v`, all
//!   must match) pick the *candidates* among the enabled instances.
//! - The health filter (default: `passing`) keeps the candidates whose
//!   status it accepts.
//! - Protection threshold (Nacos): when there are candidates and the share
//!   the health filter accepts is below the service's threshold, every
//!   candidate is returned instead, and the answer says so; this keeps a
//!   few healthy instances from taking all the traffic. With `healthy=all`
//!   the share is 1, so it never triggers; a threshold of 0 never does.

use std::time::Duration;

use muster_types::catalog::{HealthCounts, HealthStatus, Instance};

/// Longest a blocking query waits.
pub const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long a blocking query waits when `wait` is not given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The statuses a query accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthFilter {
    pub passing: bool,
    pub warning: bool,
    pub critical: bool,
}

impl Default for HealthFilter {
    /// Only passing instances, as Consul's `?passing`.
    fn default() -> Self {
        HealthFilter {
            passing: true,
            warning: false,
            critical: false,
        }
    }
}

impl HealthFilter {
    pub const ALL: HealthFilter = HealthFilter {
        passing: true,
        warning: true,
        critical: true,
    };

    /// `passing`, `passing,warning`, ... or `all`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut filter = HealthFilter {
            passing: false,
            warning: false,
            critical: false,
        };
        for word in text.split(',').map(str::trim) {
            match word {
                "all" => filter = HealthFilter::ALL,
                "passing" => filter.passing = true,
                "warning" => filter.warning = true,
                "critical" => filter.critical = true,
                other => {
                    return Err(format!(
                        "healthy takes passing, warning, critical (comma separated) or all, not {other:?}"
                    ));
                }
            }
        }
        Ok(filter)
    }

    pub fn accepts(&self, status: HealthStatus) -> bool {
        match status {
            HealthStatus::Passing => self.passing,
            HealthStatus::Warning => self.warning,
            HealthStatus::Critical => self.critical,
        }
    }
}

/// A discovery query's filters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub healthy: HealthFilter,
    /// Every one must be among the instance's tags.
    pub tags: Vec<String>,
    pub zone: Option<String>,
    /// Every pair must be in the instance's metadata.
    pub metadata: Vec<(String, String)>,
}

impl Filter {
    /// Whether an instance is a candidate (enabled and matching tags, zone
    /// and metadata), whatever its health.
    pub fn is_candidate(&self, instance: &Instance) -> bool {
        instance.enabled
            && self.tags.iter().all(|tag| instance.tags.contains(tag))
            && self
                .zone
                .as_ref()
                .is_none_or(|zone| instance.zone.as_ref() == Some(zone))
            && self
                .metadata
                .iter()
                .all(|(key, value)| instance.metadata.get(key) == Some(value))
    }
}

/// `key:value` (the value may contain ':').
pub fn parse_metadata(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("metadata takes key:value, not {text:?}")),
    }
}

/// A blocking query's `wait`: `500ms`, `5s`, `2m`, or plain seconds;
/// longer than [`MAX_WAIT`] is cut to it (as Consul does).
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("wait takes a duration like 500ms, 5s or 2m, not {text:?}");
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: u64 = number.parse().map_err(|_| bad())?;
    let wait = match unit {
        "ms" => Duration::from_millis(value),
        "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value.saturating_mul(60)),
        _ => return Err(bad()),
    };
    Ok(wait.min(MAX_WAIT))
}

/// What discovery returns.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub instances: Vec<Instance>,
    pub protection_triggered: bool,
}

/// Applies the filters and the protection threshold (see the module doc).
pub fn select(instances: Vec<Instance>, filter: &Filter, protection_threshold: f64) -> Selection {
    let candidates: Vec<Instance> = instances
        .into_iter()
        .filter(|instance| filter.is_candidate(instance))
        .collect();
    let accepted = candidates
        .iter()
        .filter(|instance| filter.healthy.accepts(instance.health.status))
        .count();
    let share_too_low = !candidates.is_empty()
        && (accepted as f64) / (candidates.len() as f64) < protection_threshold;
    if share_too_low {
        return Selection {
            instances: candidates,
            protection_triggered: true,
        };
    }
    Selection {
        instances: candidates
            .into_iter()
            .filter(|instance| filter.healthy.accepts(instance.health.status))
            .collect(),
        protection_triggered: false,
    }
}

/// Counts by health; drained instances count as disabled only.
pub fn count(instances: &[Instance]) -> HealthCounts {
    let mut counts = HealthCounts::default();
    for instance in instances {
        let slot = match (instance.enabled, instance.health.status) {
            (false, _) => &mut counts.disabled,
            (true, HealthStatus::Passing) => &mut counts.passing,
            (true, HealthStatus::Warning) => &mut counts.warning,
            (true, HealthStatus::Critical) => &mut counts.critical,
        };
        *slot += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use muster_types::catalog::InstanceHealth;

    use super::*;

    fn instance(id: &str, status: HealthStatus) -> Instance {
        Instance {
            namespace: "default".into(),
            service: "web".into(),
            id: id.into(),
            address: "10.0.0.1".into(),
            port: 80,
            weight: 100,
            tags: Vec::new(),
            metadata: BTreeMap::new(),
            zone: None,
            enabled: true,
            ephemeral: false,
            lease: None,
            health: InstanceHealth {
                status,
                ..InstanceHealth::default()
            },
            check: None,
            revision: 1,
        }
    }

    fn ids(selection: &Selection) -> Vec<&str> {
        selection.instances.iter().map(|i| i.id.as_str()).collect()
    }

    #[test]
    fn health_filter_parses_lists_and_all() {
        assert_eq!(
            HealthFilter::parse("passing").unwrap(),
            HealthFilter::default()
        );
        let wide = HealthFilter::parse("passing,warning").unwrap();
        assert!(wide.accepts(HealthStatus::Warning) && !wide.accepts(HealthStatus::Critical));
        assert_eq!(HealthFilter::parse("all").unwrap(), HealthFilter::ALL);
        assert!(
            HealthFilter::parse("healthy")
                .unwrap_err()
                .contains("\"healthy\"")
        );
    }

    #[test]
    fn default_returns_passing_enabled_instances_only() {
        let mut drained = instance("d", HealthStatus::Passing);
        drained.enabled = false;
        let all = vec![
            instance("a", HealthStatus::Passing),
            instance("b", HealthStatus::Warning),
            instance("c", HealthStatus::Critical),
            drained,
        ];
        let selection = select(all.clone(), &Filter::default(), 0.0);
        assert_eq!(ids(&selection), ["a"]);
        assert!(!selection.protection_triggered);
        let everything = Filter {
            healthy: HealthFilter::ALL,
            ..Filter::default()
        };
        // Drained instances are never returned, even with healthy=all.
        assert_eq!(ids(&select(all, &everything, 0.0)), ["a", "b", "c"]);
    }

    #[test]
    fn tags_zone_and_metadata_must_all_match() {
        let mut a = instance("a", HealthStatus::Passing);
        a.tags = vec!["v2".into(), "canary".into()];
        a.zone = Some("eu-1".into());
        a.metadata.insert("version".into(), "2".into());
        let mut b = instance("b", HealthStatus::Passing);
        b.tags = vec!["v2".into()];
        b.zone = Some("us-1".into());
        let all = vec![a, b];
        let by = |filter: Filter| ids(&select(all.clone(), &filter, 0.0)).join(",");
        let tags = |tags: &[&str]| Filter {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Filter::default()
        };
        assert_eq!(by(tags(&["v2"])), "a,b");
        assert_eq!(by(tags(&["v2", "canary"])), "a");
        assert_eq!(by(tags(&["v3"])), "");
        assert_eq!(
            by(Filter {
                zone: Some("us-1".into()),
                ..Filter::default()
            }),
            "b"
        );
        assert_eq!(
            by(Filter {
                metadata: vec![("version".into(), "2".into())],
                ..Filter::default()
            }),
            "a"
        );
        assert_eq!(
            by(Filter {
                metadata: vec![("version".into(), "3".into())],
                ..Filter::default()
            }),
            ""
        );
    }

    #[test]
    fn protection_threshold_returns_every_enabled_candidate() {
        let all = vec![
            instance("a", HealthStatus::Passing),
            instance("b", HealthStatus::Critical),
            instance("c", HealthStatus::Critical),
        ];
        // 1 of 3 healthy is below 0.5: all three come back.
        let protected = select(all.clone(), &Filter::default(), 0.5);
        assert!(protected.protection_triggered);
        assert_eq!(ids(&protected), ["a", "b", "c"]);
        // 1/3 is not below 0.3.
        let normal = select(all.clone(), &Filter::default(), 0.3);
        assert!(!normal.protection_triggered);
        assert_eq!(ids(&normal), ["a"]);
        // With healthy=all the share is 1.
        let everything = Filter {
            healthy: HealthFilter::ALL,
            ..Filter::default()
        };
        assert!(!select(all, &everything, 1.0).protection_triggered);
        // No candidates, no protection.
        assert!(!select(Vec::new(), &Filter::default(), 1.0).protection_triggered);
    }

    #[test]
    fn counts_put_drained_instances_apart() {
        let mut drained = instance("d", HealthStatus::Critical);
        drained.enabled = false;
        let counts = count(&[
            instance("a", HealthStatus::Passing),
            instance("b", HealthStatus::Warning),
            drained,
        ]);
        assert_eq!(
            counts,
            HealthCounts {
                passing: 1,
                warning: 1,
                critical: 0,
                disabled: 1
            }
        );
    }

    #[test]
    fn metadata_and_wait_parse() {
        assert_eq!(
            parse_metadata("url:http://x").unwrap(),
            ("url".to_owned(), "http://x".to_owned())
        );
        assert!(parse_metadata(":v").is_err());
        assert!(parse_metadata("novalue").is_err());
        assert_eq!(parse_wait("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_wait("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_wait("7").unwrap(), Duration::from_secs(7));
        assert_eq!(
            parse_wait("1h").unwrap_err(),
            "wait takes a duration like 500ms, 5s or 2m, not \"1h\""
        );
        assert_eq!(parse_wait("60m").unwrap(), MAX_WAIT);
        assert!(parse_wait("soon").is_err());
    }
}
