//! The StatefulSet the operator builds, run for real: one container per
//! ordinal, each reachable by its headless-Service DNS name on a Docker
//! network. The pods' own command, arguments and environment must form a
//! working cluster, and the operator's plan, carried out step by step with
//! its real registry client, must scale it up and down through Raft
//! membership changes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use muster_client::{Client, GetOptions, PutOptions};
use muster_e2e::docker::{Container, Network, docker};
use muster_e2e::pod::pod_run;
use muster_operator::build::{
    CLIENT_PORT, ClusterObjects, ClusterState, Shape, build, client_url, peer_url, pod_name,
};
use muster_operator::crd::RegistryCluster;
use muster_operator::plan::{MemberView, Observed, PodView, Step, plan};
use muster_operator::registry::{HttpRegistry, Members, Registry};
use muster_operator::validate::{OperatorSettings, ValidCluster, validate};
use muster_types::cluster::{AddMemberRequest, MemberRole};

const FORM_TIMEOUT: Duration = Duration::from_secs(60);
const SCALE_TIMEOUT: Duration = Duration::from_secs(120);

fn cluster() -> ValidCluster {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.yaml");
    let mut resource: RegistryCluster =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    if let Ok(image) = std::env::var("MUSTER_E2E_IMAGE") {
        resource.spec.image = Some(image);
    }
    validate(&resource, &OperatorSettings::default()).unwrap()
}

/// The HTTP status of `GET path` on `address` (0 when unreachable).
fn http_status(address: &str, path: &str) -> u16 {
    let attempt = || -> std::io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(
            &address.parse().expect("an address"),
            Duration::from_secs(1),
        )?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0))
    };
    attempt().unwrap_or(0)
}

/// Pods as containers, with their published client addresses.
/// Fields drop in order: the containers before the network they use.
struct Pods {
    running: Vec<(Container, String)>,
    prefix: String,
    network: Network,
}

impl Pods {
    fn start(&mut self, objects: &ClusterObjects, ordinal: i32) -> String {
        let config_maps: Vec<ConfigMap> = vec![objects.config_map.clone()];
        let pod = pod_run(
            &objects.stateful_set,
            &config_maps,
            ordinal,
            "cluster.local",
        )
        .unwrap();
        let container = Container::run(&pod, &self.network, &self.prefix, &[CLIENT_PORT]).unwrap();
        let address = container.published(CLIENT_PORT).unwrap();
        self.running.push((container, address.clone()));
        address
    }

    /// The pod restarts on an empty volume (a new container, new tmpfs).
    fn wipe(&mut self, objects: &ClusterObjects, ordinal: i32) {
        let config_maps: Vec<ConfigMap> = vec![objects.config_map.clone()];
        let pod = pod_run(
            &objects.stateful_set,
            &config_maps,
            ordinal,
            "cluster.local",
        )
        .unwrap();
        let index = ordinal as usize;
        // The old container goes first: the new one takes its name.
        let (old, _) = self.running.remove(index);
        drop(old);
        let container = Container::run(&pod, &self.network, &self.prefix, &[CLIENT_PORT]).unwrap();
        let address = container.published(CLIENT_PORT).unwrap();
        self.running.insert(index, (container, address));
    }

    fn endpoints(&self) -> Vec<String> {
        self.running
            .iter()
            .map(|(_, address)| format!("http://{address}"))
            .collect()
    }

    /// The members as the operator reaches them (plain HTTP here).
    fn members(&self) -> Members {
        Members::new(self.endpoints(), None)
    }

    fn logs(&self) -> String {
        self.running
            .iter()
            .map(|(c, _)| format!("--- {}\n{}", c.pod_name, c.logs()))
            .collect()
    }

    async fn views(&self, registry: &HttpRegistry) -> Vec<PodView> {
        let mut views = Vec::new();
        for (ordinal, (container, address)) in self.running.iter().enumerate() {
            let node = registry
                .node_status(&Members::default(), &format!("http://{address}"))
                .await
                .ok();
            views.push(PodView {
                name: container.pod_name.clone(),
                ordinal: ordinal as i32,
                running: true,
                ready: http_status(address, "/readyz") == 200,
                terminating: false,
                current: true,
                node_id: node.map(|status| status.id),
            });
        }
        views
    }
}

async fn members(
    registry: &HttpRegistry,
    pods: &Pods,
    cluster: &ValidCluster,
) -> Option<Vec<MemberView>> {
    let list = registry.members(&pods.members()).await.ok()?;
    Some(
        list.members
            .into_iter()
            .map(|m| MemberView {
                ordinal: muster_operator::build::ordinal_of(cluster, &m.name),
                name: m.name,
                id: m.id,
                role: m.role,
                is_leader: m.is_leader,
                lag: m.lag,
            })
            .collect(),
    )
}

/// Carries out the operator's plan until it says Steady, as the controller
/// would: registry calls through its real client, pods started or stopped
/// where the StatefulSet controller would.
async fn converge(
    cluster: &ValidCluster,
    pods: &mut Pods,
    registry: &HttpRegistry,
    desired: i32,
) -> Vec<String> {
    let deadline = Instant::now() + SCALE_TIMEOUT;
    let mut steps = Vec::new();
    for _ in 0..400 {
        assert!(
            Instant::now() < deadline,
            "no convergence: {steps:#?}\n{}",
            pods.logs()
        );
        let observed = Observed {
            desired,
            set_pods: Some(pods.running.len() as i32),
            bootstrapped: true,
            pods: pods.views(registry).await,
            members: members(registry, pods, cluster).await,
        };
        let next = plan(&observed, |o| pod_name(cluster, o));
        let objects = build(cluster, next.shape);
        let endpoints = pods.members();
        match &next.step {
            Step::Steady => return steps,
            Step::Wait { .. } => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Step::GrowSet { .. } => {
                pods.start(&objects, next.shape.pods - 1);
            }
            Step::AddLearner { pod } => {
                registry
                    .add_learner(
                        &endpoints,
                        AddMemberRequest {
                            name: pod.clone(),
                            peer_url: peer_url(cluster, pod),
                            client_url: Some(client_url(cluster, pod)),
                            expect_membership: None,
                            replace: false,
                        },
                    )
                    .await
                    .unwrap();
            }
            Step::Promote { member } => {
                if let Err(err) = registry.promote(&endpoints, member).await {
                    // Refused while it catches up: the operator waits too.
                    steps.push(format!("promote refused: {err}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
            Step::TransferLeader { to, .. } => {
                registry.transfer_leader(&endpoints, to).await.unwrap()
            }
            Step::ReplaceMember { member, .. } => {
                registry
                    .add_learner(
                        &endpoints,
                        AddMemberRequest {
                            name: member.clone(),
                            peer_url: peer_url(cluster, member),
                            client_url: Some(client_url(cluster, member)),
                            expect_membership: None,
                            replace: true,
                        },
                    )
                    .await
                    .unwrap();
            }
            Step::RemoveMember { member } => {
                registry.remove(&endpoints, member).await.unwrap();
                // Then the StatefulSet shrinks: its highest pod goes.
                let (container, _) = pods.running.pop().unwrap();
                assert_eq!(&container.pod_name, member);
                container.stop(Duration::from_secs(5)).unwrap();
            }
            other => panic!("unexpected step {other:?}"),
        }
        steps.push(format!("{:?}", next.step));
    }
    panic!("too many steps: {steps:#?}");
}

#[tokio::test]
#[ignore = "needs Docker and the muster:e2e image; run e2e/run.sh"]
async fn the_built_stateful_set_forms_a_cluster_and_scales_through_membership() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = cluster();
    docker(&["image", "inspect", "--format", "{{.Id}}", &cluster.image])
        .expect("the image exists: build it with e2e/run.sh");
    let prefix = format!("muster-e2e-{}", std::process::id());
    let network = Network::create(&prefix).unwrap();
    let mut pods = Pods {
        running: Vec::new(),
        prefix: prefix.clone(),
        network,
    };
    let initial = build(
        &cluster,
        Shape {
            pods: 3,
            cluster_state: ClusterState::New,
        },
    );
    for ordinal in 0..3 {
        pods.start(&initial, ordinal);
    }

    // 1. The pods form one cluster by themselves: demo-0 initializes it,
    // its leader adds and promotes the others of the initial cluster.
    let started = Instant::now();
    let client = Client::new(pods.endpoints()).unwrap();
    let list = loop {
        let ready = pods
            .running
            .iter()
            .filter(|(_, address)| http_status(address, "/readyz") == 200)
            .count();
        if ready == 3
            && let Ok(list) = client.members().await
            && list.members.len() == 3
            && list.members.iter().all(|m| m.role == MemberRole::Voter)
        {
            break list;
        }
        assert!(
            started.elapsed() < FORM_TIMEOUT,
            "not formed:\n{}",
            pods.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let formed_in = started.elapsed();
    let mut names: Vec<&str> = list.members.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["demo-0", "demo-1", "demo-2"]);
    assert_eq!(list.members.iter().filter(|m| m.is_leader).count(), 1);
    for member in &list.members {
        assert_eq!(member.peer_url, peer_url(&cluster, &member.name));
        assert_eq!(member.client_url, client_url(&cluster, &member.name));
    }
    // Writes on one member are read on another.
    let first = Client::new([pods.endpoints()[0].clone()]).unwrap();
    let last = Client::new([pods.endpoints()[2].clone()]).unwrap();
    first
        .put("/e2e/key", b"formed".to_vec(), PutOptions::default())
        .await
        .unwrap();
    let read = last.get("/e2e/key", GetOptions::default()).await.unwrap();
    assert_eq!(read.unwrap().value.as_bytes(), b"formed");

    // 2. Scale 3 → 5 by the operator's plan: grow, add learner, promote.
    let registry = HttpRegistry::new(Duration::from_secs(5));
    let up = converge(&cluster, &mut pods, &registry, 5).await;
    let list = client.members().await.unwrap();
    assert_eq!(list.members.len(), 5, "{up:#?}");
    assert!(list.members.iter().all(|m| m.role == MemberRole::Voter));
    let up_steps: Vec<&String> = up
        .iter()
        .filter(|s| !s.starts_with("promote refused"))
        .collect();
    assert!(up_steps[0].starts_with("GrowSet"), "{up:#?}");
    assert!(up_steps[1].starts_with("AddLearner"), "{up:#?}");
    assert!(up_steps[2].starts_with("Promote"), "{up:#?}");

    // 3. demo-3 comes back with an empty volume: it joins as a learner next
    // to its old self, and promoting it replaces the old member.
    let old_id = list.members.iter().find(|m| m.name == "demo-3").unwrap().id;
    let five = build(
        &cluster,
        Shape {
            pods: 5,
            cluster_state: ClusterState::Existing,
        },
    );
    pods.wipe(&five, 3);
    let replaced = converge(&cluster, &mut pods, &registry, 5).await;
    let replaced_steps: Vec<&String> = replaced
        .iter()
        .filter(|s| !s.starts_with("promote refused"))
        .collect();
    assert!(
        replaced_steps[0].starts_with("ReplaceMember"),
        "{replaced:#?}"
    );
    assert!(replaced_steps[1].starts_with("Promote"), "{replaced:#?}");
    let list = client.members().await.unwrap();
    let back = list.members.iter().find(|m| m.name == "demo-3").unwrap();
    assert_ne!(back.id, old_id, "a wiped member comes back under a new id");
    assert_eq!(back.role, MemberRole::Voter);
    assert_eq!(list.members.len(), 5);

    // 4. Scale 5 → 3: the highest members leave the membership first.
    let down = converge(&cluster, &mut pods, &registry, 3).await;
    let client = Client::new(pods.endpoints()).unwrap();
    let list = client.members().await.unwrap();
    let mut names: Vec<&str> = list.members.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["demo-0", "demo-1", "demo-2"], "{down:#?}");
    let read = client.get("/e2e/key", GetOptions::default()).await.unwrap();
    assert_eq!(read.unwrap().value.as_bytes(), b"formed");
    eprintln!(
        "formed in {formed_in:?}; scale up: {up:?}; replaced: {replaced:?}; scale down: {down:?}"
    );
}
