//! DNS for the service catalog, asked with the real `dig` (Debian's
//! `dnsutils`) against a real `muster server --listen-dns`.

#[path = "../common/mod.rs"]
mod util;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::process::Command;

use crate::util::{Api, Node, next_port, wait_for, wait_until};

/// This target's port range.
pub const PORTS: (u16, u16) = (27000, 27999);

const ZONE: &str = "muster.";

/// What `dig` printed, taken apart.
#[derive(Debug)]
struct Dig {
    status: String,
    flags: Vec<String>,
    /// `TYPE RDATA` of each answer, in order.
    answers: Vec<String>,
    additional: Vec<String>,
    authority: Vec<String>,
    text: String,
}

/// Fails loudly when `dig` is missing: CI installs it, and a DNS test that
/// silently skips proves nothing.
async fn require_dig() {
    let found = Command::new("dig").arg("-v").output().await;
    assert!(
        found.is_ok_and(|out| out.status.success()),
        "`dig` is required by the dns tests: install it (Debian: apt-get install -y dnsutils)"
    );
}

async fn dig(port: u16, args: &[&str]) -> Dig {
    let mut command = Command::new("dig");
    command
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=1"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(10), command.output())
        .await
        .unwrap_or_else(|_| panic!("dig {args:?} did not finish"))
        .expect("run dig");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dig {args:?} failed: {text}");
    parse_dig(text)
}

fn parse_dig(text: String) -> Dig {
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig output:\n{text}"))
        .to_owned();
    let flags = text
        .lines()
        .find_map(|line| line.strip_prefix(";; flags: "))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let section = |title: &str| -> Vec<String> {
        let mut lines = text.lines().skip_while(|line| *line != title).skip(1);
        let mut records = Vec::new();
        for line in lines.by_ref() {
            if line.trim().is_empty() {
                break;
            }
            // NAME TTL CLASS TYPE RDATA...
            let fields: Vec<&str> = line.split_whitespace().collect();
            records.push(fields[3..].join(" "));
        }
        records
    };
    Dig {
        status,
        flags,
        answers: section(";; ANSWER SECTION:"),
        additional: section(";; ADDITIONAL SECTION:"),
        authority: section(";; AUTHORITY SECTION:"),
        text,
    }
}

async fn register(api: &Api, base: &str, service: &str, id: &str, spec: serde_json::Value) {
    let url = format!("{base}/v1/services/default/{service}/instances/{id}");
    let answer = api
        .call(Method::PUT, &url, Some(serde_json::to_vec(&spec).unwrap()))
        .await
        .unwrap_or_else(|err| panic!("register {service}/{id}: {err}"));
    assert!(
        (200..300).contains(&answer.status),
        "register {service}/{id}: {answer:?}"
    );
}

/// A node with DNS on its own port; waits until it is ready.
async fn node_with_dns() -> (Node, Api, u16) {
    require_dig().await;
    let dns_port = next_port();
    let listen = format!("127.0.0.1:{dns_port}");
    let node = Node::single("dns", &["--listen-dns", &listen, "--dns-domain", ZONE]);
    let api = Api::new();
    let url = node.client_url();
    wait_until(
        Duration::from_secs(15),
        "the node to be ready",
        async || api.ready(&url).await,
    )
    .await;
    (node, api, dns_port)
}

#[tokio::test]
async fn dig_sees_healthy_enabled_instances_by_weight() {
    let (node, api, port) = node_with_dns().await;
    let base = node.client_url();
    let spec =
        |address: &str, weight: u32| json!({"address": address, "port": 8080, "weight": weight});
    register(&api, &base, "web", "web-1", spec("10.0.0.1", 100)).await;
    register(&api, &base, "web", "web-2", spec("10.0.0.2", 300)).await;
    register(&api, &base, "web", "web-3", spec("fd00::3", 200)).await;
    let mut drained = spec("10.0.0.4", 500);
    drained["enabled"] = json!(false);
    register(&api, &base, "web", "web-4", drained).await;

    let srv = wait_for(Duration::from_secs(5), "three SRV answers", async || {
        let answer = dig(port, &["SRV", "web.default.svc.muster."]).await;
        (answer.answers.len() == 3).then_some(answer)
    })
    .await;
    assert_eq!(srv.status, "NOERROR", "{}", srv.text);
    assert!(srv.flags.contains(&"aa".to_owned()), "{}", srv.text);
    assert_eq!(
        srv.answers,
        vec![
            "SRV 0 300 8080 web-2.web.default.svc.muster.",
            "SRV 0 200 8080 web-3.web.default.svc.muster.",
            "SRV 0 100 8080 web-1.web.default.svc.muster.",
        ],
        "{}",
        srv.text
    );
    assert_eq!(
        srv.additional,
        vec!["A 10.0.0.2", "AAAA fd00::3", "A 10.0.0.1"],
        "{}",
        srv.text
    );
    assert!(srv.text.contains("\t5\tIN\tSRV"), "TTL 5: {}", srv.text);

    let a = dig(port, &["A", "web.default.svc.muster."]).await;
    assert_eq!(a.answers, vec!["A 10.0.0.2", "A 10.0.0.1"], "{}", a.text);
    let aaaa = dig(port, &["AAAA", "web.default.svc.muster."]).await;
    assert_eq!(aaaa.answers, vec!["AAAA fd00::3"], "{}", aaaa.text);
    let one = dig(port, &["A", "web-2.web.default.svc.muster."]).await;
    assert_eq!(one.answers, vec!["A 10.0.0.2"], "{}", one.text);

    // The same over TCP.
    let tcp = dig(port, &["+tcp", "SRV", "web.default.svc.muster."]).await;
    assert_eq!(tcp.answers, srv.answers, "{}", tcp.text);

    // Draining takes an instance out of DNS, enabling brings it back.
    let drain = format!("{base}/v1/services/default/web/instances/web-2/drain");
    let answer = api.call(Method::POST, &drain, None).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let after = wait_for(
        Duration::from_secs(5),
        "the drained instance to go",
        async || {
            let answer = dig(port, &["SRV", "web.default.svc.muster."]).await;
            (answer.answers.len() == 2).then_some(answer)
        },
    )
    .await;
    assert!(
        after.answers.iter().all(|a| !a.contains("web-2")),
        "{}",
        after.text
    );
    let gone = dig(port, &["A", "web-2.web.default.svc.muster."]).await;
    assert_eq!(gone.status, "NXDOMAIN", "{}", gone.text);

    let enable = format!("{base}/v1/services/default/web/instances/web-2/enable");
    let answer = api.call(Method::POST, &enable, None).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    wait_until(
        Duration::from_secs(5),
        "the enabled instance to return",
        async || dig(port, &["SRV", "web.default.svc.muster."]).await.answers == srv.answers,
    )
    .await;
}

#[tokio::test]
async fn unknown_names_empty_services_and_other_zones() {
    let (node, api, port) = node_with_dns().await;
    let base = node.client_url();
    let mut drained = json!({"address": "10.0.0.9", "port": 80});
    drained["enabled"] = json!(false);
    register(&api, &base, "idle", "only", drained).await;

    let unknown = dig(port, &["SRV", "nope.default.svc.muster."]).await;
    assert_eq!(unknown.status, "NXDOMAIN", "{}", unknown.text);
    assert!(unknown.answers.is_empty());
    assert_eq!(unknown.authority.len(), 1, "{}", unknown.text);
    assert!(
        unknown.authority[0].starts_with("SOA ns.muster. hostmaster.muster. "),
        "{}",
        unknown.text
    );
    assert!(
        unknown.authority[0].ends_with(" 5"),
        "negative TTL 5: {}",
        unknown.text
    );

    let other_namespace = dig(port, &["A", "idle.elsewhere.svc.muster."]).await;
    assert_eq!(
        other_namespace.status, "NXDOMAIN",
        "{}",
        other_namespace.text
    );

    // Known, but nothing to return: NODATA.
    let nodata = dig(port, &["A", "idle.default.svc.muster."]).await;
    assert_eq!(nodata.status, "NOERROR", "{}", nodata.text);
    assert!(nodata.answers.is_empty(), "{}", nodata.text);
    assert_eq!(nodata.authority.len(), 1, "{}", nodata.text);

    // A checked instance starts critical: out of DNS until it reports.
    let checked = json!({"address": "10.0.0.7", "port": 80, "check": {"ttl": 60}});
    register(&api, &base, "checked", "c1", checked).await;
    let before = dig(port, &["A", "checked.default.svc.muster."]).await;
    assert_eq!(before.status, "NOERROR", "{}", before.text);
    assert!(before.answers.is_empty(), "{}", before.text);
    let report = format!("{base}/v1/services/default/checked/instances/c1/health");
    let body = serde_json::to_vec(&json!({"status": "passing"})).unwrap();
    let answer = api.call(Method::PUT, &report, Some(body)).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    wait_until(
        Duration::from_secs(5),
        "the passing instance in DNS",
        async || {
            dig(port, &["A", "checked.default.svc.muster."])
                .await
                .answers
                == ["A 10.0.0.7"]
        },
    )
    .await;

    let outside = dig(port, &["A", "example.com."]).await;
    assert_eq!(outside.status, "REFUSED", "{}", outside.text);
}

#[tokio::test]
async fn big_answers_truncate_on_udp_and_come_whole_over_tcp() {
    let (node, api, port) = node_with_dns().await;
    let base = node.client_url();
    const INSTANCES: usize = 40;
    for n in 0..INSTANCES {
        let spec = json!({"address": format!("10.0.1.{n}"), "port": 9000, "weight": 100});
        register(&api, &base, "big", &format!("big-{n:02}"), spec).await;
    }
    let name = "big.default.svc.muster.";
    // Without EDNS a UDP answer must fit in 512 bytes.
    let udp = dig(port, &["+noedns", "+ignore", "SRV", name]).await;
    assert!(udp.flags.contains(&"tc".to_owned()), "{}", udp.text);
    assert!(udp.answers.is_empty(), "{}", udp.text);
    // What a resolver does next.
    let tcp = dig(port, &["+tcp", "SRV", name]).await;
    assert!(!tcp.flags.contains(&"tc".to_owned()), "{}", tcp.text);
    assert_eq!(tcp.answers.len(), INSTANCES, "{}", tcp.text);
    assert_eq!(tcp.additional.len(), INSTANCES, "{}", tcp.text);
    // And dig on its own falls back to TCP on TC.
    let retried = dig(port, &["+noedns", "SRV", name]).await;
    assert_eq!(retried.answers.len(), INSTANCES, "{}", retried.text);
    // With EDNS (dig offers 1232 bytes) the glue goes first: 18 SRV
    // records (49 bytes each, targets uncompressed) fit, their glue does not.
    for n in 0..18 {
        let spec = json!({"address": format!("10.0.2.{n}"), "port": 9000, "weight": 100});
        register(&api, &base, "mid", &format!("mid-{n:02}"), spec).await;
    }
    let edns = dig(port, &["+ignore", "SRV", "mid.default.svc.muster."]).await;
    assert!(!edns.flags.contains(&"tc".to_owned()), "{}", edns.text);
    assert_eq!(edns.answers.len(), 18, "{}", edns.text);
    assert!(edns.additional.is_empty(), "{}", edns.text);
    // 40 A records (16 bytes each) need more than 512 bytes, not 1232.
    let classic = dig(port, &["+noedns", "+ignore", "A", name]).await;
    assert!(classic.flags.contains(&"tc".to_owned()), "{}", classic.text);
    let a = dig(port, &["+ignore", "A", name]).await;
    assert!(!a.flags.contains(&"tc".to_owned()), "{}", a.text);
    assert_eq!(a.answers.len(), INSTANCES, "{}", a.text);
}

#[tokio::test]
async fn garbage_does_not_stop_the_server() {
    let (node, api, port) = node_with_dns().await;
    register(
        &api,
        &node.client_url(),
        "web",
        "one",
        json!({"address": "10.0.0.1", "port": 80}),
    )
    .await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(("127.0.0.1", port)).await.unwrap();
    // A header that promises a question it does not carry: FORMERR.
    socket
        .send(&[0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut reply = [0u8; 512];
    let len = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut reply))
        .await
        .expect("a FORMERR answer")
        .unwrap();
    assert!(len >= 12);
    assert_eq!(&reply[..2], &[0x12, 0x34]);
    assert_eq!(reply[3] & 0x0f, 1, "RCODE FORMERR");
    // Short junk gets no answer; the server keeps serving.
    for junk in [&b""[..], b"\x00", b"hello"] {
        socket.send(junk).await.unwrap();
    }
    let answer = dig(port, &["A", "web.default.svc.muster."]).await;
    assert_eq!(answer.answers, vec!["A 10.0.0.1"], "{}", answer.text);
    // And over TCP, a connection that sends a bad length then closes.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &[0x00, 0x05, 1, 2])
        .await
        .unwrap();
    drop(stream);
    let answer = dig(port, &["+tcp", "A", "web.default.svc.muster."]).await;
    assert_eq!(answer.answers, vec!["A 10.0.0.1"], "{}", answer.text);
}
