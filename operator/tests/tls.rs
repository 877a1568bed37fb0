//! Operator-issued certificates: issued, kept, renewed before expiry.

mod common;

use common::valid;
use k8s_openapi::api::core::v1::Secret;
use muster_operator::build::tls::{
    CA_CERT, CA_KEY, RENEW_BEFORE, TLS_CERT, TLS_KEY, dns_names, inspect, operator_issued,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

fn text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

fn der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

#[test]
fn first_issue_makes_a_ca_and_a_certificate_it_signed() {
    let cluster = valid("five-members-tls.yaml");
    let now = OffsetDateTime::now_utc();
    let tls = operator_issued(&cluster, None, None, now).unwrap();
    assert_eq!(tls.issued, ["issued a CA", "issued the member certificate"]);
    assert_eq!(tls.ca.metadata.name.as_deref(), Some("prod-ca"));
    assert_eq!(tls.server.metadata.name.as_deref(), Some("prod-tls"));
    assert_eq!(tls.server.type_.as_deref(), Some("kubernetes.io/tls"));
    assert!(text(&tls.ca, CA_KEY).contains("PRIVATE KEY"));
    assert!(text(&tls.server, TLS_KEY).contains("PRIVATE KEY"));
    assert_eq!(text(&tls.server, CA_CERT), text(&tls.ca, CA_CERT));

    let ca = inspect(&text(&tls.ca, CA_CERT)).unwrap();
    assert!(ca.is_ca);
    let cert = inspect(&text(&tls.server, TLS_CERT)).unwrap();
    assert!(!cert.is_ca);
    assert_eq!(cert.dns_names, dns_names(&cluster));
    assert!(
        cert.dns_names
            .contains(&"prod-4.prod-peer.registry.svc.cluster.local".to_string())
    );
    assert!(cert.dns_names.contains(&"prod.registry.svc".to_string()));
    assert!(cert.not_after - now > Duration::days(89));

    let ca_der = der(&text(&tls.ca, CA_CERT));
    let cert_der = der(&text(&tls.server, TLS_CERT));
    let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
    let (_, leaf) = X509Certificate::from_der(&cert_der).unwrap();
    leaf.verify_signature(Some(ca_cert.public_key()))
        .expect("the certificate is signed by the cluster's CA");
}

#[test]
fn valid_certificates_are_kept() {
    let cluster = valid("five-members-tls.yaml");
    let now = OffsetDateTime::now_utc();
    let first = operator_issued(&cluster, None, None, now).unwrap();
    let later = now + Duration::days(30);
    let again = operator_issued(&cluster, Some(&first.ca), Some(&first.server), later).unwrap();
    assert!(again.issued.is_empty(), "{:?}", again.issued);
    assert_eq!(again.ca, first.ca);
    assert_eq!(again.server, first.server);
}

#[test]
fn a_certificate_near_expiry_is_renewed_by_the_same_ca() {
    let cluster = valid("five-members-tls.yaml");
    let now = OffsetDateTime::now_utc();
    let first = operator_issued(&cluster, None, None, now).unwrap();
    // 90-day certificates are renewed once fewer than RENEW_BEFORE remain.
    let later = now + Duration::days(90) - RENEW_BEFORE + Duration::days(1);
    let renewed = operator_issued(&cluster, Some(&first.ca), Some(&first.server), later).unwrap();
    assert_eq!(renewed.issued, ["renewed the member certificate"]);
    assert_eq!(renewed.ca, first.ca);
    assert_ne!(
        text(&renewed.server, TLS_CERT),
        text(&first.server, TLS_CERT)
    );
    let cert = inspect(&text(&renewed.server, TLS_CERT)).unwrap();
    assert!(cert.not_after - later > Duration::days(89));
}

#[test]
fn a_ca_near_expiry_is_renewed_with_its_certificate() {
    let cluster = valid("five-members-tls.yaml");
    let now = OffsetDateTime::now_utc();
    let first = operator_issued(&cluster, None, None, now).unwrap();
    let much_later = now + Duration::days(3650) - Duration::days(10);
    let renewed =
        operator_issued(&cluster, Some(&first.ca), Some(&first.server), much_later).unwrap();
    assert_eq!(
        renewed.issued,
        [
            "renewed the CA (expiring or unreadable)",
            "renewed the member certificate"
        ]
    );
    assert_ne!(text(&renewed.ca, CA_CERT), text(&first.ca, CA_CERT));
}

#[test]
fn an_unreadable_secret_is_replaced() {
    let cluster = valid("five-members-tls.yaml");
    let now = OffsetDateTime::now_utc();
    let mut broken = operator_issued(&cluster, None, None, now).unwrap();
    broken.server.data.as_mut().unwrap().insert(
        TLS_CERT.to_string(),
        k8s_openapi::ByteString(b"garbage".to_vec()),
    );
    let fixed = operator_issued(&cluster, Some(&broken.ca), Some(&broken.server), now).unwrap();
    assert_eq!(fixed.issued, ["renewed the member certificate"]);
    assert!(inspect(&text(&fixed.server, TLS_CERT)).is_some());
}
