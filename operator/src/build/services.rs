//! The headless Service that gives each pod a stable DNS name, and the
//! Service clients use.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    CLIENT_PORT, DNS_PORT, PEER_PORT, client_service_name, owned_meta, peer_service_name,
    selector_labels,
};
use crate::validate::ValidCluster;

fn port(name: &str, port: i32, protocol: &str) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some(protocol.to_string()),
        ..ServicePort::default()
    }
}

/// Peer names must resolve before a pod is ready: members find each other
/// while the cluster is still forming, so not-ready addresses are published.
pub fn peer_service(cluster: &ValidCluster) -> Service {
    Service {
        metadata: owned_meta(cluster, peer_service_name(cluster)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(cluster)),
            ports: Some(vec![
                port("client", CLIENT_PORT, "TCP"),
                port("peer", PEER_PORT, "TCP"),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Routes only to ready members (those with a leader, caught up).
pub fn client_service(cluster: &ValidCluster) -> Service {
    let mut ports = vec![port("client", CLIENT_PORT, "TCP")];
    if cluster.settings.dns {
        ports.push(port("dns-udp", DNS_PORT, "UDP"));
        ports.push(port("dns-tcp", DNS_PORT, "TCP"));
    }
    Service {
        metadata: owned_meta(cluster, client_service_name(cluster)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(selector_labels(cluster)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
