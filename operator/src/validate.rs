//! Step 1 of the reconcile: check a `RegistryCluster` and turn it into the
//! settings the builders need. Pure: no API calls, no clock.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};

use crate::crd::{PodTemplateOverrides, RegistryCluster, RegistrySettings, Retention, TlsMode};

/// Image repository used when the spec names only a version.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "ghcr.io/muster-dev/muster";

/// Longest cluster name: pod names (`<name>-6`), the headless Service
/// (`<name>-peer`) and the StatefulSet's revision labels must stay within
/// Kubernetes' 63-character limits.
pub const MAX_NAME_LEN: usize = 40;

/// Labels the operator sets itself; a pod template override may not change
/// them, or the selector would stop matching.
pub const RESERVED_LABEL_PREFIX: &str = "app.kubernetes.io/";

/// Settings of the operator (not of one cluster) that shape what is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSettings {
    /// The cluster's DNS domain (`cluster.local` on most clusters).
    pub cluster_domain: String,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            cluster_domain: "cluster.local".to_string(),
        }
    }
}

/// A `RegistryCluster` that passed validation, with defaults resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCluster {
    pub name: String,
    pub namespace: String,
    /// For owner references.
    pub uid: String,
    pub generation: Option<i64>,
    pub replicas: i32,
    pub version: String,
    pub image: String,
    pub storage: ValidStorage,
    pub resources: Option<ResourceRequirements>,
    pub node_selector: Option<BTreeMap<String, String>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub affinity: Option<Affinity>,
    pub tls: Tls,
    pub settings: RegistrySettings,
    pub overrides: PodTemplateOverrides,
    pub cluster_domain: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidStorage {
    pub size: String,
    pub storage_class_name: Option<String>,
    pub when_deleted: Retention,
    pub when_scaled: Retention,
}

/// Where the certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tls {
    Disabled,
    /// The operator issues them into Secrets it owns.
    OperatorIssued,
    /// The user's Secret.
    Secrets {
        secret: String,
    },
}

impl Tls {
    pub fn enabled(&self) -> bool {
        !matches!(self, Tls::Disabled)
    }
}

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a spec, so the user can fix them in one go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid RegistryCluster: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSpec(pub Vec<FieldError>);

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Checks the resource and resolves its defaults.
pub fn validate(
    cluster: &RegistryCluster,
    operator: &OperatorSettings,
) -> Result<ValidCluster, InvalidSpec> {
    let mut problems = Problems::default();
    let meta = &cluster.metadata;
    let name = meta.name.clone().unwrap_or_default();
    check_name(&name, &mut problems);
    let namespace = meta.namespace.clone().unwrap_or_default();
    if namespace.is_empty() {
        problems.add("metadata.namespace", "must be set");
    }
    let uid = meta.uid.clone().unwrap_or_default();
    if uid.is_empty() {
        problems.add(
            "metadata.uid",
            "must be set (the resource must come from the API server)",
        );
    }
    let spec = &cluster.spec;
    if ![1, 3, 5, 7].contains(&spec.replicas) {
        problems.add(
            "spec.replicas",
            format!("must be 1, 3, 5 or 7, not {}", spec.replicas),
        );
    }
    let version = spec.version.trim().to_string();
    if version.is_empty() || !version.chars().all(is_tag_char) {
        problems.add(
            "spec.version",
            format!("{version:?} is not an image tag (letters, digits, '.', '_', '-')"),
        );
    }
    let image = match &spec.image {
        Some(image) if image.trim().is_empty() || image.chars().any(char::is_whitespace) => {
            problems.add("spec.image", format!("{image:?} is not an image reference"));
            String::new()
        }
        Some(image) => image.clone(),
        None => format!("{DEFAULT_IMAGE_REPOSITORY}:{version}"),
    };
    if !is_quantity(&spec.storage.size) {
        problems.add(
            "spec.storage.size",
            format!("{:?} is not a quantity such as 10Gi", spec.storage.size),
        );
    }
    let settings = spec.settings.clone();
    if settings.heartbeat_interval_ms == 0 {
        problems.add("spec.settings.heartbeatIntervalMs", "must be positive");
    }
    if settings.election_timeout_ms <= settings.heartbeat_interval_ms {
        problems.add(
            "spec.settings.electionTimeoutMs",
            format!(
                "{} must exceed heartbeatIntervalMs ({})",
                settings.election_timeout_ms, settings.heartbeat_interval_ms
            ),
        );
    }
    if settings.snapshot_every == 0 {
        problems.add("spec.settings.snapshotEvery", "must be positive");
    }
    let tls = check_tls(&spec.tls, &mut problems);
    check_overrides(&spec.pod_template, &mut problems);
    if !problems.0.is_empty() {
        return Err(InvalidSpec(problems.0));
    }
    Ok(ValidCluster {
        name,
        namespace,
        uid,
        generation: meta.generation,
        replicas: spec.replicas,
        version,
        image,
        storage: ValidStorage {
            size: spec.storage.size.clone(),
            storage_class_name: spec.storage.storage_class_name.clone(),
            when_deleted: spec.storage.retention.when_deleted,
            when_scaled: spec.storage.retention.when_scaled,
        },
        resources: spec.resources.clone(),
        node_selector: spec.scheduling.node_selector.clone(),
        tolerations: spec.scheduling.tolerations.clone(),
        affinity: spec.scheduling.affinity.clone(),
        tls,
        settings,
        overrides: spec.pod_template.clone(),
        cluster_domain: operator.cluster_domain.clone(),
    })
}

fn check_name(name: &str, problems: &mut Problems) {
    let label_like = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-');
    if !label_like {
        problems.add(
            "metadata.name",
            format!("{name:?} must be lower-case letters, digits and '-', starting with a letter"),
        );
    } else if name.len() > MAX_NAME_LEN {
        problems.add(
            "metadata.name",
            format!("{name:?} is longer than {MAX_NAME_LEN} characters"),
        );
    }
}

fn check_tls(tls: &crate::crd::TlsSpec, problems: &mut Problems) -> Tls {
    match tls.mode {
        TlsMode::Disabled | TlsMode::OperatorIssued if tls.secret_name.is_some() => {
            problems.add("spec.tls.secretName", "is only used with mode: Secrets");
            Tls::Disabled
        }
        TlsMode::Disabled => Tls::Disabled,
        TlsMode::OperatorIssued => Tls::OperatorIssued,
        TlsMode::Secrets => match &tls.secret_name {
            Some(secret) if !secret.is_empty() => Tls::Secrets {
                secret: secret.clone(),
            },
            _ => {
                problems.add("spec.tls.secretName", "is required with mode: Secrets");
                Tls::Disabled
            }
        },
    }
}

fn check_overrides(overrides: &PodTemplateOverrides, problems: &mut Problems) {
    for key in overrides.labels.keys() {
        if key.starts_with(RESERVED_LABEL_PREFIX) {
            problems.add(
                format!("spec.podTemplate.labels[{key}]"),
                format!("labels under {RESERVED_LABEL_PREFIX} are set by the operator"),
            );
        }
    }
    for var in &overrides.env {
        if var.name.starts_with("MUSTER_") || var.name == crate::build::POD_NAME_ENV {
            problems.add(
                format!("spec.podTemplate.env[{}]", var.name),
                "MUSTER_* and POD_NAME are set by the operator",
            );
        }
    }
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// A Kubernetes quantity as used for volume sizes: a decimal number and an
/// optional binary or decimal suffix.
fn is_quantity(text: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suffix| {
        text.strip_suffix(suffix).is_some_and(|number| {
            let mut parts = number.splitn(2, '.');
            let whole = parts.next().unwrap_or_default();
            let fraction = parts.next();
            !whole.is_empty()
                && whole.chars().all(|c| c.is_ascii_digit())
                && fraction.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
        })
    })
}
