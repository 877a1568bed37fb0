//! TLS settings for `https://` endpoints: rustls with the ring provider,
//! trusting only the given CA (the cluster's), not the system store.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ClientError;

/// PEM bytes of the CA bundle, and optionally of a client certificate and
/// its key (for clusters that require client certificates).
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    pub ca_pem: Vec<u8>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
}

fn invalid(message: String) -> ClientError {
    ClientError::InvalidArgument(message)
}

/// The rustls settings for plain-HTTP-only clients: reqwest wants one even
/// then, and giving our own (ring, no roots) keeps it from needing a
/// process-wide crypto provider.
pub(crate) fn plain_config() -> Result<rustls::ClientConfig, ClientError> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| invalid(format!("TLS setup: {err}")))?
    .with_root_certificates(RootCertStore::empty())
    .with_no_client_auth())
}

pub(crate) fn client_config(options: &TlsOptions) -> Result<rustls::ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&options.ca_pem) {
        let cert = cert.map_err(|err| invalid(format!("CA bundle: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| invalid(format!("CA bundle: {err}")))?;
    }
    if roots.is_empty() {
        return Err(invalid("CA bundle: no PEM certificate found".into()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| invalid(format!("TLS setup: {err}")))?
    .with_root_certificates(roots);
    match (&options.client_cert_pem, &options.client_key_pem) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| invalid(format!("client certificate: {err}")))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|err| invalid(format!("client key: {err}")))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|err| invalid(format!("client certificate and key: {err}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(invalid(
            "a client certificate needs its key, and a key its certificate".into(),
        )),
    }
}
