//! Builds DNS answers for the service catalog, as pure functions of a
//! query and a view of the catalog (no IO, no clock), so every rule here is
//! tested without sockets.
//!
//! The zone is `{domain}` (e.g. `muster.`); a service is
//! `{service}.{namespace}.svc.{domain}` and one of its instances
//! `{instance-label}.{service}.{namespace}.svc.{domain}` (the SRV target of
//! an instance whose address is an IP literal).

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use muster_catalog::names::check_name;
use muster_types::catalog::{HealthStatus, Instance};

/// TTL of every answer, and the negative-caching TTL (SOA minimum): short,
/// because instances come and go and clients should notice within seconds.
pub const TTL: u32 = 5;

/// A UDP answer without EDNS must fit in this (RFC 1035).
pub const CLASSIC_UDP_LIMIT: usize = 512;

/// The UDP payload we advertise and accept at most with EDNS (the DNS flag
/// day 2020 size, which avoids IP fragmentation).
pub const EDNS_UDP_LIMIT: u16 = 1232;

/// What the answer builder needs from the catalog.
pub trait CatalogView {
    /// Every instance of a service, in instance-id order; None when the
    /// service is not registered.
    fn service(&self, namespace: &str, service: &str) -> Option<Vec<Instance>>;
    fn namespace_exists(&self, namespace: &str) -> bool;
    /// The SOA serial: changes whenever the catalog may have changed.
    fn serial(&self) -> u32;
}

/// The zone this server is authoritative for.
#[derive(Clone, Debug)]
pub struct Zone {
    apex: Name,
    soa: Record,
}

impl Zone {
    /// `domain` is absolute or made so (`muster` means `muster.`).
    pub fn new(domain: &str) -> Result<Self, String> {
        let mut apex = Name::from_ascii(domain)
            .map_err(|err| format!("DNS domain {domain:?} is not a domain name: {err}"))?
            .to_lowercase();
        apex.set_fqdn(true);
        if apex.is_root() {
            return Err("DNS domain must not be the root".into());
        }
        let mname = apex
            .prepend_label("ns")
            .map_err(|err| format!("DNS domain {domain:?} is too long: {err}"))?;
        let rname = apex
            .prepend_label("hostmaster")
            .map_err(|err| format!("DNS domain {domain:?} is too long: {err}"))?;
        // Refresh, retry and expire matter only to secondaries, which this
        // zone has none of; the minimum is the negative-caching TTL.
        let soa = SOA::new(mname, rname, 0, 3600, 600, 86400, TTL);
        let soa = Record::from_rdata(apex.clone(), TTL, RData::SOA(soa));
        Ok(Zone { apex, soa })
    }

    fn soa(&self, serial: u32) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = &mut soa.data {
            data.serial = serial;
        }
        soa
    }

    fn service_name(&self, namespace: &str, service: &str) -> Option<Name> {
        Name::from_labels([service, namespace, "svc"])
            .ok()?
            .append_domain(&self.apex)
            .ok()
    }

    fn instance_name(&self, namespace: &str, service: &str, instance_id: &str) -> Option<Name> {
        self.service_name(namespace, service)?
            .prepend_label(instance_label(instance_id))
            .ok()
    }
}

/// The DNS label of an instance id: the id itself when it is a plain
/// lowercase hostname label, else `id-` and a hash of it (ids may hold `.`,
/// `:`, `_`, capitals or be longer than a label's 63 bytes). Ids that
/// themselves start with `id-` are hashed too, so the two forms never meet.
pub fn instance_label(id: &str) -> String {
    let plain = id.len() <= 63
        && !id.starts_with("id-")
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if plain {
        id.to_owned()
    } else {
        format!("id-{:016x}", fnv1a(id.as_bytes()))
    }
}

/// FNV-1a: stable across builds and platforms, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The instances DNS returns, highest weight first (ties keep id order):
/// enabled, passing, and with a weight above 0 (weight 0 takes no traffic).
pub fn eligible(mut instances: Vec<Instance>) -> Vec<Instance> {
    instances.retain(|i| i.enabled && i.health.status == HealthStatus::Passing && i.weight > 0);
    // A stable sort, so equal weights keep the catalog's id order.
    instances.sort_by_key(|i| std::cmp::Reverse(i.weight));
    instances
}

/// Where an instance's address points.
enum Target {
    Ip(IpAddr),
    Host(Name),
}

fn target_of(instance: &Instance) -> Option<Target> {
    if let Ok(ip) = instance.address.parse::<IpAddr>() {
        return Some(Target::Ip(ip));
    }
    let mut host = Name::from_ascii(&instance.address).ok()?;
    host.set_fqdn(true);
    Some(Target::Host(host))
}

fn address_record(name: Name, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(name, TTL, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(name, TTL, RData::AAAA(AAAA(v6))),
    }
}

fn wants(query_type: RecordType, ip: IpAddr) -> bool {
    matches!(
        (query_type, ip),
        (RecordType::A | RecordType::ANY, IpAddr::V4(_))
            | (RecordType::AAAA | RecordType::ANY, IpAddr::V6(_))
    )
}

/// What a name in the zone is.
enum Node<'a> {
    Apex,
    /// `svc.{domain}` or `{namespace}.svc.{domain}`: names with children
    /// but no records of their own.
    Empty,
    Service {
        namespace: &'a str,
        service: &'a str,
    },
    Instance {
        namespace: &'a str,
        service: &'a str,
        label: &'a str,
    },
    Absent,
}

/// The labels of `name` below the apex, leftmost first; None when the name
/// is outside the zone.
fn relative_labels<'n>(zone: &Zone, name: &'n Name) -> Option<Vec<&'n [u8]>> {
    if !zone.apex.zone_of(name) {
        return None;
    }
    let below = usize::from(name.num_labels() - zone.apex.num_labels());
    Some(name.iter().take(below).collect())
}

/// A label as a catalog name, or None when no catalog name can match it
/// (which also keeps `/` and friends out of the keys read).
fn catalog_name(label: &[u8]) -> Option<&str> {
    let name = std::str::from_utf8(label).ok()?;
    check_name("name", name).ok()?;
    Some(name)
}

fn classify<'a>(labels: &[&'a [u8]], catalog: &impl CatalogView) -> Node<'a> {
    let svc_label = |label: &[u8]| label.eq_ignore_ascii_case(b"svc");
    match labels {
        [] => Node::Apex,
        [svc] if svc_label(svc) => Node::Empty,
        [namespace, svc] if svc_label(svc) => match catalog_name(namespace) {
            Some(namespace) if catalog.namespace_exists(namespace) => Node::Empty,
            _ => Node::Absent,
        },
        [service, namespace, svc] if svc_label(svc) => {
            match (catalog_name(service), catalog_name(namespace)) {
                (Some(service), Some(namespace)) => Node::Service { namespace, service },
                _ => Node::Absent,
            }
        }
        [label, service, namespace, svc] if svc_label(svc) => {
            match (
                std::str::from_utf8(label).ok(),
                catalog_name(service),
                catalog_name(namespace),
            ) {
                (Some(label), Some(service), Some(namespace)) => Node::Instance {
                    namespace,
                    service,
                    label,
                },
                _ => Node::Absent,
            }
        }
        _ => Node::Absent,
    }
}

/// Answers one query message. The result still has to be fitted to the
/// transport with [`encode`].
pub fn respond(request: &Message, zone: &Zone, catalog: &impl CatalogView) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.queries = request.queries.clone();
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_UDP_LIMIT);
        response.edns = Some(edns);
    }
    if request.metadata.message_type != MessageType::Query {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    }
    if request.metadata.op_code != OpCode::Query {
        response.metadata.response_code = ResponseCode::NotImp;
        return response;
    }
    let [query] = request.queries.as_slice() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    let Some(labels) = relative_labels(zone, query.name()) else {
        // Not ours, and we do not recurse.
        response.metadata.response_code = ResponseCode::Refused;
        return response;
    };
    if !matches!(query.query_class(), DNSClass::IN | DNSClass::ANY) {
        response.metadata.response_code = ResponseCode::Refused;
        return response;
    }
    response.metadata.authoritative = true;
    let query_type = query.query_type();
    let name = query.name().clone();
    let found = match classify(&labels, catalog) {
        Node::Apex => {
            if matches!(query_type, RecordType::SOA | RecordType::ANY) {
                response.answers.push(zone.soa(catalog.serial()));
            }
            true
        }
        Node::Empty => true,
        Node::Service { namespace, service } => match lookup(catalog, namespace, service) {
            Some(instances) => {
                answer_service(
                    &mut response,
                    zone,
                    &name,
                    query_type,
                    namespace,
                    service,
                    &instances,
                );
                true
            }
            None => false,
        },
        Node::Instance {
            namespace,
            service,
            label,
        } => {
            let instance = lookup(catalog, namespace, service).and_then(|instances| {
                instances.into_iter().find(|i| {
                    instance_label(&i.id).eq_ignore_ascii_case(label)
                        && matches!(target_of(i), Some(Target::Ip(_)))
                })
            });
            match instance.as_ref().and_then(target_of) {
                Some(Target::Ip(ip)) => {
                    if wants(query_type, ip) {
                        response.answers.push(address_record(name, ip));
                    }
                    true
                }
                _ => false,
            }
        }
        Node::Absent => false,
    };
    if !found {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    if response.answers.is_empty() {
        // NXDOMAIN or NODATA: the SOA tells resolvers how long to cache it.
        response.authorities.push(zone.soa(catalog.serial()));
    }
    response
}

/// The eligible instances of a service; names are tried as written, then
/// in lowercase (DNS is case-insensitive, catalog names are not, and some
/// resolvers randomize the case of queries).
fn lookup(catalog: &impl CatalogView, namespace: &str, service: &str) -> Option<Vec<Instance>> {
    catalog
        .service(namespace, service)
        .or_else(|| {
            let (ns, svc) = (namespace.to_ascii_lowercase(), service.to_ascii_lowercase());
            if ns == namespace && svc == service {
                return None;
            }
            catalog.service(&ns, &svc)
        })
        .map(eligible)
}

fn answer_service(
    response: &mut Message,
    zone: &Zone,
    name: &Name,
    query_type: RecordType,
    namespace: &str,
    service: &str,
    instances: &[Instance],
) {
    for instance in instances {
        let Some(target) = target_of(instance) else {
            continue;
        };
        if let Target::Ip(ip) = target
            && wants(query_type, ip)
        {
            response.answers.push(address_record(name.clone(), ip));
        }
        if !matches!(query_type, RecordType::SRV | RecordType::ANY) {
            continue;
        }
        let (srv_target, additional) = match target {
            Target::Ip(ip) => {
                let Some(instance_name) = zone.instance_name(namespace, service, &instance.id)
                else {
                    continue;
                };
                (
                    instance_name.clone(),
                    Some(address_record(instance_name, ip)),
                )
            }
            Target::Host(host) => (host, None),
        };
        let weight = u16::try_from(instance.weight).unwrap_or(u16::MAX);
        let srv = SRV::new(0, weight, instance.port, srv_target);
        response
            .answers
            .push(Record::from_rdata(name.clone(), TTL, RData::SRV(srv)));
        response.additionals.extend(additional);
    }
}

/// The largest answer a client accepts over UDP.
pub fn udp_limit(request: &Message) -> usize {
    match &request.edns {
        Some(edns) => usize::from(edns.max_payload().clamp(512, EDNS_UDP_LIMIT)),
        None => CLASSIC_UDP_LIMIT,
    }
}

/// Encodes a response in at most `limit` bytes: first whole; else without
/// the additional section (which needs no TC bit, RFC 2181 9); else only the
/// question with TC set, so the client retries over TCP. None when even that
/// does not encode.
pub fn encode(mut response: Message, limit: usize) -> Option<Vec<u8>> {
    if let Ok(bytes) = response.to_vec()
        && bytes.len() <= limit
    {
        return Some(bytes);
    }
    response.additionals.clear();
    if let Ok(bytes) = response.to_vec()
        && bytes.len() <= limit
    {
        return Some(bytes);
    }
    response.answers.clear();
    response.authorities.clear();
    response.metadata.truncation = true;
    response.to_vec().ok().filter(|bytes| bytes.len() <= limit)
}

/// The answer to a packet that does not parse as a DNS query: FORMERR with
/// its id, or nothing when not even a query header is there (responses are
/// never answered, so two servers cannot bounce errors at each other).
pub fn malformed(packet: &[u8]) -> Option<Vec<u8>> {
    let [id_high, id_low, flags, ..] = *packet else {
        return None;
    };
    if packet.len() < 12 || flags & 0x80 != 0 {
        return None;
    }
    let op_code = OpCode::from_u8((flags >> 3) & 0x0f);
    let response = Message::error_msg(
        u16::from_be_bytes([id_high, id_low]),
        op_code,
        ResponseCode::FormErr,
    );
    response.to_vec().ok()
}

/// One packet in, at most one packet out: the whole request-to-bytes path,
/// shared by UDP (`limit` from the request) and TCP (`limit` 65535).
pub fn handle(
    packet: &[u8],
    zone: &Zone,
    catalog: &impl CatalogView,
    transport: Transport,
) -> Option<Vec<u8>> {
    let Ok(request) = Message::from_vec(packet) else {
        return malformed(packet);
    };
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let limit = match transport {
        Transport::Udp => udp_limit(&request),
        Transport::Tcp => usize::from(u16::MAX),
    };
    encode(respond(&request, zone, catalog), limit)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hickory_proto::op::Query;
    use muster_types::catalog::InstanceHealth;

    use super::*;

    #[derive(Default)]
    struct FakeCatalog {
        services: BTreeMap<(String, String), Vec<Instance>>,
    }

    impl FakeCatalog {
        fn with(mut self, instances: Vec<Instance>) -> Self {
            for instance in instances {
                self.services
                    .entry((instance.namespace.clone(), instance.service.clone()))
                    .or_default()
                    .push(instance);
            }
            self
        }

        fn with_empty_service(mut self, namespace: &str, service: &str) -> Self {
            self.services
                .insert((namespace.into(), service.into()), Vec::new());
            self
        }
    }

    impl CatalogView for FakeCatalog {
        fn service(&self, namespace: &str, service: &str) -> Option<Vec<Instance>> {
            self.services
                .get(&(namespace.to_owned(), service.to_owned()))
                .cloned()
        }

        fn namespace_exists(&self, namespace: &str) -> bool {
            namespace == "default" || self.services.keys().any(|(ns, _)| ns == namespace)
        }

        fn serial(&self) -> u32 {
            42
        }
    }

    fn instance(id: &str, address: &str, weight: u32) -> Instance {
        Instance {
            namespace: "default".into(),
            service: "web".into(),
            id: id.into(),
            address: address.into(),
            port: 8080,
            weight,
            tags: Vec::new(),
            metadata: BTreeMap::new(),
            zone: None,
            enabled: true,
            ephemeral: false,
            lease: None,
            health: InstanceHealth::default(),
            check: None,
            revision: 1,
        }
    }

    fn zone() -> Zone {
        Zone::new("muster.").unwrap()
    }

    fn query(name: &str, query_type: RecordType) -> Message {
        let mut message = Message::new(7, MessageType::Query, OpCode::Query);
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), query_type));
        message
    }

    fn ask(catalog: &FakeCatalog, name: &str, query_type: RecordType) -> Message {
        respond(&query(name, query_type), &zone(), catalog)
    }

    fn web() -> FakeCatalog {
        let mut drained = instance("drained", "10.0.0.9", 500);
        drained.enabled = false;
        let mut critical = instance("sick", "10.0.0.8", 500);
        critical.health.status = HealthStatus::Critical;
        let mut warning = instance("warned", "10.0.0.7", 500);
        warning.health.status = HealthStatus::Warning;
        FakeCatalog::default().with(vec![
            instance("a", "10.0.0.1", 100),
            instance("b", "10.0.0.2", 300),
            instance("c", "fd00::3", 100),
            instance("d", "db.example.internal", 200),
            instance("zero", "10.0.0.4", 0),
            drained,
            critical,
            warning,
        ])
    }

    fn srv_of(record: &Record) -> &SRV {
        match &record.data {
            RData::SRV(srv) => srv,
            other => panic!("expected SRV, got {other:?}"),
        }
    }

    #[test]
    fn a_records_are_the_healthy_enabled_ipv4_instances_by_weight() {
        let response = ask(&web(), "web.default.svc.muster.", RecordType::A);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert!(response.metadata.authoritative);
        assert!(response.metadata.recursion_desired);
        let ips: Vec<_> = response.answers.iter().map(|r| r.data.clone()).collect();
        assert_eq!(
            ips,
            vec![
                RData::A(A("10.0.0.2".parse().unwrap())),
                RData::A(A("10.0.0.1".parse().unwrap()))
            ]
        );
        assert!(response.answers.iter().all(|r| r.ttl == TTL));
    }

    #[test]
    fn aaaa_records_are_the_ipv6_instances() {
        let response = ask(&web(), "web.default.svc.muster.", RecordType::AAAA);
        assert_eq!(response.answers.len(), 1);
        assert_eq!(
            response.answers[0].data,
            RData::AAAA(AAAA("fd00::3".parse().unwrap()))
        );
    }

    #[test]
    fn srv_records_go_highest_weight_first_with_addresses_in_additional() {
        let response = ask(&web(), "web.default.svc.muster.", RecordType::SRV);
        let srvs: Vec<_> = response.answers.iter().map(srv_of).collect();
        let targets: Vec<_> = srvs.iter().map(|s| s.target.to_ascii()).collect();
        // Weights 300, 200, 100, 100 (a before c: ties keep id order).
        assert_eq!(
            targets,
            vec![
                "b.web.default.svc.muster.",
                "db.example.internal.",
                "a.web.default.svc.muster.",
                "c.web.default.svc.muster.",
            ]
        );
        assert_eq!(
            srvs.iter().map(|s| s.weight).collect::<Vec<_>>(),
            vec![300, 200, 100, 100]
        );
        assert!(srvs.iter().all(|s| s.priority == 0 && s.port == 8080));
        // The hostname needs no glue; the IP targets get theirs.
        let glue: Vec<_> = response
            .additionals
            .iter()
            .map(|r| (r.name.to_ascii(), r.data.clone()))
            .collect();
        assert_eq!(
            glue,
            vec![
                (
                    "b.web.default.svc.muster.".into(),
                    RData::A(A("10.0.0.2".parse().unwrap()))
                ),
                (
                    "a.web.default.svc.muster.".into(),
                    RData::A(A("10.0.0.1".parse().unwrap()))
                ),
                (
                    "c.web.default.svc.muster.".into(),
                    RData::AAAA(AAAA("fd00::3".parse().unwrap()))
                ),
            ]
        );
    }

    #[test]
    fn srv_weight_saturates_at_u16() {
        let catalog = FakeCatalog::default().with(vec![instance("big", "10.0.0.1", 100_000)]);
        let response = ask(&catalog, "web.default.svc.muster.", RecordType::SRV);
        assert_eq!(srv_of(&response.answers[0]).weight, u16::MAX);
    }

    #[test]
    fn instance_names_resolve_to_their_address_only_while_eligible() {
        let catalog = web();
        let response = ask(&catalog, "b.web.default.svc.muster.", RecordType::A);
        assert_eq!(response.answers.len(), 1);
        assert_eq!(
            response.answers[0].name.to_ascii(),
            "b.web.default.svc.muster."
        );
        // An IPv4 instance has no AAAA: the name exists, the type does not.
        let response = ask(&catalog, "b.web.default.svc.muster.", RecordType::AAAA);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert!(response.answers.is_empty());
        assert_eq!(response.authorities.len(), 1);
        for gone in ["drained", "sick", "nobody", "d"] {
            let response = ask(
                &catalog,
                &format!("{gone}.web.default.svc.muster."),
                RecordType::A,
            );
            assert_eq!(
                response.metadata.response_code,
                ResponseCode::NXDomain,
                "{gone}"
            );
        }
    }

    #[test]
    fn ids_that_are_not_plain_labels_get_a_hashed_label_that_resolves() {
        let catalog = FakeCatalog::default().with(vec![instance("Pod.1:8080", "10.0.0.1", 1)]);
        let label = instance_label("Pod.1:8080");
        assert!(label.starts_with("id-") && label.len() == 19, "{label}");
        assert_eq!(instance_label("pod-1"), "pod-1");
        assert_ne!(instance_label("id-1"), "id-1");
        let response = ask(&catalog, "web.default.svc.muster.", RecordType::SRV);
        assert_eq!(
            srv_of(&response.answers[0]).target.to_ascii(),
            format!("{label}.web.default.svc.muster.")
        );
        let response = ask(
            &catalog,
            &format!("{label}.web.default.svc.muster."),
            RecordType::A,
        );
        assert_eq!(response.answers.len(), 1);
    }

    #[test]
    fn unknown_services_and_namespaces_are_nxdomain_with_the_soa() {
        for name in [
            "nope.default.svc.muster.",
            "web.elsewhere.svc.muster.",
            "elsewhere.svc.muster.",
            "web.default.pods.muster.",
            "a.b.web.default.svc.muster.",
        ] {
            let response = ask(&web(), name, RecordType::A);
            assert_eq!(
                response.metadata.response_code,
                ResponseCode::NXDomain,
                "{name}"
            );
            assert!(response.answers.is_empty());
            let soa = &response.authorities[0];
            assert_eq!(soa.name.to_ascii(), "muster.");
            let RData::SOA(data) = &soa.data else {
                panic!("{soa:?}")
            };
            assert_eq!((data.minimum, soa.ttl, data.serial), (TTL, TTL, 42));
        }
    }

    #[test]
    fn labels_that_are_no_catalog_name_never_reach_the_keyspace() {
        // A raw label with '/' would otherwise read another key prefix.
        let labels: [&[u8]; 4] = [b"web/..", b"default", b"svc", b"muster"];
        let mut request = query("muster.", RecordType::A);
        request.queries[0].set_name(Name::from_labels(labels).unwrap());
        let response = respond(&request, &zone(), &web());
        assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn names_outside_the_zone_are_refused() {
        let response = ask(&web(), "example.com.", RecordType::A);
        assert_eq!(response.metadata.response_code, ResponseCode::Refused);
        assert!(!response.metadata.authoritative);
        assert!(response.answers.is_empty() && response.authorities.is_empty());
    }

    #[test]
    fn a_known_service_without_eligible_instances_is_nodata() {
        let mut drained = instance("x", "10.0.0.1", 100);
        drained.enabled = false;
        let catalog = FakeCatalog::default()
            .with(vec![drained])
            .with_empty_service("default", "idle");
        for name in ["web.default.svc.muster.", "idle.default.svc.muster."] {
            for query_type in [RecordType::A, RecordType::AAAA, RecordType::SRV] {
                let response = ask(&catalog, name, query_type);
                assert_eq!(response.metadata.response_code, ResponseCode::NoError);
                assert!(response.answers.is_empty());
                assert!(matches!(response.authorities[0].data, RData::SOA(_)));
            }
        }
        // Names with children but no records are NODATA too.
        for name in ["svc.muster.", "default.svc.muster."] {
            let response = ask(&catalog, name, RecordType::A);
            assert_eq!(
                response.metadata.response_code,
                ResponseCode::NoError,
                "{name}"
            );
        }
    }

    #[test]
    fn the_apex_answers_its_soa() {
        let response = ask(&web(), "muster.", RecordType::SOA);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert!(matches!(response.answers[0].data, RData::SOA(_)));
    }

    #[test]
    fn names_match_case_insensitively() {
        let response = ask(&web(), "WEB.Default.SVC.Muster.", RecordType::A);
        assert_eq!(response.answers.len(), 2);
    }

    #[test]
    fn big_answers_are_truncated_on_udp_and_whole_on_tcp() {
        let instances = (0..60)
            .map(|n| instance(&format!("instance-{n:03}"), &format!("10.0.1.{n}"), 100))
            .collect();
        let catalog = FakeCatalog::default().with(instances);
        let request = query("web.default.svc.muster.", RecordType::SRV);
        let packet = request.to_vec().unwrap();

        let udp = handle(&packet, &zone(), &catalog, Transport::Udp).unwrap();
        assert!(udp.len() <= CLASSIC_UDP_LIMIT);
        let udp = Message::from_vec(&udp).unwrap();
        assert!(udp.metadata.truncation);
        assert!(udp.answers.is_empty());
        assert_eq!(udp.queries, request.queries);

        let tcp = Message::from_vec(&handle(&packet, &zone(), &catalog, Transport::Tcp).unwrap())
            .unwrap();
        assert!(!tcp.metadata.truncation);
        assert_eq!((tcp.answers.len(), tcp.additionals.len()), (60, 60));

        // With EDNS the client's larger buffer is used, up to our limit.
        let mut edns_request = query("web.default.svc.muster.", RecordType::A);
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        edns_request.edns = Some(edns);
        let packet = edns_request.to_vec().unwrap();
        let udp = handle(&packet, &zone(), &catalog, Transport::Udp).unwrap();
        assert!(udp.len() > CLASSIC_UDP_LIMIT && udp.len() <= usize::from(EDNS_UDP_LIMIT));
        let udp = Message::from_vec(&udp).unwrap();
        assert!(!udp.metadata.truncation);
        assert_eq!(udp.answers.len(), 60);
        assert!(udp.edns.is_some());
    }

    #[test]
    fn additional_records_are_dropped_before_answers() {
        let instances = (0..12)
            .map(|n| instance(&format!("i{n}"), &format!("10.0.0.{n}"), 100))
            .collect();
        let catalog = FakeCatalog::default().with(instances);
        let response = ask(&catalog, "web.default.svc.muster.", RecordType::SRV);
        let whole = response.to_vec().unwrap().len();
        let without_glue = {
            let mut r = response.clone();
            r.additionals.clear();
            r.to_vec().unwrap().len()
        };
        assert!(without_glue < whole);
        let bytes = encode(response, without_glue).unwrap();
        let fitted = Message::from_vec(&bytes).unwrap();
        assert!(!fitted.metadata.truncation);
        assert_eq!((fitted.answers.len(), fitted.additionals.len()), (12, 0));
    }

    #[test]
    fn bad_packets_get_formerr_or_nothing() {
        let zone = zone();
        let catalog = web();
        assert_eq!(handle(&[], &zone, &catalog, Transport::Udp), None);
        assert_eq!(handle(&[1, 2, 3], &zone, &catalog, Transport::Udp), None);
        // A query header claiming a question that is not there.
        let mut packet = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        let answer =
            Message::from_vec(&handle(&packet, &zone, &catalog, Transport::Udp).unwrap()).unwrap();
        assert_eq!(answer.metadata.id, 0xabcd);
        assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(answer.metadata.message_type, MessageType::Response);
        // A garbled response is never answered.
        packet[2] |= 0x80;
        assert_eq!(handle(&packet, &zone, &catalog, Transport::Udp), None);
        // Two questions in one message.
        let mut two = query("web.default.svc.muster.", RecordType::A);
        two.add_query(Query::query(
            Name::from_ascii("muster.").unwrap(),
            RecordType::SOA,
        ));
        let answer = respond(&two, &zone, &catalog);
        assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
        // Other opcodes are not implemented.
        let mut notify = query("muster.", RecordType::SOA);
        notify.metadata.op_code = OpCode::Notify;
        assert_eq!(
            respond(&notify, &zone, &catalog).metadata.response_code,
            ResponseCode::NotImp
        );
        // Random bytes never panic.
        let mut seed = 1u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            let _ = handle(&bytes, &zone, &catalog, Transport::Udp);
        }
    }

    #[test]
    fn zone_names_are_checked() {
        assert!(Zone::new("muster").is_ok());
        assert!(Zone::new(".").is_err());
        assert!(Zone::new("bad..name").is_err());
    }
}
