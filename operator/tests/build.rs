//! Pure builder tests: YAML fixture in, objects out.

mod common;

use std::collections::BTreeMap;

use common::{fixture, valid};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use muster_operator::build::{
    ANNOTATION_SETTINGS_HASH, ClusterState, Shape, build, ordinal_of, quorum,
};
use muster_operator::validate::{OperatorSettings, validate};

fn shape(pods: i32, cluster_state: ClusterState) -> Shape {
    Shape {
        pods,
        cluster_state,
    }
}

fn pod_spec(set: &StatefulSet) -> &PodSpec {
    set.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn registry_container(set: &StatefulSet) -> &Container {
    let containers = &pod_spec(set).containers;
    assert_eq!(containers.len(), 1);
    &containers[0]
}

fn env_names(container: &Container) -> Vec<&str> {
    container
        .env
        .iter()
        .flatten()
        .map(|var| var.name.as_str())
        .collect()
}

#[test]
fn fixtures_validate() {
    for name in [
        "one-member.yaml",
        "three-members.yaml",
        "five-members-tls.yaml",
        "three-members-user-tls.yaml",
    ] {
        valid(name);
    }
}

#[test]
fn an_invalid_spec_names_every_problem() {
    let err = validate(&fixture("invalid.yaml"), &OperatorSettings::default()).unwrap_err();
    let fields: Vec<&str> = err.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "metadata.name",
            "spec.replicas",
            "spec.version",
            "spec.storage.size",
            "spec.settings.electionTimeoutMs",
            "spec.tls.secretName",
            "spec.podTemplate.labels[app.kubernetes.io/name]",
            "spec.podTemplate.env[MUSTER_NAME]",
        ]
    );
    let text = err.to_string();
    assert!(text.contains("must be 1, 3, 5 or 7, not 4"), "{text}");
    assert!(text.contains("\"lots\" is not a quantity"), "{text}");
}

#[test]
fn config_map_lists_the_initial_cluster_by_ordinal() {
    let cluster = valid("three-members.yaml");
    let objects = build(&cluster, shape(3, ClusterState::New));
    let data = objects.config_map.data.unwrap();
    assert_eq!(
        objects.config_map.metadata.name.as_deref(),
        Some("demo-config")
    );
    assert_eq!(
        data["MUSTER_INITIAL_CLUSTER"],
        "demo-0=http://demo-0.demo-peer.default.svc.cluster.local:7101,\
         demo-1=http://demo-1.demo-peer.default.svc.cluster.local:7101,\
         demo-2=http://demo-2.demo-peer.default.svc.cluster.local:7101"
    );
    assert_eq!(data["MUSTER_INITIAL_CLUSTER_STATE"], "new");
    assert_eq!(data["MUSTER_LISTEN_CLIENT"], "0.0.0.0:7001");
    assert_eq!(data["MUSTER_LISTEN_PEER"], "0.0.0.0:7101");
    assert_eq!(data["MUSTER_DATA_DIR"], "/var/lib/muster");
    assert_eq!(data["MUSTER_HEARTBEAT_INTERVAL_MS"], "100");
    assert_eq!(data["MUSTER_ELECTION_TIMEOUT_MS"], "1000");

    // After bootstrap, and with a fourth pod being added.
    let later = build(&cluster, shape(4, ClusterState::Existing));
    let data = later.config_map.data.unwrap();
    assert_eq!(data["MUSTER_INITIAL_CLUSTER_STATE"], "existing");
    assert!(
        data["MUSTER_INITIAL_CLUSTER"]
            .ends_with(",demo-3=http://demo-3.demo-peer.default.svc.cluster.local:7101")
    );
}

#[test]
fn every_object_is_owned_and_labelled() {
    let cluster = valid("three-members.yaml");
    let objects = build(&cluster, shape(3, ClusterState::New));
    let metas = [
        &objects.config_map.metadata,
        &objects.peer_service.metadata,
        &objects.client_service.metadata,
        &objects.pod_disruption_budget.metadata,
        &objects.stateful_set.metadata,
    ];
    for meta in metas {
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        let owner = &meta.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "RegistryCluster");
        assert_eq!(owner.uid, "0b1e4c1a-0000-4000-8000-000000000003");
        assert_eq!(owner.controller, Some(true));
        let labels = meta.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/instance"], "demo");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "muster-operator");
    }
}

#[test]
fn stateful_set_for_one_three_and_five_members() {
    for (fixture_name, pods, name) in [
        ("one-member.yaml", 1, "solo"),
        ("three-members.yaml", 3, "demo"),
        ("five-members-tls.yaml", 5, "prod"),
    ] {
        let cluster = valid(fixture_name);
        let set = build(&cluster, shape(pods, ClusterState::New)).stateful_set;
        let spec = set.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(pods), "{fixture_name}");
        assert_eq!(
            spec.service_name.as_deref(),
            Some(format!("{name}-peer").as_str())
        );
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(
            spec.update_strategy.as_ref().unwrap().type_.as_deref(),
            Some("OnDelete")
        );
        let selector = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(selector.len(), 2, "the selector never includes the version");
        let template_labels = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        for (key, value) in selector {
            assert_eq!(&template_labels[key], value);
        }
        let container = registry_container(&set);
        assert_eq!(
            container.command.as_ref().unwrap(),
            &["/usr/local/bin/muster"]
        );
        let args = container.args.as_ref().unwrap();
        assert_eq!(args[0], "server");
        assert_eq!(args[1], "--name=$(POD_NAME)");
        let probes = (
            container.readiness_probe.as_ref().unwrap(),
            container.liveness_probe.as_ref().unwrap(),
        );
        assert_eq!(
            probes.0.http_get.as_ref().unwrap().path.as_deref(),
            Some("/readyz")
        );
        assert_eq!(
            probes.1.http_get.as_ref().unwrap().path.as_deref(),
            Some("/livez")
        );
        assert_eq!(env_names(container)[0], "POD_NAME");
        let env_from = &container.env_from.as_ref().unwrap()[0];
        assert_eq!(
            env_from.config_map_ref.as_ref().unwrap().name,
            format!("{name}-config")
        );
        let claims = spec.volume_claim_templates.as_ref().unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
    }
}

#[test]
fn plain_cluster_speaks_http_and_mounts_no_certificates() {
    let cluster = valid("three-members.yaml");
    let set = build(&cluster, shape(3, ClusterState::New)).stateful_set;
    let container = registry_container(&set);
    assert_eq!(
        container.args.as_ref().unwrap(),
        &[
            "server",
            "--name=$(POD_NAME)",
            "--advertise-client=http://$(POD_NAME).demo-peer.default.svc.cluster.local:7001",
            "--advertise-peer=http://$(POD_NAME).demo-peer.default.svc.cluster.local:7101",
        ]
    );
    assert!(pod_spec(&set).volumes.is_none());
    let mounts = container.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].mount_path, "/var/lib/muster");
    let ports: Vec<i32> = container
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, [7001, 7101]);
    let readiness = container
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(readiness.scheme.as_deref(), Some("HTTP"));
    // The default: prefer one member per node.
    let anti = pod_spec(&set)
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap();
    let term = &anti
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        term.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    let spec = set.spec.as_ref().unwrap();
    let retention = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Retain"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Delete"));
    let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
    let request = &claim
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests;
    assert_eq!(request.as_ref().unwrap()["storage"].0, "1Gi");
}

#[test]
fn tls_dns_and_overrides_reach_the_pod() {
    let cluster = valid("five-members-tls.yaml");
    let set = build(&cluster, shape(5, ClusterState::Existing)).stateful_set;
    let container = registry_container(&set);
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example.com/muster:0.2.0")
    );
    let args = container.args.as_ref().unwrap();
    assert!(
        args.contains(
            &"--advertise-peer=https://$(POD_NAME).prod-peer.registry.svc.cluster.local:7101"
                .to_string()
        )
    );
    for flag in [
        "--cert-file=/etc/muster/tls/tls.crt",
        "--key-file=/etc/muster/tls/tls.key",
        "--trusted-ca-file=/etc/muster/tls/ca.crt",
        "--listen-dns=0.0.0.0:8053",
    ] {
        assert!(
            args.contains(&flag.to_string()),
            "missing {flag} in {args:?}"
        );
    }
    let volumes = pod_spec(&set).volumes.as_ref().unwrap();
    let secrets: Vec<&str> = volumes
        .iter()
        .map(|v| v.secret.as_ref().unwrap().secret_name.as_deref().unwrap())
        .collect();
    assert_eq!(secrets, ["prod-tls"]);
    let mounts = container.volume_mounts.as_ref().unwrap();
    assert_eq!(mounts[1].mount_path, "/etc/muster/tls");
    assert_eq!(mounts[1].read_only, Some(true));
    let readiness = container
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(readiness.scheme.as_deref(), Some("HTTPS"));
    assert_eq!(env_names(container), ["POD_NAME", "RUST_LOG"]);
    let pod = pod_spec(&set);
    assert_eq!(
        pod.node_selector.as_ref().unwrap()["node-role.example.com/registry"],
        "true"
    );
    assert_eq!(
        pod.tolerations.as_ref().unwrap()[0].key.as_deref(),
        Some("dedicated")
    );
    let template_meta = set
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap();
    assert_eq!(template_meta.labels.as_ref().unwrap()["team"], "platform");
    assert_eq!(
        template_meta.labels.as_ref().unwrap()["app.kubernetes.io/version"],
        "0.2.0"
    );
    let annotations = template_meta.annotations.as_ref().unwrap();
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert!(annotations.contains_key(ANNOTATION_SETTINGS_HASH));
    let spec = set.spec.as_ref().unwrap();
    let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast-ssd"));
    let retention = spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Delete"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    let limits = container
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits["memory"].0, "1Gi");
}

#[test]
fn user_secrets_are_mounted_as_given() {
    let cluster = valid("three-members-user-tls.yaml");
    let set = build(&cluster, shape(3, ClusterState::New)).stateful_set;
    let secrets: Vec<&str> = pod_spec(&set)
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .map(|v| v.secret.as_ref().unwrap().secret_name.as_deref().unwrap())
        .collect();
    assert_eq!(secrets, ["secure-cert"]);
}

#[test]
fn a_settings_change_changes_the_template_a_version_change_only_the_image() {
    let base = valid("three-members.yaml");
    let template_of = |cluster| {
        build(cluster, shape(3, ClusterState::Existing))
            .stateful_set
            .spec
            .unwrap()
            .template
    };
    let hash_of = |cluster| {
        template_of(cluster).metadata.unwrap().annotations.unwrap()[ANNOTATION_SETTINGS_HASH]
            .clone()
    };
    let mut slower = base.clone();
    slower.settings.election_timeout_ms = 3000;
    assert_ne!(hash_of(&base), hash_of(&slower));
    let mut newer = base.clone();
    newer.version = "0.1.1".into();
    newer.image = "ghcr.io/muster-dev/muster:0.1.1".into();
    assert_eq!(hash_of(&base), hash_of(&newer));
    assert_ne!(template_of(&base), template_of(&newer));
    // Scaling and bootstrap state never touch the template (no roll).
    assert_eq!(
        build(&base, shape(3, ClusterState::New))
            .stateful_set
            .spec
            .unwrap()
            .template,
        build(&base, shape(5, ClusterState::Existing))
            .stateful_set
            .spec
            .unwrap()
            .template,
    );
}

#[test]
fn services_give_stable_peer_names_and_a_client_address() {
    let cluster = valid("three-members.yaml");
    let objects = build(&cluster, shape(3, ClusterState::New));
    let peer = objects.peer_service.spec.unwrap();
    assert_eq!(
        objects.peer_service.metadata.name.as_deref(),
        Some("demo-peer")
    );
    assert_eq!(peer.cluster_ip.as_deref(), Some("None"));
    assert_eq!(peer.publish_not_ready_addresses, Some(true));
    let peer_ports: Vec<i32> = peer.ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(peer_ports, [7001, 7101]);
    let client = objects.client_service.spec.unwrap();
    assert_eq!(
        objects.client_service.metadata.name.as_deref(),
        Some("demo")
    );
    assert_eq!(client.publish_not_ready_addresses, None);
    assert_eq!(client.ports.unwrap().len(), 1);

    let with_dns = build(&valid("five-members-tls.yaml"), shape(5, ClusterState::New));
    let names: Vec<String> = with_dns
        .client_service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| format!("{}/{}", p.name.unwrap(), p.protocol.unwrap()))
        .collect();
    assert_eq!(names, ["client/TCP", "dns-udp/UDP", "dns-tcp/TCP"]);
}

#[test]
fn disruption_budget_keeps_a_quorum() {
    assert_eq!([1, 2, 3, 4, 5, 7].map(quorum), [1, 2, 2, 3, 3, 4]);
    for (fixture_name, pods, min_available) in [
        ("one-member.yaml", 1, 1),
        ("three-members.yaml", 3, 2),
        ("three-members.yaml", 4, 3),
        ("five-members-tls.yaml", 5, 3),
    ] {
        let pdb =
            build(&valid(fixture_name), shape(pods, ClusterState::Existing)).pod_disruption_budget;
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.min_available, Some(IntOrString::Int(min_available)));
        assert_eq!(spec.max_unavailable, None);
        let selector: &BTreeMap<String, String> = spec
            .selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(selector.len(), 2);
    }
}

#[test]
fn ordinals_are_read_back_from_pod_names() {
    let cluster = valid("three-members.yaml");
    assert_eq!(ordinal_of(&cluster, "demo-0"), Some(0));
    assert_eq!(ordinal_of(&cluster, "demo-12"), Some(12));
    assert_eq!(ordinal_of(&cluster, "demo-x"), None);
    assert_eq!(ordinal_of(&cluster, "demox-1"), None);
    assert_eq!(ordinal_of(&cluster, "other-1"), None);
}
