//! TLS on both ports: three members with mutual TLS between them, clients
//! over HTTPS trusting the cluster's CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use muster_client::{Client, ClientError, GetOptions, PutOptions, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

use crate::util::{Node, next_port, wait_for};

/// A CA and one member certificate (server and client use) for 127.0.0.1.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn issue() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "muster test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("member.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("member-key.pem"), key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    fn client(&self, endpoints: Vec<String>, with_cert: bool) -> Client {
        let tls = TlsOptions {
            ca_pem: self.read("ca.pem"),
            client_cert_pem: with_cert.then(|| self.read("member.pem")),
            client_key_pem: with_cert.then(|| self.read("member-key.pem")),
        };
        Client::builder(endpoints)
            .request_timeout(Duration::from_secs(5))
            .tls(tls)
            .build()
            .unwrap()
    }
}

fn arg(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_forms_replicates_and_refuses_plain_or_anonymous_peers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::issue();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (next_port(), next_port())).collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("t{}=https://127.0.0.1:{peer}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let (cert, key, ca) = (
        arg(&pki.path("member.pem")),
        arg(&pki.path("member-key.pem")),
        arg(&pki.path("ca.pem")),
    );
    let mut nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            let advertise_client = format!("https://127.0.0.1:{client}");
            let advertise_peer = format!("https://127.0.0.1:{peer}");
            Node::with_ports(
                &format!("t{}", i + 1),
                *client,
                *peer,
                &initial,
                &[
                    "--cert-file",
                    &cert,
                    "--key-file",
                    &key,
                    "--trusted-ca-file",
                    &ca,
                    "--advertise-client",
                    &advertise_client,
                    "--advertise-peer",
                    &advertise_peer,
                ],
            )
        })
        .collect();
    for node in &mut nodes {
        node.start();
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|(client, _)| format!("https://127.0.0.1:{client}"))
        .collect();
    let client = pki.client(urls.clone(), false);

    // Forming the cluster needs member-to-member mutual TLS to work.
    let voters = wait_for(Duration::from_secs(30), "three TLS voters", || {
        let client = client.clone();
        async move {
            let members = client.members().await.ok()?;
            let voters = members
                .members
                .iter()
                .filter(|m| m.role == muster_types::cluster::MemberRole::Voter)
                .count();
            (voters == 3).then_some(members)
        }
    })
    .await;
    assert!(
        voters
            .members
            .iter()
            .all(|m| m.peer_url.starts_with("https://"))
    );

    // A write through each member (followers forward over TLS), read back
    // linearizably through another.
    for (i, url) in urls.iter().enumerate() {
        let one = pki.client(vec![url.clone()], false);
        let key = format!("tls/{i}");
        one.put(&key, format!("v{i}").into_bytes(), PutOptions::default())
            .await
            .unwrap();
        let other = pki.client(vec![urls[(i + 1) % 3].clone()], false);
        let read = other
            .get(&key, GetOptions::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.value.as_bytes(), format!("v{i}").as_bytes());
    }

    // The peer port wants a member certificate: the same CA without a
    // client certificate is refused.
    let peer_url = format!("https://127.0.0.1:{}", ports[0].1);
    let anonymous = pki.client(vec![peer_url.clone()], false);
    match anonymous.status().await {
        Err(ClientError::Transport { .. }) => {}
        other => panic!("an anonymous peer connection must fail the handshake: {other:?}"),
    }
    // With the member certificate the handshake succeeds (the route is
    // not a client API route, so the answer is an HTTP error, not a
    // transport failure).
    let member = pki.client(vec![peer_url], true);
    let answer = member.status().await;
    assert!(
        !matches!(answer, Err(ClientError::Transport { .. })),
        "a member certificate is accepted on the peer port: {answer:?}"
    );

    // Plain HTTP to a TLS client port gets nothing useful.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/v1/status", ports[0].0))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must not be served on a TLS port"
    );

    // An https endpoint without TLS options is refused up front.
    let err = Client::new([urls[0].clone()]).unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
}
