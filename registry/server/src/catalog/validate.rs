//! Input checks of the catalog's requests; each error names the field.

use muster_catalog::health::validate_check;
use muster_types::catalog::{HealthReport, InstanceSpec, Namespace, ServiceSpec};
use muster_types::limits::{MAX_LEASE_TTL_SECS, MIN_LEASE_TTL_SECS};

use super::check_name;
use crate::http::error::{ApiError, ApiResult};

pub const MAX_WEIGHT: u32 = 10_000;
pub const MAX_TAGS: usize = 64;
pub const MAX_METADATA_ENTRIES: usize = 64;
pub const MAX_TEXT_BYTES: usize = 1024;
pub const MAX_ADDRESS_BYTES: usize = 255;
pub const MAX_OUTPUT_BYTES: usize = 4096;

fn text(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} is {} bytes, the limit is {max}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

fn metadata<'a>(
    field: &str,
    entries: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> ApiResult<()> {
    if entries.len() > MAX_METADATA_ENTRIES {
        return Err(ApiError::invalid(
            field,
            format!("at most {MAX_METADATA_ENTRIES} metadata entries"),
        ));
    }
    for (key, value) in entries {
        if key.is_empty() {
            return Err(ApiError::invalid(field, "metadata keys must not be empty"));
        }
        text(field, key, 128)?;
        text(field, value, MAX_TEXT_BYTES)?;
    }
    Ok(())
}

pub fn instance(spec: &InstanceSpec) -> ApiResult<()> {
    if spec.address.trim().is_empty() {
        return Err(ApiError::invalid("address", "address must not be empty"));
    }
    text("address", &spec.address, MAX_ADDRESS_BYTES)?;
    if spec.address.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            "address",
            "address must not contain spaces",
        ));
    }
    if spec.port == 0 {
        return Err(ApiError::invalid("port", "port must be 1-65535"));
    }
    if spec.weight > MAX_WEIGHT {
        return Err(ApiError::invalid(
            "weight",
            format!("weight must be between 0 and {MAX_WEIGHT}"),
        ));
    }
    if spec.tags.len() > MAX_TAGS {
        return Err(ApiError::invalid(
            "tags",
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    for tag in &spec.tags {
        if tag.is_empty() {
            return Err(ApiError::invalid("tags", "tags must not be empty"));
        }
        text("tags", tag, 128)?;
    }
    metadata("metadata", spec.metadata.iter())?;
    if let Some(zone) = &spec.zone {
        check_name("zone", zone)?;
    }
    match (spec.ephemeral, spec.ttl, spec.lease) {
        (false, None, None) => {}
        (false, _, _) => {
            return Err(ApiError::invalid(
                "ephemeral",
                "ttl and lease apply to ephemeral instances; set ephemeral: true",
            ));
        }
        (true, None, None) => {
            return Err(ApiError::invalid(
                "ttl",
                "an ephemeral instance needs a ttl (seconds) or an existing lease",
            ));
        }
        (true, Some(_), Some(_)) => {
            return Err(ApiError::invalid("lease", "give ttl or lease, not both"));
        }
        (true, Some(ttl), None) => {
            if !(MIN_LEASE_TTL_SECS..=MAX_LEASE_TTL_SECS).contains(&ttl) {
                return Err(ApiError::invalid(
                    "ttl",
                    format!(
                        "ttl must be between {MIN_LEASE_TTL_SECS} and {MAX_LEASE_TTL_SECS} seconds"
                    ),
                ));
            }
        }
        (true, None, Some(0)) => {
            return Err(ApiError::invalid("lease", "lease id 0 means no lease"));
        }
        (true, None, Some(_)) => {}
    }
    if let Some(check) = &spec.check {
        validate_check(check).map_err(|err| ApiError::invalid(err.field, err.message))?;
    }
    Ok(())
}

pub fn service(spec: &ServiceSpec) -> ApiResult<()> {
    if !(0.0..=1.0).contains(&spec.protection_threshold) {
        return Err(ApiError::invalid(
            "protection_threshold",
            "protection_threshold must be between 0 and 1",
        ));
    }
    metadata("metadata", spec.metadata.iter())
}

pub fn report(report: &HealthReport) -> ApiResult<()> {
    if report.output.len() > MAX_OUTPUT_BYTES {
        return Err(ApiError::invalid(
            "output",
            format!("output is at most {MAX_OUTPUT_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub fn namespace(namespace: &Namespace) -> ApiResult<()> {
    check_name("name", &namespace.name)?;
    if namespace.description.len() > MAX_TEXT_BYTES {
        return Err(ApiError::invalid(
            "description",
            format!("description is at most {MAX_TEXT_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use muster_types::catalog::CheckSpec;

    use super::*;

    fn spec() -> InstanceSpec {
        serde_json::from_str(r#"{"address": "10.0.0.5", "port": 8080}"#).unwrap()
    }

    fn field(result: ApiResult<()>) -> String {
        result.unwrap_err().0.field.unwrap_or_default()
    }

    #[test]
    fn a_minimal_spec_is_persistent_enabled_and_valid() {
        let spec = spec();
        assert!(spec.enabled && !spec.ephemeral);
        assert_eq!(spec.weight, 100);
        assert!(instance(&spec).is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = |change: fn(&mut InstanceSpec)| {
            let mut spec = spec();
            change(&mut spec);
            field(instance(&spec))
        };
        assert_eq!(bad(|s| s.address = " ".into()), "address");
        assert_eq!(bad(|s| s.address = "a b".into()), "address");
        assert_eq!(bad(|s| s.port = 0), "port");
        assert_eq!(bad(|s| s.weight = 10_001), "weight");
        assert_eq!(bad(|s| s.tags = vec![String::new()]), "tags");
        assert_eq!(
            bad(|s| {
                s.metadata.insert(String::new(), "v".into());
            }),
            "metadata"
        );
        assert_eq!(bad(|s| s.zone = Some("eu/1".into())), "zone");
        assert_eq!(bad(|s| s.ttl = Some(10)), "ephemeral");
        assert_eq!(bad(|s| s.ephemeral = true), "ttl");
        assert_eq!(
            bad(|s| {
                s.ephemeral = true;
                s.ttl = Some(0);
            }),
            "ttl"
        );
        assert_eq!(
            bad(|s| {
                s.ephemeral = true;
                s.ttl = Some(5);
                s.lease = Some(9);
            }),
            "lease"
        );
        assert_eq!(
            bad(|s| {
                s.check = Some(CheckSpec {
                    ttl: 0,
                    successes_before_passing: 1,
                    failures_before_critical: 1,
                    deregister_critical_after: None,
                })
            }),
            "check.ttl"
        );
    }

    #[test]
    fn threshold_must_be_a_share() {
        let threshold = |t| {
            service(&ServiceSpec {
                protection_threshold: t,
                ..ServiceSpec::default()
            })
        };
        assert!(threshold(0.0).is_ok() && threshold(1.0).is_ok());
        assert_eq!(field(threshold(1.5)), "protection_threshold");
        assert_eq!(field(threshold(-0.1)), "protection_threshold");
    }
}
