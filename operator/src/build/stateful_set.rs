//! The StatefulSet of `muster server` pods.
//!
//! Pods are created in parallel (a new cluster needs all of its members up
//! to elect a leader) and replaced only when the operator deletes them
//! (`OnDelete`): the upgrade order is the operator's, not the StatefulSet
//! controller's.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapEnvSource, Container, ContainerPort, EnvFromSource, EnvVar,
    EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::tls::secret_name;
use super::{
    ANNOTATION_SETTINGS_HASH, BINARY, CLIENT_PORT, DATA_DIR, DNS_PORT, LABEL_VERSION, PEER_PORT,
    POD_NAME_ENV, RUN_AS, Shape, TLS_DIR, config_map_name, labels, owned_meta, peer_service_name,
    pod_host, scheme, selector_labels, settings_hash,
};
use crate::validate::ValidCluster;

const DATA_VOLUME: &str = "data";
const TLS_VOLUME: &str = "tls";

pub fn stateful_set(cluster: &ValidCluster, shape: Shape) -> StatefulSet {
    StatefulSet {
        metadata: owned_meta(cluster, cluster.name.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(shape.pods),
            service_name: Some(peer_service_name(cluster)),
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(cluster)),
                ..LabelSelector::default()
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(cluster.storage.when_deleted.as_str().to_string()),
                    when_scaled: Some(cluster.storage.when_scaled.as_str().to_string()),
                },
            ),
            template: pod_template(cluster),
            volume_claim_templates: Some(vec![volume_claim(cluster)]),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn pod_template(cluster: &ValidCluster) -> PodTemplateSpec {
    // User labels first, so the operator's win on a clash.
    let mut pod_labels = cluster.overrides.labels.clone();
    pod_labels.extend(labels(cluster));
    pod_labels.insert(LABEL_VERSION.to_string(), cluster.version.clone());
    let mut annotations = cluster.overrides.annotations.clone();
    annotations.insert(ANNOTATION_SETTINGS_HASH.to_string(), settings_hash(cluster));
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container(cluster)],
            volumes: tls_volumes(cluster),
            affinity: Some(
                cluster
                    .affinity
                    .clone()
                    .unwrap_or_else(|| spread_across_nodes(cluster)),
            ),
            node_selector: cluster.node_selector.clone(),
            tolerations: cluster.tolerations.clone(),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            // Raft needs no longer: a stopped member is simply not heard from.
            termination_grace_period_seconds: Some(30),
            enable_service_links: Some(false),
            ..PodSpec::default()
        }),
    }
}

/// Prefer one member per node: losing a node then costs one vote.
fn spread_across_nodes(cluster: &ValidCluster) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        topology_key: "kubernetes.io/hostname".to_string(),
                        label_selector: Some(LabelSelector {
                            match_labels: Some(selector_labels(cluster)),
                            ..LabelSelector::default()
                        }),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

/// The arguments of `muster server`. Everything that is the same for all
/// pods comes from the ConfigMap; what differs per pod is derived from the
/// pod's name, which Kubernetes substitutes for `$(POD_NAME)`.
pub fn server_args(cluster: &ValidCluster) -> Vec<String> {
    let host = pod_host(cluster, &format!("$({POD_NAME_ENV})"));
    let scheme = scheme(cluster);
    let mut args = vec![
        "server".to_string(),
        format!("--name=$({POD_NAME_ENV})"),
        format!("--advertise-client={scheme}://{host}:{CLIENT_PORT}"),
        format!("--advertise-peer={scheme}://{host}:{PEER_PORT}"),
    ];
    if cluster.tls.enabled() {
        // One certificate serves both ports; with the CA the peer port
        // requires client certificates (mutual TLS between members).
        args.extend([
            format!("--cert-file={TLS_DIR}/tls.crt"),
            format!("--key-file={TLS_DIR}/tls.key"),
            format!("--trusted-ca-file={TLS_DIR}/ca.crt"),
        ]);
    }
    if cluster.settings.dns {
        args.push(format!("--listen-dns=0.0.0.0:{DNS_PORT}"));
    }
    args
}

fn container(cluster: &ValidCluster) -> Container {
    let mut env = vec![EnvVar {
        name: POD_NAME_ENV.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }];
    env.extend(cluster.overrides.env.iter().cloned());
    let mut ports = vec![
        container_port("client", CLIENT_PORT, "TCP"),
        container_port("peer", PEER_PORT, "TCP"),
    ];
    if cluster.settings.dns {
        ports.push(container_port("dns-udp", DNS_PORT, "UDP"));
        ports.push(container_port("dns-tcp", DNS_PORT, "TCP"));
    }
    let mut mounts = vec![VolumeMount {
        name: DATA_VOLUME.to_string(),
        mount_path: DATA_DIR.to_string(),
        ..VolumeMount::default()
    }];
    if cluster.tls.enabled() {
        mounts.push(VolumeMount {
            name: TLS_VOLUME.to_string(),
            mount_path: TLS_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    let http_scheme = if cluster.tls.enabled() {
        "HTTPS"
    } else {
        "HTTP"
    };
    Container {
        name: "registry".to_string(),
        image: Some(cluster.image.clone()),
        command: Some(vec![BINARY.to_string()]),
        args: Some(server_args(cluster)),
        env: Some(env),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: config_map_name(cluster),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]),
        ports: Some(ports),
        // Ready: has a leader and has applied what it committed.
        readiness_probe: Some(probe("/readyz", http_scheme, 5, 3)),
        // Alive: the process answers. Never quorum: a brief loss of quorum
        // must not restart every member at once.
        liveness_probe: Some(probe("/livez", http_scheme, 10, 6)),
        resources: cluster.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

fn container_port(name: &str, port: i32, protocol: &str) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some(protocol.to_string()),
        ..ContainerPort::default()
    }
}

fn probe(path: &str, scheme: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("client".to_string()),
            scheme: Some(scheme.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn tls_volumes(cluster: &ValidCluster) -> Option<Vec<Volume>> {
    Some(vec![Volume {
        name: TLS_VOLUME.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name(cluster)?),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }])
}

fn volume_claim(cluster: &ValidCluster) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA_VOLUME.to_string()),
            labels: Some(selector_labels(cluster)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: cluster.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(cluster.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}
