//! TLS Secrets: which ones the pods mount, and, when the operator issues
//! them, a CA per cluster and a certificate it signs, renewed well before
//! it expires. Issuing needs randomness and the time, so it takes `now` and
//! the Secrets that exist instead of being a function of the spec alone.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::{client_service_name, owned_meta, pod_host, pod_name};
use crate::validate::{Tls, ValidCluster};

pub const CA_VALIDITY: Duration = Duration::days(3650);
pub const CERT_VALIDITY: Duration = Duration::days(90);
/// A certificate (or CA) closer than this to its expiry is replaced.
pub const RENEW_BEFORE: Duration = Duration::days(30);
/// Highest replica count: the certificate names every pod a cluster can
/// have, so scaling never needs a new one.
const MAX_MEMBERS: i32 = 7;

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

pub fn ca_secret_name(cluster: &ValidCluster) -> String {
    format!("{}-ca", cluster.name)
}

fn issued_secret_name(cluster: &ValidCluster) -> String {
    format!("{}-tls", cluster.name)
}

/// The Secret mounted for both ports, if TLS is on. An issued certificate
/// carries both key usages: members present it to each other too.
pub fn secret_name(cluster: &ValidCluster) -> Option<String> {
    match &cluster.tls {
        Tls::Disabled => None,
        Tls::OperatorIssued => Some(issued_secret_name(cluster)),
        Tls::Secrets { secret } => Some(secret.clone()),
    }
}

/// The names the certificate must be valid for: every possible pod under
/// the headless Service, the client Service, and loopback for probes.
pub fn dns_names(cluster: &ValidCluster) -> Vec<String> {
    let mut names: Vec<String> = (0..MAX_MEMBERS)
        .map(|ordinal| pod_host(cluster, &pod_name(cluster, ordinal)))
        .collect();
    let client = client_service_name(cluster);
    let namespace = &cluster.namespace;
    names.extend([
        format!("{client}.{namespace}.svc.{}", cluster.cluster_domain),
        format!("{client}.{namespace}.svc"),
        format!("{client}.{namespace}"),
        client,
        "localhost".to_string(),
    ]);
    names
}

/// The issued Secrets, and what had to be (re)issued this time.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuedTls {
    pub ca: Secret,
    pub server: Secret,
    /// Human-readable reasons, one per certificate issued; empty when the
    /// existing ones were kept.
    pub issued: Vec<String>,
}

impl IssuedTls {
    /// The CA certificate (PEM) the members' certificate is signed by: what
    /// the operator trusts when it talks to them.
    pub fn ca_pem(&self) -> Vec<u8> {
        secret_bytes(&self.ca, CA_CERT).unwrap_or_default()
    }
}

/// Why the user's TLS Secret (`mode: Secrets`) cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UserSecretError {
    #[error("the TLS Secret {0:?} (spec.tls.secretName) does not exist")]
    Missing(String),
    #[error(
        "the TLS Secret {0:?} has no ca.crt: the operator needs the CA that signed the \
         members' certificates to talk to them"
    )]
    NoCa(String),
    #[error("ca.crt in the TLS Secret {0:?} is not a PEM certificate")]
    BadCa(String),
}

/// The CA (PEM) in the user's Secret, checked to be a certificate.
pub fn user_ca(name: &str, secret: Option<&Secret>) -> Result<Vec<u8>, UserSecretError> {
    let secret = secret.ok_or_else(|| UserSecretError::Missing(name.to_string()))?;
    let pem = secret_bytes(secret, CA_CERT)
        .filter(|pem| !pem.is_empty())
        .ok_or_else(|| UserSecretError::NoCa(name.to_string()))?;
    let parses = std::str::from_utf8(&pem).ok().and_then(inspect).is_some();
    if !parses {
        return Err(UserSecretError::BadCa(name.to_string()));
    }
    Ok(pem)
}

fn secret_bytes(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    Some(secret.data.as_ref()?.get(key)?.0.clone())
}

/// Keeps the existing CA and certificate while they are valid long enough
/// and name the right hosts; issues new ones otherwise.
pub fn operator_issued(
    cluster: &ValidCluster,
    existing_ca: Option<&Secret>,
    existing_server: Option<&Secret>,
    now: OffsetDateTime,
) -> Result<IssuedTls, TlsError> {
    let mut issued = Vec::new();
    let kept_ca = existing_ca.and_then(|secret| {
        let cert = text(secret, CA_CERT)?;
        let key = text(secret, CA_KEY)?;
        let info = inspect(&cert)?;
        (info.not_after - now > RENEW_BEFORE).then_some((cert, key))
    });
    let (ca_pem, ca_key_pem, new_ca) = match kept_ca {
        Some((cert, key)) => (cert, key, false),
        None => {
            let (cert, key) = new_ca(cluster, now)?;
            issued.push(match existing_ca {
                Some(_) => "renewed the CA (expiring or unreadable)".to_string(),
                None => "issued a CA".to_string(),
            });
            (cert, key, true)
        }
    };
    let wanted = dns_names(cluster);
    let kept_cert = existing_server.filter(|_| !new_ca).and_then(|secret| {
        let cert = text(secret, TLS_CERT)?;
        let key = text(secret, TLS_KEY)?;
        let info = inspect(&cert)?;
        (info.not_after - now > RENEW_BEFORE && info.dns_names == wanted).then_some((cert, key))
    });
    let (cert_pem, key_pem) = match kept_cert {
        Some(pair) => pair,
        None => {
            let ca_key = KeyPair::from_pem(&ca_key_pem)?;
            let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
            let mut params = CertificateParams::new(wanted)?;
            params
                .distinguished_name
                .push(DnType::CommonName, format!("{} registry", cluster.name));
            params.not_before = now - Duration::minutes(5);
            params.not_after = now + CERT_VALIDITY;
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &issuer)?;
            issued.push(match existing_server {
                Some(_) => "renewed the member certificate".to_string(),
                None => "issued the member certificate".to_string(),
            });
            (cert.pem(), key.serialize_pem())
        }
    };
    let ca = Secret {
        metadata: owned_meta(cluster, ca_secret_name(cluster)),
        type_: Some("Opaque".to_string()),
        data: Some(data([(CA_CERT, &ca_pem), (CA_KEY, &ca_key_pem)])),
        ..Secret::default()
    };
    let server = Secret {
        metadata: owned_meta(cluster, issued_secret_name(cluster)),
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(data([
            (TLS_CERT, &cert_pem),
            (TLS_KEY, &key_pem),
            (CA_CERT, &ca_pem),
        ])),
        ..Secret::default()
    };
    Ok(IssuedTls { ca, server, issued })
}

fn new_ca(cluster: &ValidCluster, now: OffsetDateTime) -> Result<(String, String), TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(
        DnType::CommonName,
        format!("{}/{} Muster CA", cluster.namespace, cluster.name),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + CA_VALIDITY;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn data<const N: usize>(entries: [(&str, &String); N]) -> BTreeMap<String, ByteString> {
    entries
        .into_iter()
        .map(|(key, value)| (key.to_string(), ByteString(value.clone().into_bytes())))
        .collect()
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    String::from_utf8(secret_bytes(secret, key)?).ok()
}

/// What the operator needs to know of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    pub not_after: OffsetDateTime,
    pub dns_names: Vec<String>,
    pub is_ca: bool,
}

/// Reads a PEM certificate; `None` when it cannot be parsed (it is then
/// replaced).
pub fn inspect(pem: &str) -> Option<CertInfo> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(extension)) => extension
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(CertInfo {
        not_after: cert.validity().not_after.to_datetime(),
        dns_names,
        is_ca: cert.is_ca(),
    })
}
